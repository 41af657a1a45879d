"""The statistics a report adds to the session: bootstrap intervals of the test metrics and the ROC band.

Point estimates are never recomputed for display: the report shows the values stored in ``session.json``.
Intervals are percentile bootstrap intervals from :func:`clinagent_lab.evaluation.bootstrap_ci`, computed on
the test predictions with the threshold chosen on validation held fixed, resampling whole patients when patient
ids are known (see :mod:`.inputs`). Each resample's metrics come from the frozen evaluator's
:func:`~clinagent_lab.evaluation.classification_metrics`, the same function that produced the point estimates.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..evaluation import BootstrapCI, bootstrap_ci, classification_metrics, roc_points
from ..evaluation.metrics import target_class_index
from ..recipe import Recipe
from ..widgets.figdata import roc_band as figure_band

__all__ = [
    "CI_METRICS",
    "DEFAULT_RESAMPLES",
    "BootstrapSettings",
    "bootstrap_settings",
    "metric_intervals",
    "prediction_arrays",
    "roc_band",
    "target_index",
]

#: resamples used when the recipe switched the evaluator's bootstrap off (``evaluation.bootstrap == 0``)
DEFAULT_RESAMPLES = 1000

#: metrics that get an interval, per kind of task (only those present in the stored test metrics are shown)
CI_METRICS = {
    "binary": ("primary", "auroc", "sensitivity", "specificity", "ppv", "npv", "balanced_accuracy", "f1",
               "accuracy"),
    "multiclass": ("primary", "auroc_macro", "balanced_accuracy", "accuracy", "f1_macro", "auroc",
                   "sensitivity", "specificity"),
}


@dataclass(frozen=True)
class BootstrapSettings:
    n_resamples: int
    seed: int
    confidence: float = 0.95


def bootstrap_settings(recipe: Recipe) -> BootstrapSettings:
    """The recipe's evaluator settings: ``evaluation.bootstrap`` resamples and the recipe seed."""
    n = recipe.evaluation.bootstrap if recipe.evaluation.bootstrap > 0 else DEFAULT_RESAMPLES
    return BootstrapSettings(n_resamples=int(n), seed=int(recipe.seed))


def prediction_arrays(pred: Any, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``(labels, probabilities)`` of a predictions table, classes in recipe order."""
    y = pred["label"].to_numpy().astype(np.int64)
    probs = np.column_stack([pred[f"prob_{c}"].to_numpy(float) for c in classes])
    return y, probs


def _metric_source(recipe: Recipe, threshold: float | None) -> Callable[[np.ndarray, np.ndarray], dict]:
    """All classification metrics of one resample, memoised so that several intervals share the work."""
    cfg = recipe.evaluation
    cache: dict[bytes, dict[str, Any]] = {}

    def compute(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
        key = hashlib.sha1(y.tobytes() + p.tobytes()).digest()
        if key not in cache:
            cache[key] = classification_metrics(
                y, p, recipe.classes, positive_class=cfg.positive_class, primary=cfg.primary_metric,
                metric_params=cfg.metric_params, operating_point=cfg.operating_point,
                operating_value=cfg.operating_value, threshold=threshold)
        return cache[key]

    return compute


def metric_intervals(pred: Any, recipe: Recipe, stored: dict[str, Any], groups: np.ndarray | None,
                   settings: BootstrapSettings | None = None) -> dict[str, BootstrapCI]:
    """Bootstrap interval of every test metric in :data:`CI_METRICS` that ``stored`` holds as a number.

    Args:
        pred: test predictions (``label``, ``prob_<class>``).
        recipe: the best iteration's recipe (classes, evaluation settings, seed).
        stored: the final test metrics from ``session.json``; its ``threshold`` (chosen on validation) is held
            fixed in every resample.
        groups: patient id per row (resample patients) or None (resample rows).
        settings: resamples and seed; default :func:`bootstrap_settings` of ``recipe``.
    """
    settings = settings or bootstrap_settings(recipe)
    y, probs = prediction_arrays(pred, recipe.classes)
    threshold = stored.get("threshold") if isinstance(stored.get("threshold"), (int, float)) else None
    source = _metric_source(recipe, threshold)
    kind = "binary" if len(recipe.classes) == 2 else "multiclass"
    out: dict[str, BootstrapCI] = {}
    for name in CI_METRICS[kind]:
        if not isinstance(stored.get(name), (int, float)) or isinstance(stored.get(name), bool):
            continue
        out[name] = bootstrap_ci(lambda yy, pp, key=name: source(yy, pp).get(key), y, probs, groups=groups,
                                 n_resamples=settings.n_resamples, confidence=settings.confidence,
                                 seed=settings.seed)
    return out


def roc_band(y: np.ndarray, score: np.ndarray, groups: np.ndarray | None, settings: BootstrapSettings,
             grid: int = 51) -> dict[str, Any] | None:
    """Empirical ROC and a pointwise bootstrap band of the true-positive rate on a grid of false-positive rates
    (:func:`clinagent_lab.widgets.figdata.roc_band`: the evaluator's step reading, whole patients resampled).

    Returns ``{"fpr", "tpr", "grid", "low", "high"}`` (lists; ``low``/``high`` None without a band) or None
    when a class is absent.
    """
    y = np.asarray(y, dtype=bool)
    fpr, tpr, _ = roc_points(y, score)
    if np.isnan(fpr).any() or np.isnan(tpr).any():
        return None
    band = figure_band(y, score, n_resamples=settings.n_resamples, confidence=settings.confidence,
                       seed=settings.seed, grid_points=grid, groups=groups)
    xs = np.linspace(0.0, 1.0, grid) if band is None else band.fpr
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist(), "grid": xs.tolist(),
            "low": None if band is None else band.low.tolist(), "high": None if band is None else band.high.tolist()}


def target_index(recipe: Recipe) -> int | None:
    """The class whose ROC and calibration the report shows (the evaluator's target class)."""
    cfg = recipe.evaluation
    return target_class_index(recipe.classes, cfg.metric_params, cfg.positive_class)
