"""Calibration against sklearn (reliability curve, logistic recalibration) and hand computations."""

import numpy as np
import pytest
from sklearn.calibration import calibration_curve
from sklearn.linear_model import LogisticRegression

from clinagent_lab.evaluation.calibration import (
    calibration_slope_intercept,
    expected_calibration_error,
    reliability_curve,
)


def _data(n=800, seed=0, temperature=1.0):
    rng = np.random.default_rng(seed)
    logit = rng.normal(0, 2, n)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    return y, 1 / (1 + np.exp(-logit * temperature))


@pytest.mark.parametrize("n_bins", [5, 10, 15])
def test_reliability_curve_matches_sklearn(n_bins):
    y, p = _data()
    p = np.r_[p, 0.2, 0.4, 0.0, 1.0]  # values on bin edges
    y = np.r_[y, 1, 0, 0, 1]
    curve = reliability_curve(y, p, n_bins)
    prob_true, prob_pred = calibration_curve(y, p, n_bins=n_bins, strategy="uniform")
    used = curve.counts > 0
    np.testing.assert_allclose(curve.observed_fraction[used], prob_true)
    np.testing.assert_allclose(curve.mean_predicted[used], prob_pred)
    assert curve.counts.sum() == len(y)
    assert np.isnan(curve.observed_fraction[~used]).all()
    assert all(v is None for v, u in zip(curve.to_dict()["observed_fraction"], used) if not u)


def test_ece_hand_computed_and_from_curve():
    y, p = _data(seed=1, temperature=2.0)
    curve = reliability_curve(y, p, 10)
    used = curve.counts > 0
    gap = np.abs(curve.observed_fraction[used] - curve.mean_predicted[used])
    ref = np.sum(curve.counts[used] / len(y) * gap)
    assert expected_calibration_error(y, p) == pytest.approx(ref)
    well, over = expected_calibration_error(*_data(seed=1)), expected_calibration_error(y, p)
    assert over > well


@pytest.mark.parametrize("temperature", [1.0, 2.0, 0.5])
def test_slope_intercept_match_unpenalised_sklearn(temperature):
    y, p = _data(seed=2, temperature=temperature)
    slope, intercept = calibration_slope_intercept(y, p)
    x = np.log(p / (1 - p)).reshape(-1, 1)
    ref = LogisticRegression(C=np.inf, tol=1e-12, max_iter=10000).fit(x, y)
    assert slope == pytest.approx(ref.coef_[0, 0], rel=1e-5)
    assert intercept == pytest.approx(ref.intercept_[0], abs=1e-5)
    assert slope == pytest.approx(1 / temperature, rel=0.25)  # over-confident -> slope < 1


def test_undefined_cases():
    assert calibration_slope_intercept([1, 1, 1], [0.2, 0.5, 0.7]) == (None, None)
    assert calibration_slope_intercept([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == (None, None)  # separation
    assert expected_calibration_error([], []) is None
