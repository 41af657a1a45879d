"""The numbers behind every figure: ROC curves with bootstrap bands, operating points, confounder views.

Pure functions of a predictions table (``label``, ``prob_<class>`` per class, confounder columns) and the
recipe. Every number comes from the frozen evaluator (:func:`~clinagent_lab.evaluation.roc_points`,
:func:`~clinagent_lab.evaluation.choose_threshold`, ``threshold_metrics``, :func:`~clinagent_lab.evaluation.auroc`,
:func:`~clinagent_lab.evaluation.confounder_metrics`, ``resample_indices``); this module only arranges them for
drawing, so the static PNGs, the widgets and ``metrics.json`` always agree.

The bootstrap band of a ROC curve is pointwise: rows are resampled with the evaluator's generator, each
resample's empirical ROC is read on a fixed FPR grid as "the best TPR some real threshold reaches with FPR at
most x" (the evaluator's no-interpolation convention, i.e. ``sensitivity_at_specificity(1 - x)``), and the
band is the ``(1 ± confidence) / 2`` quantile of those values at each grid point.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataValidationError, RecipeError
from ..evaluation.bootstrap import resample_indices
from ..evaluation.confounders import confounder_metrics, group_keys
from ..evaluation.evaluate import _arrays as prediction_arrays
from ..evaluation.metrics import auroc, target_class_index, threshold_metrics
from ..evaluation.operating_point import choose_threshold, roc_points
from ..recipe import EvalConfig, Recipe
from ..spec import TaskSpec

__all__ = [
    "ConfounderFigureData",
    "OperatingPoint",
    "RocBand",
    "RocCurve",
    "RocFigureData",
    "confounder_column",
    "confounder_figure_data",
    "operating_point",
    "prediction_arrays",
    "roc_band",
    "roc_figure_data",
    "tpr_on_grid",
]

_GRID_POINTS = 101
_EPS = 1e-12


# ----------------------------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class OperatingPoint:
    """Where ``score >= threshold`` puts a classifier: the evaluator's ``threshold_metrics`` at one threshold."""

    threshold: float | None
    sensitivity: float | None
    specificity: float | None
    ppv: float | None
    npv: float | None
    confusion: dict[str, int] | None

    @property
    def fpr(self) -> float | None:
        return None if self.specificity is None else 1.0 - self.specificity

    @property
    def tpr(self) -> float | None:
        return self.sensitivity

    def value(self, kind: str) -> float | None:
        """``sensitivity``, ``specificity`` or ``threshold`` by name."""
        return {"sensitivity": self.sensitivity, "specificity": self.specificity,
                "threshold": self.threshold}[kind]


@dataclass(frozen=True)
class RocBand:
    """Pointwise bootstrap band of TPR on a fixed FPR grid."""

    fpr: np.ndarray
    low: np.ndarray
    high: np.ndarray
    confidence: float
    n_resamples: int
    n_skipped: int


@dataclass(frozen=True)
class RocCurve:
    """One-vs-rest ROC of one class with its operating point and band."""

    class_name: str
    class_index: int
    fpr: np.ndarray
    tpr: np.ndarray
    thresholds: np.ndarray
    auroc: float | None
    point: OperatingPoint
    band: RocBand | None
    is_target: bool = False

    @property
    def defined(self) -> bool:
        return not (np.isnan(self.fpr).any() or np.isnan(self.tpr).any())


@dataclass(frozen=True)
class RocFigureData:
    """Everything a ROC figure shows: one curve for a binary task, one per class for a multiclass one."""

    classes: list[str]
    curves: list[RocCurve]
    target: int | None

    def curve(self, name_or_index: str | int) -> RocCurve:
        """The curve of a class, by name or index."""
        for c in self.curves:
            if name_or_index in (c.class_name, c.class_index):
                return c
        raise RecipeError(f"no ROC curve for class {name_or_index!r}", where="argument 'name_or_index'",
                          fix=f"use one of {[c.class_name for c in self.curves]}")

    @property
    def main(self) -> RocCurve:
        """The target class's curve (the first one when there is no target class)."""
        return next((c for c in self.curves if c.is_target), self.curves[0])


@dataclass(frozen=True)
class ConfounderFigureData:
    """Scores by label x group, error rates by group at a threshold, and the dependence measures."""

    name: str
    column: str
    target_class: str
    threshold: float | None
    groups: list[str]
    scores: dict[tuple[int, str], np.ndarray]
    fpr_by_group: dict[str, float | None]
    tpr_by_group: dict[str, float | None]
    auroc_by_group: dict[str, float | None]
    dependence: dict[str, float | None] | None
    dependence_p: dict[str, float | None] | None
    reliance: dict[str, float | None] | None
    positive_value: str | None
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------------ ROC pieces


