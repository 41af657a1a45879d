"""Operating points on the empirical ROC curve: where to put the decision threshold.

Conventions used throughout the evaluator:

* a case is called positive when ``score >= threshold``;
* the ROC is the *empirical* one (one point per distinct score, as ``sklearn.metrics.roc_curve`` with
  ``drop_intermediate=False``); nothing is interpolated between points. "Sensitivity at 80% specificity" is
  therefore the best sensitivity that some real threshold achieves while keeping specificity >= 0.80 on these
  data, never a value read off a straight line between two points;
* comparisons with a requested specificity/sensitivity allow ``1e-12`` of floating-point slack, so that
  8 of 10 negatives counts as specificity 0.8;
* undefined answers (only one class present) are ``None``.
"""

from __future__ import annotations

import warnings

from collections.abc import Callable

import numpy as np
from sklearn.exceptions import UndefinedMetricWarning
from sklearn.metrics import roc_curve

from ..errors import RecipeError, UnknownNameError
from ._utils import as_1d, check_same_length

__all__ = [
    "roc_points",
    "choose_threshold",
    "sensitivity_at_specificity",
    "specificity_at_sensitivity",
    "confusion_counts",
    "THRESHOLD_RULES",
]

_EPS = 1e-12


def roc_points(y, score) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Empirical ROC curve: ``(fpr, tpr, thresholds)`` with thresholds in decreasing order.

    The first point is ``(0, 0)`` at threshold ``+inf`` (nothing called positive), exactly as
    ``sklearn.metrics.roc_curve(y, score, drop_intermediate=False)``. When a class is absent its rate is NaN.

    Example:
        >>> fpr, tpr, thr = roc_points([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
        >>> tpr.tolist(), fpr.tolist()
        ([0.0, 0.5, 0.5, 1.0, 1.0], [0.0, 0.0, 0.5, 0.5, 1.0])
    """
    y = as_1d(y, "y").astype(bool)
    score = as_1d(score, "score", dtype=float)
    check_same_length(y=y, score=score)
    if not len(y):
        return np.zeros(1), np.zeros(1), np.array([np.inf])
    with warnings.catch_warnings():  # a missing class gives NaN rates, said in the docstring
        warnings.simplefilter("ignore", UndefinedMetricWarning)
        fpr, tpr, thresholds = roc_curve(y, score, drop_intermediate=False)
    if not y.any():
        tpr = np.full_like(tpr, np.nan)
    if y.all():
        fpr = np.full_like(fpr, np.nan)
    return fpr, tpr, thresholds


def _finite(threshold: float, score: np.ndarray) -> float:
    """Replace the ``+inf`` of the first ROC point by the next float above the highest score."""
    if np.isinf(threshold):
        return float(np.nextafter(np.max(score), np.inf))
    return float(threshold)


def _defined(fpr: np.ndarray, tpr: np.ndarray) -> bool:
    return not (np.isnan(fpr).any() or np.isnan(tpr).any())


def _youden(fpr, tpr, thr, value):
    j = tpr[1:] - fpr[1:]  # the +inf point (J = 0) never wins: the last point also has J = 0
    return thr[1 + int(np.argmax(j))]


def _at_specificity(fpr, tpr, thr, value):
    ok = (1.0 - fpr) >= value - _EPS
    best = tpr[ok].max()
    candidates = np.flatnonzero(ok & (tpr == best))
    return thr[candidates[0]]  # thresholds decrease: the first candidate is the highest threshold


def _at_sensitivity(fpr, tpr, thr, value):
    ok = tpr >= value - _EPS
    best = (1.0 - fpr)[ok].max()
    candidates = np.flatnonzero(ok & ((1.0 - fpr) == best))
    return thr[candidates[-1]]  # lowest such threshold: the most sensitive at that specificity


_Rule = Callable[[np.ndarray, np.ndarray, np.ndarray, "float | None"], float]

#: Threshold rules by name. ``fixed`` is handled before the ROC is computed.
THRESHOLD_RULES: dict[str, _Rule | None] = {
    "youden": _youden,
    "at_specificity": _at_specificity,
    "at_sensitivity": _at_sensitivity,
    "fixed": None,
}

_NEEDS_VALUE = {"at_specificity", "at_sensitivity", "fixed"}


def choose_threshold(y, score, rule: str = "youden", value: float | None = None) -> float | None:
    """Pick a decision threshold on these data by ``rule``.

    Rules:
        ``youden``: maximise TPR - FPR (ties: the highest threshold).
        ``at_specificity``: the highest sensitivity whose specificity is >= ``value``; among thresholds
        reaching it, the highest one (so specificity is as high as possible too).
        ``at_sensitivity``: the highest specificity whose sensitivity is >= ``value``; among thresholds
        reaching it, the lowest one (so sensitivity is as high as possible too).
        ``fixed``: ``value`` is the threshold.

    Returns:
        A finite float (``score >= threshold`` means positive), or None when only one class is present.
        When the best choice is "call nothing positive" the threshold is the next float above the highest
        score rather than infinity.

    Example:
        >>> choose_threshold([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], "youden")
        0.8
        >>> choose_threshold([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], "at_sensitivity", 1.0)
        0.35
    """
    if rule not in THRESHOLD_RULES:
        raise UnknownNameError("operating-point rule", rule, list(THRESHOLD_RULES))
    if rule in _NEEDS_VALUE and value is None:
        raise RecipeError(f"operating point '{rule}' needs a value", where="evaluation.operating_value",
                          fix="set operating_value (a specificity/sensitivity in (0, 1], or the threshold)")
    if rule == "fixed":
        return float(value)
    score = as_1d(score, "score", dtype=float)
    fpr, tpr, thr = roc_points(y, score)
    if not _defined(fpr, tpr):
        return None
    return _finite(THRESHOLD_RULES[rule](fpr, tpr, thr, value), score)


def sensitivity_at_specificity(y, score, specificity: float) -> float | None:
    """Best sensitivity reached by a real threshold with specificity >= ``specificity`` (no interpolation).

    Example:
        >>> sensitivity_at_specificity([0, 0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.6, 0.5, 0.9], 0.8)
        0.5
    """
    fpr, tpr, _ = roc_points(y, score)
    if not _defined(fpr, tpr):
        return None
    return float(tpr[(1.0 - fpr) >= specificity - _EPS].max())


def specificity_at_sensitivity(y, score, sensitivity: float) -> float | None:
    """Best specificity reached by a real threshold with sensitivity >= ``sensitivity`` (no interpolation).

    Example:
        >>> specificity_at_sensitivity([0, 0, 0, 0, 1, 1], [0.1, 0.2, 0.3, 0.6, 0.5, 0.9], 1.0)
        0.75
    """
    fpr, tpr, _ = roc_points(y, score)
    if not _defined(fpr, tpr):
        return None
    return float((1.0 - fpr)[tpr >= sensitivity - _EPS].max())


def confusion_counts(y, score, threshold: float) -> dict[str, int]:
    """``tp``, ``fp``, ``tn``, ``fn`` when ``score >= threshold`` is called positive."""
    y = as_1d(y, "y").astype(bool)
    pred = as_1d(score, "score", dtype=float) >= threshold
    return {"tp": int(np.sum(pred & y)), "fp": int(np.sum(pred & ~y)),
            "tn": int(np.sum(~pred & ~y)), "fn": int(np.sum(~pred & y))}
