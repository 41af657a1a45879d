"""A session folder written by hand for the report tests: fast, deterministic, real evaluator numbers.

The metrics come from the frozen evaluator (:func:`evaluate_predictions`) on seeded synthetic scores, so the
report is tested against exactly the kind of numbers a real session stores; no model is trained.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd

from clinagent_lab.records import Annotation, FinalTest, Iteration, Session
from clinagent_lab.data.base import ColumnAssociation, DatasetFingerprint
from clinagent_lab.evaluation import evaluate_predictions
from clinagent_lab.recipe import Recipe, apply_patch
from clinagent_lab.spec import Confounder, MetricSpec, TaskSpec

CLASSES = ["normal", "pneumothorax"]
CLASSES3 = ["BCC", "MEL", "NV"]
PNG_1PX = ("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def _predictions(rng: np.random.Generator, ids: list[str], groups: list[str], classes: list[str],
                 shift: float) -> pd.DataFrame:
    n = len(ids)
    k = len(classes)
    y = np.arange(n) % k
    drain = ((y == k - 1) ^ (rng.random(n) < 0.2)).astype(int)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), y] += shift
    logits[:, -1] += 0.8 * drain
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    frame = pd.DataFrame({"image_id": ids, "label": y, "group_id": groups})
    for j, c in enumerate(classes):
        frame[f"prob_{c}"] = probs[:, j]
    frame["chest_drain"] = drain
    return frame


def _split_ids(split: str, n: int, per_patient: int = 2) -> tuple[list[str], list[str]]:
    ids = [f"{split}{i:03d}" for i in range(n)]
    groups = [f"P-{split}-{i // per_patient:03d}" for i in range(n)]
    return ids, groups


def _executed_notebook(path: Path, index: int, widget_state: bool) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell("seed = 0", metadata={"tags": ["parameters"]})
    plot = nbformat.v4.new_code_cell(f"print('training iteration {index}')")
    plot.outputs = [nbformat.v4.new_output("stream", name="stdout", text=f"training iteration {index}\n"),
                    nbformat.v4.new_output("display_data", data={"image/png": PNG_1PX, "text/plain": "<Figure>"})]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# Iteration {index}"), params, plot]
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"cell-{i}"  # the same ids in every iteration, as template notebooks have
    if widget_state:
        nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {
            "version_major": 2, "version_minor": 0, "state": {f"w{index}": {"model_name": "IntSliderModel",
                                                                            "state": {"value": index}}}}}
    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


def _fingerprint(root: Path, classes: list[str], counts: dict[str, int]) -> DatasetFingerprint:
    per_split = {s: {c: n // len(classes) + (1 if j < n % len(classes) else 0) for j, c in enumerate(classes)}
                 for s, n in counts.items()}
    class_counts = {c: sum(per_split[s][c] for s in per_split) for c in classes}
    return DatasetFingerprint(
        format="csv_manifest", root=str(root), task_type="binary_classification" if len(classes) == 2 else
        "multiclass_classification", classes=classes, n_images=sum(counts.values()), class_counts=class_counts,
        split_counts=per_split, splits_given=False, split_rule="grouped by patient_id, stratified 70/15/15",
        image_sizes={"height": {"min": 16, "median": 16.0, "max": 16}, "width": {"min": 16, "median": 16.0,
                                                                                "max": 16}},
        channels=[1], group_column="patient_id", n_groups=sum(counts.values()) // 2,
        metadata_columns=["chest_drain"],
        associations=[ColumnAssociation(column="chest_drain", kind="binary", n_levels=2, auroc=0.8123456,
                                        cramers_v=0.61234, p_value=0.0004321, flagged=True)],
        imbalance_ratio=1.0, leakage_checked=True, content_hash="ab" * 32)


def make_session(root: Path, *, final: bool = True, classes: list[str] | None = None, seed_study: bool = False,
                 widget_state: bool = False, n_test: int = 60) -> Path:
    """Write a complete two-iteration session folder under ``root``; return the folder."""
    classes = classes or CLASSES
    out = root / "session"
    out.mkdir(parents=True)
    rng = np.random.default_rng(7)
    counts = {"train": 120, "val": 60, "test": n_test}
    multiclass = len(classes) > 2
    spec = TaskSpec(request="pneumothorax on chest X-rays; don't let the model cheat by looking at chest drains",
                    objective="detect pneumothorax", task_type="multiclass_classification" if multiclass
                    else "binary_classification", modality="chest_xray", classes=classes,
                    target_classes=[classes[-1]], primary_metric=MetricSpec(name="auroc"),
                    confounders=[Confounder(name="chest_drain", column="chest_drain", action="mitigate")],
                    assumptions=["Risk preference: balanced (default)."], questions=["Is sex a concern?"])
    base = Recipe(task_type=spec.task_type, classes=classes, seed=3)
    base = apply_patch(base, {"evaluation.bootstrap": 150, "evaluation.selection_metric": "group_balanced_auroc",
                              "evaluation.positive_class": len(classes) - 1})
    recipes = [base, apply_patch(base, {"debias.method": "gradient_reversal", "debias.confounder": "chest_drain",
                                        "debias.column": "chest_drain"})]
    confounders = {"chest_drain": "chest_drain"}
    val_ids, val_groups = _split_ids("val", counts["val"])
    iterations = []
    for i, recipe in enumerate(recipes, start=1):
        folder = out / "iterations" / f"iter_{i:02d}"
        _executed_notebook(folder / "iteration.ipynb", i, widget_state)
        val = _predictions(rng, val_ids, val_groups, classes, shift=1.2 + 0.3 * i)
        metrics = evaluate_predictions(val, classes, recipe.evaluation, confounders=confounders,
                                       n_permutations=20, seed=recipe.seed)
        (folder / "run_info.json").write_text(json.dumps({"seed": recipe.seed, "evaluator_hash": "e" * 64,
                                                          "versions": {"python": "3.11.7", "torch": "2.14.1"}}))
        iterations.append(Iteration(
            index=i, status="ok", recipe=recipe, rationale="Baseline: the initializer's recipe." if i == 1 else
            "The baseline relies on chest_drain: train with gradient reversal against it.",
            idea="baseline" if i == 1 else "gradient_reversal", notebook=str(folder / "iteration.ipynb"),
            output_dir=str(folder), wall_s=12.5 + i, val_metrics=metrics,
            selection_value=metrics["selection_value"], decision="baseline" if i == 1 else "kept",
            decision_reason="first successful iteration" if i == 1 else "selection value higher",
            curve=[0.6, 0.7]))
    session = Session(id="abc123", request=spec.request, data_path=str(root / "data"), out_dir=str(out), seed=3,
                      spec=spec, fingerprint=_fingerprint(root / "data", classes, counts), iterations=iterations,
                      best_iteration=2, data_format="csv_manifest", recipe_overrides={"training.max_epochs": 2},
                      status="finished" if final else "stopped", stop_reason="iteration budget reached (2)",
                      annotations=[Annotation(kind="operating_point", text="I want 90% sensitivity",
                                              value={"sensitivity": 0.9}, iteration=1, applied_in=2)])
    test_ids, test_groups = _split_ids("test", counts["test"])
    train_ids, train_groups = _split_ids("train", counts["train"])
    splits = pd.DataFrame({"image_id": train_ids + val_ids + test_ids,
                           "split": ["train"] * len(train_ids) + ["val"] * len(val_ids) + ["test"] * len(test_ids),
                           "group_id": train_groups + val_groups + test_groups})
    splits.to_csv(out / "splits.csv", index=False)
    if final:
        best = iterations[-1]
        test = _predictions(rng, test_ids, test_groups, classes, shift=1.5)
        metrics = evaluate_predictions(test, classes, best.recipe.evaluation, confounders=confounders,
                                       threshold=best.val_metrics.get("threshold"), n_permutations=20,
                                       seed=best.recipe.seed)
        written = test[["image_id", "label"]].copy()
        written.insert(2, "label_name", [classes[k] for k in test["label"]])
        for c in classes:
            written[f"prob_{c}"] = test[f"prob_{c}"]
        written.to_csv(out / "test_predictions.csv", index=False)
        session.final_test = FinalTest(iteration=2, metrics=metrics, evaluated_at="2026-01-01T00:00:00+00:00",
                                       n_samples=len(test), predictions=str(out / "test_predictions.csv"))
        session.test_reads = 1
    if seed_study:
        study = {"notebook": best_nb(session), "summary": {"primary": {"mean": 0.81234, "sd": 0.0123, "min": 0.8,
                                                                       "max": 0.83, "spread": 0.03, "n": 3.0}},
                 "runs": [{"seed": s, "status": "ok", "metrics": {"primary": 0.8 + 0.01 * s}, "output": "x",
                           "error": None, "wall_s": 10.0} for s in range(3)]}
        path = Path(session.best().output_dir) / "seed_study" / "seed_study.json"
        path.parent.mkdir(parents=True)
        path.write_text(json.dumps(study))
    session.save()
    return out


def best_nb(session: Session) -> str:
    return str(session.best().notebook)
