"""Bootstrap intervals: identical to scipy's percentile bootstrap, cluster resampling, undefined resamples."""

import numpy as np
import pytest
from scipy import stats
from sklearn.metrics import roc_auc_score

from clinagent_lab.evaluation.bootstrap import bootstrap_ci, resample_indices


def _data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    return y, np.clip(0.3 * y + 0.7 * rng.random(n), 0, 1)


@pytest.mark.parametrize("confidence", [0.95, 0.8])
def test_equals_scipy_percentile_bootstrap(confidence):
    y, p = _data()
    ours = bootstrap_ci(roc_auc_score, y, p, n_resamples=300, confidence=confidence, seed=11)
    ref = stats.bootstrap((y, p), roc_auc_score, paired=True, vectorized=False, method="percentile",
                          n_resamples=300, confidence_level=confidence, rng=np.random.default_rng(11))
    assert ours.point == pytest.approx(roc_auc_score(y, p), abs=1e-15)
    assert ours.low == pytest.approx(ref.confidence_interval.low, abs=1e-9)
    assert ours.high == pytest.approx(ref.confidence_interval.high, abs=1e-9)
    assert ours.n_skipped == 0 and ours.n_resamples == 300


def test_cluster_bootstrap_resamples_whole_patients():
    groups = np.repeat(np.array(["p1", "p2", "p3", "p4", "p5"]), [1, 2, 3, 4, 5])
    rng = np.random.default_rng(0)
    for idx in resample_indices(len(groups), 50, rng, groups):
        drawn = groups[idx]
        for g, count in zip(*np.unique(drawn, return_counts=True)):
            size = np.sum(groups == g)
            assert count % size == 0  # whole patients only
            rows = idx[drawn == g]
            assert set(rows) == set(np.flatnonzero(groups == g))
        # as many patients as the data has
        assert sum(np.sum(drawn == g) // np.sum(groups == g) for g in np.unique(drawn)) == 5


def test_cluster_interval_is_wider_for_correlated_rows():
    rng = np.random.default_rng(1)
    patients = np.repeat(np.arange(40), 5)  # 5 near-identical images per patient
    y = np.repeat(rng.integers(0, 2, 40), 5)
    p = np.clip(np.repeat(0.3 * y[::5] + 0.7 * rng.random(40), 5) + rng.normal(0, 0.01, 200), 0, 1)
    rows = bootstrap_ci(roc_auc_score, y, p, n_resamples=300, seed=0)
    clusters = bootstrap_ci(roc_auc_score, y, p, groups=patients, n_resamples=300, seed=0)
    assert (clusters.high - clusters.low) > 1.5 * (rows.high - rows.low)


def test_undefined_resamples_are_skipped_and_counted():
    y = np.array([0] * 9 + [1])
    p = np.linspace(0, 1, 10)

    def auroc_or_none(a, b):
        return roc_auc_score(a, b) if 0 < a.sum() < len(a) else None

    ci = bootstrap_ci(auroc_or_none, y, p, n_resamples=200, seed=0)
    # P(no positive drawn) = 0.9 ** 10 ~ 0.35
    assert 40 < ci.n_skipped < 110
    assert ci.to_dict()["n_skipped"] == ci.n_skipped
    point, low, high = ci
    assert point == 1.0 and low <= high <= 1.0
    nan_metric = bootstrap_ci(lambda a, b: float("nan") if a.sum() == 0 else 1.0, y, p,
                              n_resamples=200, seed=0)
    assert nan_metric.n_skipped == ci.n_skipped  # NaN counts as undefined too, same resamples
