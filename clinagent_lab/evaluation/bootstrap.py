"""Percentile bootstrap confidence intervals, by row or by patient (cluster bootstrap).

Resampling matches ``scipy.stats.bootstrap(..., paired=True, method="percentile", vectorized=False)``: all
index resamples are drawn at once as ``rng.integers(0, n, (n_resamples, n))`` from
``numpy.random.default_rng(seed)`` and the interval is the linear-interpolation quantile of the bootstrap
distribution at ``(1 - confidence) / 2`` and ``(1 + confidence) / 2``. With the same generator and a metric
that is defined on every resample the interval equals scipy's to floating-point precision.

With ``groups`` (patient ids) whole patients are drawn with replacement, ``rng.integers(0, n_groups,
(n_resamples, n_groups))``, and every row of a drawn patient enters the resample. Resamples on which the
metric is undefined (None or NaN: for example no positive case drawn) are skipped and counted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ._utils import as_1d, check_same_length, fnum

__all__ = ["BootstrapCI", "bootstrap_ci", "resample_indices"]

log = logging.getLogger(__name__)


class BootstrapCI(tuple):
    """``(point, low, high)`` that also carries ``n_resamples``, ``n_skipped`` and ``confidence``.

    Unpacks as a 3-tuple; :meth:`to_dict` gives the JSON form.
    """

    def __new__(cls, point: float | None, low: float | None, high: float | None, *, n_resamples: int,
                n_skipped: int, confidence: float) -> BootstrapCI:
        obj = super().__new__(cls, (point, low, high))
        obj.n_resamples, obj.n_skipped, obj.confidence = n_resamples, n_skipped, confidence
        return obj

    @property
    def point(self) -> float | None:
        return self[0]

    @property
    def low(self) -> float | None:
        return self[1]

    @property
    def high(self) -> float | None:
        return self[2]

    def to_dict(self) -> dict[str, Any]:
        return {"point": self.point, "low": self.low, "high": self.high, "confidence": self.confidence,
                "n_resamples": self.n_resamples, "n_skipped": self.n_skipped}


def resample_indices(n: int, n_resamples: int, rng: np.random.Generator, groups=None) -> Iterator[np.ndarray]:
    """Row indices of each bootstrap resample (whole groups when ``groups`` is given)."""
    if groups is None:
        yield from rng.integers(0, n, (n_resamples, n))
        return
    _, codes = np.unique(as_1d(np.asarray(groups).astype(str), "groups"), return_inverse=True)
    order = np.argsort(codes, kind="stable")
    starts = np.r_[0, np.cumsum(np.bincount(codes))]
    members = [order[starts[g]:starts[g + 1]] for g in range(len(starts) - 1)]
    for drawn in rng.integers(0, len(members), (n_resamples, len(members))):
        yield np.concatenate([members[g] for g in drawn])


def _value(metric_fn: Callable[[np.ndarray, np.ndarray], Any], y: np.ndarray, p: np.ndarray) -> float | None:
    return fnum(metric_fn(y, p))


def bootstrap_ci(metric_fn: Callable[[np.ndarray, np.ndarray], Any], y, p, *, groups=None,
                 n_resamples: int = 1000, confidence: float = 0.95, seed: int = 0) -> BootstrapCI:
    """Point estimate and percentile bootstrap interval of ``metric_fn(y, p)``.

    Args:
        metric_fn: function of (labels, predictions) returning a float, or None/NaN when undefined.
        y: labels, one per row.
        p: predictions, one row per row of ``y`` (scores or an (N, C) probability matrix).
        groups: patient (cluster) id per row; resample whole patients when given.
        n_resamples: number of bootstrap resamples.
        confidence: two-sided confidence level.
        seed: seed of ``numpy.random.default_rng``.

    Returns:
        :class:`BootstrapCI` ``(point, low, high)``; low/high are None when fewer than two resamples were
        defined.

    Example:
        >>> y = np.array([0, 1] * 20); p = np.linspace(0, 1, 40)
        >>> point, low, high = bootstrap_ci(lambda a, b: float(np.mean(b[a == 1])), y, p, n_resamples=200)
        >>> low < point < high
        True
    """
    y, p = np.asarray(y), np.asarray(p)
    check_same_length(y=y, p=p, **({} if groups is None else {"groups": np.asarray(groups)}))
    point = _value(metric_fn, y, p)
    rng = np.random.default_rng(seed)
    values = [_value(metric_fn, y[idx], p[idx]) for idx in resample_indices(len(y), n_resamples, rng, groups)]
    kept = np.array([v for v in values if v is not None], dtype=float)
    skipped = n_resamples - len(kept)
    if skipped:
        log.info("bootstrap: metric undefined on %d of %d resamples (skipped)", skipped, n_resamples)
    low = high = None
    if len(kept) >= 2:
        alpha = (1 - confidence) / 2
        low, high = (float(v) for v in np.quantile(kept, [alpha, 1 - alpha]))
    return BootstrapCI(point, low, high, n_resamples=n_resamples, n_skipped=skipped, confidence=confidence)
