"""Operating points: empirical ROC vs sklearn, threshold rules and sens/spec on hand-made curves."""

import numpy as np
import pytest
from sklearn.metrics import roc_curve

from clinagent_lab.errors import RecipeError, UnknownNameError
from clinagent_lab.evaluation.operating_point import (
    choose_threshold,
    confusion_counts,
    roc_points,
    sensitivity_at_specificity,
    specificity_at_sensitivity,
)

# Hand-made ROC: 5 negatives, 5 positives, no ties.
#   score: 0.95 0.9 0.8 0.7 0.6 0.5 0.4 0.3 0.2 0.1
#   label:  1    1   0   1   0   1   0   0   1   0
Y = np.array([1, 1, 0, 1, 0, 1, 0, 0, 1, 0])
S = np.array([0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1])
# Walking down the thresholds, (FPR, TPR) in fifths:
#   0.95:(0,1) 0.9:(0,2) 0.8:(1,2) 0.7:(1,3) 0.6:(2,3) 0.5:(2,4) 0.4:(3,4) 0.3:(4,4) 0.2:(4,5) 0.1:(5,5)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_roc_points_match_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, 200)
    s = np.round(rng.random(200), 1)  # many ties
    fpr, tpr, thr = roc_points(y, s)
    f_ref, t_ref, th_ref = roc_curve(y, s, drop_intermediate=False)
    np.testing.assert_allclose(fpr, f_ref)
    np.testing.assert_allclose(tpr, t_ref)
    np.testing.assert_array_equal(thr, th_ref)


def test_roc_points_single_class_is_nan():
    fpr, tpr, _ = roc_points([1, 1, 1], [0.1, 0.2, 0.3])
    assert np.isnan(fpr).all() and not np.isnan(tpr).any()


def test_youden_hand_computed():
    # J = TPR - FPR in fifths: 1,2,1,2,1,2,1,0,1,0 -> max 2/5 first reached at threshold 0.9
    assert choose_threshold(Y, S, "youden") == 0.9


def test_at_specificity_hand_computed():
    # spec >= 0.8 allows FPR <= 1/5: best TPR 3/5 at thresholds 0.7 (the highest with TPR 3/5 and FPR 1/5)
    assert choose_threshold(Y, S, "at_specificity", 0.8) == 0.7
    assert sensitivity_at_specificity(Y, S, 0.8) == pytest.approx(0.6)
    # spec >= 0.6 (FPR <= 2/5): TPR 4/5 at 0.5
    assert choose_threshold(Y, S, "at_specificity", 0.6) == 0.5
    assert sensitivity_at_specificity(Y, S, 0.6) == pytest.approx(0.8)
    # spec 1.0: TPR 2/5 at threshold 0.9 (no interpolation towards 0.8)
    assert sensitivity_at_specificity(Y, S, 1.0) == pytest.approx(0.4)


def test_at_sensitivity_hand_computed():
    # TPR >= 0.8: best specificity 3/5 (FPR 2/5) at threshold 0.5
    assert choose_threshold(Y, S, "at_sensitivity", 0.8) == 0.5
    assert specificity_at_sensitivity(Y, S, 0.8) == pytest.approx(0.6)
    # TPR = 1 needs threshold 0.2: FPR 4/5
    assert choose_threshold(Y, S, "at_sensitivity", 1.0) == 0.2
    assert specificity_at_sensitivity(Y, S, 1.0) == pytest.approx(0.2)


def test_chosen_threshold_reaches_the_reported_rates():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 300)
    s = np.clip(0.3 * y + rng.random(300) * 0.7, 0, 1)
    t = choose_threshold(y, s, "at_specificity", 0.9)
    c = confusion_counts(y, s, t)
    spec = c["tn"] / (c["tn"] + c["fp"])
    sens = c["tp"] / (c["tp"] + c["fn"])
    assert spec >= 0.9
    assert sens == pytest.approx(sensitivity_at_specificity(y, s, 0.9))
    # brute force over every candidate threshold: nothing beats it
    best = max((np.mean(s[y == 1] >= u) for u in np.r_[s, np.inf] if np.mean(s[y == 0] < u) >= 0.9))
    assert sens == pytest.approx(best)


def test_unreachable_specificity_gives_finite_all_negative_threshold():
    y = [0, 1, 0, 1]
    s = [0.9, 0.8, 0.2, 0.1]  # the top score is a negative
    t = choose_threshold(y, s, "at_specificity", 1.0)
    assert np.isfinite(t) and t > 0.9
    assert confusion_counts(y, s, t) == {"tp": 0, "fp": 0, "tn": 2, "fn": 2}


def test_fixed_and_errors():
    assert choose_threshold(Y, S, "fixed", 0.42) == 0.42
    assert choose_threshold([1, 1], [0.2, 0.3], "youden") is None
    assert sensitivity_at_specificity([0, 0], [0.2, 0.3], 0.8) is None
    with pytest.raises(UnknownNameError, match="known: at_sensitivity"):
        choose_threshold(Y, S, "max_f1")
    with pytest.raises(RecipeError, match="operating_value"):
        choose_threshold(Y, S, "at_specificity")
