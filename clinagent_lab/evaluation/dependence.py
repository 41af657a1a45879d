"""How much a model's score depends on a confounder *given the label*.

A model that ignores a chest drain produces scores that, among patients with the same label, are unrelated
to the drain. Three measures of the remaining dependence, all computed within label strata:

* ``partial_correlation``: Pearson correlation of score and confounder after centring both within each
  label stratum (pooled over strata). Needs a binary or numeric confounder.
* ``conditional_mi``: mutual information (nats) between the binned score and the (binned) confounder inside
  each stratum (``sklearn.metrics.mutual_info_score``), weighted by stratum size.
* ``hsic``: the biased HSIC statistic ``trace(K H L H) / n^2`` inside each stratum, weighted by stratum size,
  with Gaussian kernels whose bandwidth is the median non-zero pairwise distance (median heuristic).

Permutation p-values shuffle the confounder *within* label strata (so label-confounder association is kept
and only the score-confounder link given the label is broken), using ``numpy.random.default_rng(seed)``;
``p = (1 + #{permuted >= observed}) / (1 + n_permutations)``, on ``|r|`` for the correlation.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.metrics import mutual_info_score

__all__ = [
    "EncodedConfounder",
    "encode_confounder",
    "partial_correlation",
    "conditional_mutual_information",
    "conditional_hsic",
    "dependence_tests",
    "DEPENDENCE_MEASURES",
]

_BINS = 10
_MAX_LEVELS_FOR_ONEHOT = 32


@dataclass
class EncodedConfounder:
    """A confounder in the three forms the measures need (rows aligned with the scores).

    Attributes:
        numeric: float values (binary: 0/1 with 1 = the confounder's positive value), or None for a
            categorical confounder with more than two levels.
        codes: integer level codes, binned into quantiles when a numeric confounder has many values (for MI).
        features: (n, d) rows for the Gaussian kernel (numeric value, or one-hot for categories).
    """

    numeric: np.ndarray | None
    codes: np.ndarray
    features: np.ndarray


def _quantile_codes(values: np.ndarray, n_bins: int = _BINS) -> np.ndarray:
    edges = np.unique(np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1]))
    return np.searchsorted(edges, values, side="right")


def encode_confounder(values: np.ndarray, numeric: np.ndarray | None) -> EncodedConfounder:
    """Encode non-missing confounder values.

    Args:
        values: level keys (strings), one per row.
        numeric: float version of the values (binary confounders: 0/1), or None when not numeric.
    """
    levels, codes = np.unique(values, return_inverse=True)
    if numeric is not None:
        if len(np.unique(numeric)) > _BINS:
            codes = _quantile_codes(numeric)
        return EncodedConfounder(numeric.astype(float), codes, numeric.reshape(-1, 1).astype(float))
    return EncodedConfounder(None, codes, np.eye(len(levels))[codes])


def _strata(label: np.ndarray) -> list[np.ndarray]:
    return [idx for v in np.unique(label) if len(idx := np.flatnonzero(label == v)) >= 2]


def partial_correlation(score: np.ndarray, conf: np.ndarray, label: np.ndarray) -> float | None:
    """Pooled Pearson correlation of score and confounder after centring each within label strata.

    Example:
        >>> s = np.array([0.1, 0.3, 0.6, 0.8]); c = np.array([0, 1, 0, 1]); y = np.array([0, 0, 1, 1])
        >>> round(partial_correlation(s, c, y), 4)
        1.0
    """
    s, c = np.asarray(score, float).copy(), np.asarray(conf, float).copy()
    for idx in [np.flatnonzero(label == v) for v in np.unique(label)]:
        s[idx] -= s[idx].mean()
        c[idx] -= c[idx].mean()
    den = np.sqrt(np.sum(s * s) * np.sum(c * c))
    return float(np.sum(s * c) / den) if den > 0 else None


def conditional_mutual_information(score_bins: np.ndarray, conf_codes: np.ndarray,
                                   label: np.ndarray) -> float | None:
    """Sum over label strata of (stratum share) x mutual_info_score(confounder codes, score bins), nats."""
    n = len(label)
    if n == 0:
        return None
    total = 0.0
    for v in np.unique(label):
        idx = np.flatnonzero(label == v)
        total += len(idx) / n * _mi(score_bins[idx], conf_codes[idx])
    return float(total)


def _mi(a: np.ndarray, b: np.ndarray) -> float:
    """sklearn's mutual_info_score on a contingency table built here (skips per-call input checks)."""
    _, ai = np.unique(a, return_inverse=True)
    _, bi = np.unique(b, return_inverse=True)
    table = np.zeros((ai.max() + 1, bi.max() + 1), dtype=np.int64)
    np.add.at(table, (ai, bi), 1)
    return float(mutual_info_score(None, None, contingency=table))


def _sq_distances(x: np.ndarray) -> np.ndarray:
    x = x.reshape(len(x), -1)
    sq = np.sum(x * x, axis=1)
    return np.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)


