"""Builders shared by the ``test_plan_*`` files: fingerprints, specs, iterations, and real validation metrics.

Validation metrics come from the frozen evaluator (:func:`evaluate_predictions`) run on synthetic scores, so
the refiner and the selection rule see exactly the dicts an iteration writes. Import with
``from plan_fixtures import *``.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import numpy as np
import pandas as pd

from clinagent_lab.records import Iteration
from clinagent_lab.data.base import DatasetFingerprint
from clinagent_lab.evaluation.evaluate import evaluate_predictions
from clinagent_lab.recipe import EvalConfig, Recipe
from clinagent_lab.spec import Confounder, TaskSpec

__all__ = [
    "CLASSES",
    "SCORES",
    "drain_spec",
    "drain_validation",
    "evaluate_scores",
    "make_fingerprint",
    "make_iteration",
    "make_recipe",
    "scores",
]

CLASSES = ["normal", "pneumothorax"]

#: logits of the synthetic models on the shared validation set: y = label, d = drain, e = noise
SCORES = {
    # follows the drain: high plain AUROC (the drain tracks the label in validation), blind inside a group
    "shortcut": lambda y, d, e: 3.5 * d + 0.4 * y + 0.6 * e - 2.0,
    # reads the finding only: lower plain AUROC, the same inside every drain group
    "fair": lambda y, d, e: 1.6 * y + e - 0.8,
    # mostly the finding, partly the drain
    "partial": lambda y, d, e: 1.9 * y + 0.8 * d + e - 1.3,
    # a mitigated version of "partial": less drain, a slightly weaker finding signal
    "mitigated": lambda y, d, e: 1.6 * y + 0.1 * d + e - 0.9,
    # a mitigation that lost much of the signal
    "weak": lambda y, d, e: 0.9 * y + 0.1 * d + e - 0.5,
}


def make_fingerprint(classes=CLASSES, counts=None, *, side: int = 32, metadata=("chest_drain",),
                     task_type: str = "binary_classification", box_fraction: float | None = None
                     ) -> DatasetFingerprint:
    classes = list(classes)
    counts = list(counts or [60] * len(classes))
    split = {name: {c: max(1, round(n * share)) for c, n in zip(classes, counts)}
             for name, share in (("train", 0.6), ("val", 0.2), ("test", 0.2))}
    train = list(split["train"].values())
    return DatasetFingerprint(
        format="csv_manifest", root="/data/x", task_type=task_type, classes=classes, n_images=sum(counts),
        class_counts=dict(zip(classes, counts)), split_counts=split, splits_given=False, split_rule="grouped",
        image_sizes={"height": {"median": side}, "width": {"median": side}}, channels=[1],
        metadata_columns=list(metadata), imbalance_ratio=max(train) / min(train), box_fraction=box_fraction)


def drain_spec(action: str = "mitigate", column: str | None = "chest_drain", **fields: Any) -> TaskSpec:
    base = {"task_type": "binary_classification", "modality": "chest_xray", "target_classes": ["pneumothorax"],
            "confounders": [Confounder(name="chest_drain", column=column, action=action)]}
    return TaskSpec(**{**base, **fields})


def make_recipe(**changes: Any) -> Recipe:
    """A baseline-like recipe for the drain task; ``changes`` are dotted fields (``data__image_size=32``)."""
    from clinagent_lab.recipe import apply_patch

    r = Recipe(task_type="binary_classification", classes=list(CLASSES))
    r = apply_patch(r, {"evaluation.positive_class": 1, "evaluation.selection_metric": "group_balanced_auroc",
                        "model.architecture": "small_cnn", "data.image_size": 32})
    return apply_patch(r, {k.replace("__", "."): v for k, v in changes.items()}) if changes else r


def make_iteration(index: int, metrics: dict[str, Any] | None = None, *, status: str = "ok",
                   recipe: Recipe | None = None, curve: list[float] | None = None, idea: str = "",
                   error: dict[str, Any] | None = None) -> Iteration:
    metrics = dict(metrics or {})
    value = metrics.get("selection_value")
    return Iteration(index=index, status=status, recipe=recipe or make_recipe(), rationale="test", idea=idea,
                     val_metrics=metrics, selection_value=value, curve=list(curve or []), error=error)


@cache
def drain_validation(seed: int = 0, n: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(label, drain, noise): the drain marks 90% of positives and 10% of negatives, as in training."""
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < 0.5).astype(int)
    drain = np.where(y == 1, rng.random(n) < 0.9, rng.random(n) < 0.1).astype(int)
    return y, drain, rng.normal(0.0, 1.0, n)


def scores(kind: str, seed: int = 0) -> pd.DataFrame:
    """The predictions table of model ``kind`` (see :data:`SCORES`) on the validation set of ``seed``."""
    y, drain, noise = drain_validation(seed)
    p = 1.0 / (1.0 + np.exp(-SCORES[kind](y, drain, noise)))
    return pd.DataFrame({"image_id": [f"img{i:03d}" for i in range(len(y))], "label": y,
                         "prob_normal": 1.0 - p, "prob_pneumothorax": p, "chest_drain": drain})


@cache
def _evaluate(kind: str, seed: int, selection_metric: str | None) -> str:
    import json

    cfg = EvalConfig(positive_class=1, bootstrap=0, selection_metric=selection_metric)
    return json.dumps(evaluate_predictions(scores(kind, seed), CLASSES, cfg,
                                           confounders={"chest_drain": "chest_drain"}, n_permutations=100))


def evaluate_scores(kind: str, seed: int = 0, selection_metric: str | None = "group_balanced_auroc"
                    ) -> dict[str, Any]:
    """The evaluator's validation metrics for model ``kind`` (a fresh dict each call)."""
    import json

    return json.loads(_evaluate(kind, seed, selection_metric))
