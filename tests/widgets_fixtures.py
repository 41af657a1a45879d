"""Synthetic predictions and fake iteration folders for the widget tests (no training)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from clinagent_lab.records import Iteration, Session
from clinagent_lab.evaluation.evaluate import evaluate_predictions
from clinagent_lab.recipe import EvalConfig, Recipe
from clinagent_lab.spec import Confounder, MetricSpec, TaskSpec

BINARY = ["normal", "pneumothorax"]
MULTI = ["bcc", "mel", "nv"]


def binary_predictions(n: int = 160, seed: int = 0) -> pd.DataFrame:
    """Pneumothorax scores that lean on a chest drain (present more often in positives)."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    drain = (rng.random(n) < np.where(y == 1, 0.7, 0.3)).astype(float)
    drain[:3] = np.nan
    p = np.clip(0.3 * y + 0.35 * np.nan_to_num(drain) + rng.normal(0, 0.2, n), 0.001, 0.999).round(4)
    return pd.DataFrame({"image_id": [f"im{i}" for i in range(n)], "label": y,
                         "group_id": [f"pt{i // 2}" for i in range(n)], "prob_normal": 1 - p,
                         "prob_pneumothorax": p, "chest_drain": drain})


def multiclass_predictions(n: int = 180, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    ruler = rng.integers(0, 2, n)
    logits = rng.normal(size=(n, 3)) + 1.5 * np.eye(3)[y] + 0.8 * ruler[:, None] * np.eye(3)[1]
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    df = pd.DataFrame({"image_id": [f"im{i}" for i in range(n)], "label": y,
                       "group_id": [f"pt{i}" for i in range(n)], "ruler": ruler})
    for k, c in enumerate(MULTI):
        df[f"prob_{c}"] = p[:, k]
    return df


def binary_recipe(**evaluation) -> Recipe:
    cfg = {"bootstrap": 20, **evaluation}
    return Recipe(task_type="binary_classification", classes=list(BINARY), evaluation=EvalConfig(**cfg))


def multiclass_recipe(**evaluation) -> Recipe:
    cfg = {"bootstrap": 10, "metric_params": {"class": "mel"}, **evaluation}
    return Recipe(task_type="multiclass_classification", classes=list(MULTI), evaluation=EvalConfig(**cfg))


def binary_spec() -> TaskSpec:
    return TaskSpec(task_type="binary_classification", classes=list(BINARY), target_classes=["pneumothorax"],
                    confounders=[Confounder(name="chest_drain", column="chest_drain", action="mitigate")])


def multiclass_spec() -> TaskSpec:
    return TaskSpec(task_type="multiclass_classification", classes=list(MULTI), target_classes=["mel"],
                    primary_metric=MetricSpec(name="auroc"), confounders=[Confounder(name="ruler", column="ruler")])


def make_session(root: Path, recipe: Recipe, spec: TaskSpec, *, index: int = 1, status: str = "stopped",
                 session_id: str = "abc123") -> Session:
    """A minimal valid session with one finished iteration whose folder is ``iterations/iter_NN``."""
    out = root / session_id
    folder = out / "iterations" / f"iter_{index:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    it = Iteration(index=index, status="ok", recipe=recipe, rationale="baseline", output_dir=str(folder),
                   decision="baseline")
    session = Session(id=session_id, request="pneumothorax, ignore drains", data_path=str(root / "data"),
                      out_dir=str(out), spec=spec, iterations=[it], best_iteration=index, status=status)
    session.save()
    return session


def make_iteration(root: Path, predictions: pd.DataFrame, recipe: Recipe, spec: TaskSpec, *, index: int = 1,
                   status: str = "stopped", n_permutations: int = 19) -> Path:
    """A fake finished iteration: session.json, val_predictions.csv and the evaluator's metrics.json."""
    session = make_session(root, recipe, spec, index=index, status=status)
    folder = Path(session.iterations[0].output_dir)
    predictions.to_csv(folder / "val_predictions.csv", index=False)
    confounders = {c.name: c.column for c in spec.confounders}
    metrics = evaluate_predictions(predictions, recipe.classes, recipe.evaluation, confounders=confounders,
                                   n_permutations=n_permutations, seed=recipe.seed)
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    return folder
