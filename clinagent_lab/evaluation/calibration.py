"""Calibration: reliability curve, expected calibration error, calibration slope and intercept.

The curve is ``sklearn.calibration.calibration_curve(strategy="uniform")`` (``n_bins`` equal-width bins on
[0, 1]; a probability on an inner edge belongs to the bin below it), kept per bin with its count so that
empty bins show as gaps. The slope and intercept come from scikit-learn's unpenalised logistic regression of
the outcome on ``logit(p)``; a well-calibrated model has slope 1 and intercept 0, a slope below 1 means
over-confident predictions.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from ..errors import DataValidationError
from ._utils import as_1d, check_same_length, jsonable

__all__ = ["ReliabilityCurve", "reliability_curve", "expected_calibration_error",
           "calibration_slope_intercept"]

_CLIP = 1e-7


@dataclass
class ReliabilityCurve:
    """Per-bin calibration: edges (n_bins + 1), and per bin the mean prediction, observed positive fraction
    and count. Empty bins hold NaN (None in :meth:`to_dict`)."""

    bin_edges: np.ndarray
    mean_predicted: np.ndarray
    observed_fraction: np.ndarray
    counts: np.ndarray

    def to_dict(self) -> dict[str, Any]:
        return jsonable({"bin_edges": self.bin_edges, "mean_predicted": self.mean_predicted,
                         "observed_fraction": self.observed_fraction, "counts": self.counts})


def _inputs(y, p) -> tuple[np.ndarray, np.ndarray]:
    y = as_1d(y, "y").astype(float)
    p = as_1d(p, "p", dtype=float)
    check_same_length(y=y, p=p)
    if len(p) and (p.min() < 0 or p.max() > 1 or not np.isfinite(p).all()):
        raise DataValidationError("probabilities must lie in [0, 1]", where="argument 'p'",
                                  fix="pass probabilities, not logits")
    return y, p


def reliability_curve(y, p, n_bins: int = 10) -> ReliabilityCurve:
    """Mean predicted probability and observed positive fraction in ``n_bins`` equal-width bins.

    Example:
        >>> c = reliability_curve([0, 1, 1, 1], [0.1, 0.2, 0.85, 0.95], n_bins=2)
        >>> c.observed_fraction.tolist(), c.counts.tolist()
        ([0.5, 1.0], [2, 2])
    """
    y, p = _inputs(y, p)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], p), minlength=n_bins)  # the binning sklearn uses
    mean_pred = np.full(n_bins, np.nan)
    observed = np.full(n_bins, np.nan)
    if len(p) and len(np.unique(y)) <= 2:
        # sklearn returns the non-empty bins only, in order; put them back in their places
        observed_used, mean_used = calibration_curve(y, p, n_bins=n_bins, strategy="uniform")
        observed[counts > 0], mean_pred[counts > 0] = observed_used, mean_used
    return ReliabilityCurve(edges, mean_pred, observed, counts)


def expected_calibration_error(y, p, n_bins: int = 10) -> float | None:
    """Sum over bins of (bin share) x |observed fraction - mean prediction|; None for no data.

    Example:
        >>> round(expected_calibration_error([0, 1, 1, 1], [0.1, 0.2, 0.85, 0.95], n_bins=2), 6)
        0.225
    """
    curve = reliability_curve(y, p, n_bins)
    used = curve.counts > 0
    if not used.any():
        return None
    gap = np.abs(curve.observed_fraction[used] - curve.mean_predicted[used])
    return float(np.sum(curve.counts[used] * gap) / curve.counts.sum())


def calibration_slope_intercept(y, p, *, max_iter: int = 100, tol: float = 1e-10) -> tuple[float | None,
                                                                                          float | None]:
    """``(slope, intercept)`` of the unpenalised logistic regression ``y ~ intercept + slope * logit(p)``.

    Probabilities are clipped to [1e-7, 1 - 1e-7]. Returns ``(None, None)`` when only one outcome is present
    or the fit does not converge (perfect separation).

    Example:
        >>> p = np.array([0.2, 0.4, 0.6, 0.8] * 5); y = np.array([0, 0, 1, 1] * 4 + [1, 0, 0, 1])
        >>> slope, intercept = calibration_slope_intercept(y, p)
        >>> slope > 0
        True
    """
    y, p = _inputs(y, p)
    if len(np.unique(y)) < 2:
        return None, None
    p = np.clip(p, _CLIP, 1 - _CLIP)
    x = np.log(p / (1 - p)).reshape(-1, 1)
    neg, pos = x[y == 0, 0], x[y == 1, 0]
    if neg.max() < pos.min() or pos.max() < neg.min():
        return None, None  # complete separation: the maximum-likelihood fit does not exist
    model = LogisticRegression(C=np.inf, solver="newton-cg", max_iter=max_iter, tol=tol)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        try:
            model.fit(x, y)
        except (ConvergenceWarning, np.linalg.LinAlgError, ValueError):
            return None, None
    slope, intercept = float(model.coef_[0, 0]), float(model.intercept_[0])
    return slope, intercept