def _median_bandwidth(x: np.ndarray) -> float | None:
    """Median of the non-zero pairwise distances between rows of ``x`` (None when all rows are equal)."""
    d2 = _sq_distances(x)[np.triu_indices(len(x), 1)]
    d2 = d2[d2 > 1e-24]
    return float(np.median(np.sqrt(d2))) if d2.size else None


def _gaussian_gram(x: np.ndarray, sigma: float | None) -> np.ndarray:
    """Gaussian kernel matrix ``exp(-|xi - xj|^2 / (2 sigma^2))``; all ones when ``sigma`` is None."""
    d2 = _sq_distances(x)
    return np.ones_like(d2) if sigma is None else np.exp(-d2 / (2 * sigma**2))


def _centre(k: np.ndarray) -> np.ndarray:
    return k - k.mean(axis=0, keepdims=True) - k.mean(axis=1, keepdims=True) + k.mean()


class _HsicStratum:
    """Precomputed centred score kernel and confounder level kernel for one label stratum."""

    def __init__(self, score: np.ndarray, features: np.ndarray) -> None:
        self.n = len(score)
        self.kc = _centre(_gaussian_gram(score, _median_bandwidth(score)))
        levels, self.codes = np.unique(features, axis=0, return_inverse=True)
        self.codes = self.codes.reshape(-1)
        # kernel between distinct confounder values; bandwidth from all row pairs of the stratum
        self.m = _gaussian_gram(levels, _median_bandwidth(features))

    def statistic(self, perm: np.ndarray | None = None) -> float:
        codes = self.codes if perm is None else self.codes[perm]
        if len(self.m) <= _MAX_LEVELS_FOR_ONEHOT:
            z = np.eye(len(self.m))[codes]
            value = np.sum((z.T @ self.kc @ z) * self.m)
        else:
            value = np.sum(self.kc * self.m[np.ix_(codes, codes)])
        return float(value) / self.n**2


def conditional_hsic(score: np.ndarray, features: np.ndarray, label: np.ndarray) -> float | None:
    """Stratum-weighted biased HSIC between score and confounder within label strata (Gaussian kernels)."""
    strata = _strata(label)
    if not strata:
        return None
    n = sum(len(i) for i in strata)
    return float(sum(len(i) / n * _HsicStratum(score[i], features[i]).statistic() for i in strata))


class _Measures:
    """Computes all three measures for the observed data and for within-stratum permutations."""

    def __init__(self, score: np.ndarray, enc: EncodedConfounder, label: np.ndarray) -> None:
        self.score, self.enc, self.label = score, enc, label
        self.bins = _quantile_codes(score)
        self.strata = _strata(label)
        total = sum(len(i) for i in self.strata)
        self.hsic = [(idx, len(idx) / total, _HsicStratum(score[idx], enc.features[idx]))
                     for idx in self.strata]

    def compute(self, order: np.ndarray) -> dict[str, float | None]:
        """Measures with the confounder of row ``order[i]`` assigned to row ``i`` (identity = observed)."""
        numeric = None if self.enc.numeric is None else self.enc.numeric[order]
        out = {
            "partial_correlation": None if numeric is None else
            partial_correlation(self.score, numeric, self.label),
            "conditional_mi": conditional_mutual_information(self.bins, self.enc.codes[order], self.label),
        }
        hsic = 0.0
        for idx, weight, stratum in self.hsic:
            local = np.searchsorted(idx, order[idx])  # positions inside the stratum (order stays within it)
            hsic += weight * stratum.statistic(local)
        out["hsic"] = float(hsic) if self.hsic else None
        return out

    def permutation(self, rng: np.random.Generator) -> np.ndarray:
        order = np.arange(len(self.label))
        for v in np.unique(self.label):
            idx = np.flatnonzero(self.label == v)
            order[idx] = idx[rng.permutation(len(idx))]
        return order


#: Measure name -> how its permutation statistic is compared (absolute value for signed measures).
DEPENDENCE_MEASURES: dict[str, bool] = {"partial_correlation": True, "conditional_mi": False, "hsic": False}


def dependence_tests(score, enc: EncodedConfounder, label, *, n_permutations: int = 200,
                     seed: int = 0) -> tuple[dict[str, float | None], dict[str, float | None]]:
    """Observed dependence measures and their within-stratum permutation p-values.

    Returns:
        ``(values, p_values)``, each {measure: float or None}. A p-value is None when its measure is undefined
        or ``n_permutations`` is 0.
    """
    score, label = np.asarray(score, float), np.asarray(label)
    measures = _Measures(score, enc, label)
    identity = np.arange(len(label))
    observed = measures.compute(identity)
    exceed = dict.fromkeys(observed, 0)
    rng = np.random.default_rng(seed)
    for _ in range(n_permutations):
        permuted = measures.compute(measures.permutation(rng))
        for name, value in permuted.items():
            obs = observed[name]
            if obs is None or value is None:
                continue
            use_abs = DEPENDENCE_MEASURES[name]
            a, b = (abs(value), abs(obs)) if use_abs else (value, obs)
            exceed[name] += a >= b - 1e-12 * max(1.0, abs(b))
    p_values = {name: None if observed[name] is None or n_permutations == 0
                else (1 + exceed[name]) / (1 + n_permutations) for name in observed}
    return observed, p_values