def operating_point(y, score, threshold: float | None) -> OperatingPoint:
    """The evaluator's sensitivity, specificity, PPV and NPV at ``score >= threshold``.

    Example:
        >>> p = operating_point([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], 0.35)
        >>> p.sensitivity, p.specificity, p.fpr
        (1.0, 0.5, 0.5)
    """
    m = threshold_metrics(np.asarray(y).astype(bool), np.asarray(score, dtype=float), threshold)
    return OperatingPoint(threshold=None if threshold is None else float(threshold),
                          sensitivity=m["sensitivity"], specificity=m["specificity"], ppv=m["ppv"],
                          npv=m["npv"], confusion=m["confusion"])


def tpr_on_grid(fpr: np.ndarray, tpr: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Best TPR of the empirical ROC with FPR <= each grid value (a step function, never interpolated).

    Equals ``sensitivity_at_specificity(y, score, 1 - x)`` for every grid value ``x``.
    """
    idx = np.searchsorted(fpr, np.asarray(grid, dtype=float) + _EPS, side="right") - 1
    return tpr[np.clip(idx, 0, len(tpr) - 1)]


def roc_band(y, score, *, n_resamples: int, confidence: float = 0.95, seed: int = 0,
             grid_points: int = _GRID_POINTS, groups=None) -> RocBand | None:
    """Pointwise percentile bootstrap band of the ROC (rows resampled, or whole ``groups``: patients);
    None when fewer than 2 resamples are defined."""
    if n_resamples <= 0:
        return None
    y = np.asarray(y).astype(bool)
    score = np.asarray(score, dtype=float)
    grid = np.linspace(0.0, 1.0, grid_points)
    rows = []
    for idx in resample_indices(len(y), n_resamples, np.random.default_rng(seed), groups):
        fpr, tpr, _ = roc_points(y[idx], score[idx])
        if not (np.isnan(fpr).any() or np.isnan(tpr).any()):
            rows.append(tpr_on_grid(fpr, tpr, grid))
    if len(rows) < 2:
        return None
    alpha = (1.0 - confidence) / 2.0
    low, high = np.quantile(np.vstack(rows), [alpha, 1.0 - alpha], axis=0)
    return RocBand(fpr=grid, low=low, high=high, confidence=confidence, n_resamples=n_resamples,
                   n_skipped=n_resamples - len(rows))


def _eval_config(recipe: Recipe | None) -> EvalConfig:
    return recipe.evaluation if recipe is not None else EvalConfig()


def _curve(y: np.ndarray, score: np.ndarray, name: str, k: int, cfg: EvalConfig, threshold: float | None,
           is_target: bool, bootstrap: int, confidence: float, seed: int) -> RocCurve:
    fpr, tpr, thr = roc_points(y, score)
    if threshold is None:
        threshold = choose_threshold(y, score, cfg.operating_point, cfg.operating_value)
    return RocCurve(class_name=name, class_index=k, fpr=fpr, tpr=tpr, thresholds=thr, auroc=auroc(y, score),
                    point=operating_point(y, score, threshold),
                    band=roc_band(y, score, n_resamples=bootstrap, confidence=confidence, seed=seed),
                    is_target=is_target)


def _classes_target(recipe: Recipe | None, classes: list[str] | None,
                    positive: int | str | None) -> tuple[list[str], int | None]:
    if recipe is None and classes is None:
        raise RecipeError("figure data need the class names", where="arguments 'recipe'/'classes'",
                          fix="pass the iteration's Recipe, or classes=[...] in index order")
    names = list(classes if classes is not None else recipe.classes)
    if isinstance(positive, str):
        return names, target_class_index(names, {"class": positive}, None)
    if positive is not None or recipe is None:
        return names, target_class_index(names, None, positive)
    cfg = recipe.evaluation
    return names, target_class_index(names, cfg.metric_params, cfg.positive_class)


def roc_figure_data(predictions: pd.DataFrame, recipe: Recipe | None = None, threshold: float | None = None, *,
                    classes: list[str] | None = None, positive: int | str | None = None,
                    bootstrap: int | None = None, confidence: float = 0.95,
                    seed: int | None = None) -> RocFigureData:
    """ROC curve(s), AUROC, band and operating point(s) of a predictions table.

    Args:
        predictions: one row per image with ``label`` and ``prob_<class>`` per class.
        recipe: the iteration's recipe (classes, target class, operating-point rule, bootstrap count, seed).
        threshold: operating threshold of the target class; default: chosen on these data by the recipe's
            rule, exactly as the evaluator does. Other classes of a multiclass task always use the rule.
        classes: class names (instead of a recipe).
        positive: target class (index or name) instead of the recipe's; binary default: class 1.
        bootstrap: resamples for the band (default: ``recipe.evaluation.bootstrap``; 0: no band).
        confidence: band level.
        seed: bootstrap seed (default: the recipe's seed).

    Returns:
        Binary: the positive class's curve. Multiclass: one one-vs-rest curve per class, the target marked.
    """
    names, target = _classes_target(recipe, classes, positive)
    y, probs = prediction_arrays(predictions, names)
    cfg = _eval_config(recipe)
    n_boot = cfg.bootstrap if bootstrap is None else int(bootstrap)
    seed = (recipe.seed if recipe is not None else 0) if seed is None else int(seed)
    shown = [target if target is not None else 1] if len(names) == 2 else list(range(len(names)))
    curves = [_curve(y == k, probs[:, k], names[k], k, cfg, threshold if k == target else None, k == target,
                     n_boot, confidence, seed) for k in shown]
    return RocFigureData(classes=names, curves=curves, target=target)


# --------------------------------------------------------------------------------------------- confounders


def confounder_column(spec: TaskSpec | None, name: str, predictions: pd.DataFrame) -> str:
    """The predictions column holding confounder ``name`` (the spec's grounded column, else the name)."""
    c = spec.confounder(name) if spec is not None else None
    column = (c.column if c is not None and c.column else None) or name
    if column not in predictions.columns:
        raise DataValidationError(f"the predictions have no column '{column}' for confounder '{name}'",
                                  where=f"predictions column '{column}'",
                                  fix="write the confounder's metadata column into the predictions table; "
                                      f"columns present: {', '.join(map(str, predictions.columns))}")
    return column


def _metric_entry(metrics: dict[str, Any] | None, name: str) -> dict[str, Any]:
    if not metrics:
        return {}
    entry = (metrics.get("confounders") or {}).get(name)
    return entry if isinstance(entry, dict) else (metrics if "fpr_by_group" in metrics else {})


def confounder_figure_data(predictions: pd.DataFrame, recipe: Recipe, spec: TaskSpec | None, confounder_name: str,
                           *, threshold: float | None = None, metrics: dict[str, Any] | None = None,
                           n_permutations: int = 200, seed: int | None = None) -> ConfounderFigureData:
    """Confounder view of the target class's score.

    Args:
        predictions: the predictions table (``label``, ``prob_<class>``, the confounder column).
        recipe: the iteration's recipe (classes, target class, operating-point rule, seed).
        spec: the task spec (maps the confounder name to its column); None: the column is the name.
        confounder_name: which confounder.
        threshold: operating threshold; default ``metrics["threshold"]``, else chosen by the recipe's rule.
        metrics: the iteration's ``metrics.json`` (or its ``confounders[name]`` entry): when it holds the
            dependence measures they are reused instead of recomputing the permutation tests.
        n_permutations: permutations for the dependence p-values when they are computed here.
        seed: permutation seed (default: the recipe's seed, as the evaluator uses).

    Raises:
        RecipeError: a multiclass task without a target class (the evaluator skips confounders there too).
    """
    names, k = _classes_target(recipe, None, None)
    if k is None:
        raise RecipeError("confounder views need a target class in a multiclass task",
                          where="evaluation.metric_params", fix="set metric_params.class to the costly class")
    column = confounder_column(spec, confounder_name, predictions)
    y, probs = prediction_arrays(predictions, names)
    y_k, score = y == k, probs[:, k]
    if threshold is None:
        threshold = (metrics or {}).get("threshold")
    if threshold is None:
        threshold = choose_threshold(y_k, score, recipe.evaluation.operating_point, recipe.evaluation.operating_value)
    entry = _metric_entry(metrics, confounder_name)
    reuse = entry.get("dependence") is not None
    values = predictions[column].to_numpy(object)
    result = confounder_metrics(y_k, score, values, threshold, positive_label=True,
                                n_permutations=0 if reuse else n_permutations,
                                seed=recipe.seed if seed is None else seed)
    keys, _ = group_keys(values)
    groups = list(result["groups"])
    scores = {(lab, g): score[(y_k == bool(lab)) & (keys == g)] for lab in (0, 1) for g in groups}
    return ConfounderFigureData(
        name=confounder_name, column=column, target_class=names[k],
        threshold=None if threshold is None else float(threshold), groups=groups, scores=scores,
        fpr_by_group=result["fpr_by_group"], tpr_by_group=result["tpr_by_group"],
        auroc_by_group=result["auroc_by_group"],
        dependence=entry["dependence"] if reuse else result["dependence"],
        dependence_p=entry.get("dependence_p") if reuse else result["dependence_p"],
        reliance=result["reliance"], positive_value=result["positive_value"], notes=list(result["notes"]))
