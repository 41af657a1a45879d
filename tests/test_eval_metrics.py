"""Classification metrics against sklearn and hand counts."""

import json

import numpy as np
import pytest
from sklearn.metrics import (
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    recall_score,
    roc_auc_score,
)

from clinagent_lab.errors import DataValidationError, RecipeError, UnknownNameError
from clinagent_lab.evaluation.metrics import auroc, classification_metrics


def _binary(seed=0, n=300):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    p = np.clip(0.35 * y + rng.random(n) * 0.65, 0, 1)
    return y, np.c_[1 - p, p]


def _multiclass(seed=0, n=400, c=4):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, c, n)
    logits = rng.normal(size=(n, c)) + 1.5 * np.eye(c)[y]
    p = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    return y, p


@pytest.mark.parametrize("seed", [0, 1])
def test_auroc_matches_sklearn(seed):
    y, p = _binary(seed)
    p1 = np.round(p[:, 1], 2)  # with ties
    assert auroc(y, p1) == pytest.approx(roc_auc_score(y, p1), abs=1e-6)


def test_binary_metrics_against_hand_counts():
    y = np.array([0, 0, 0, 0, 1, 1, 1])
    p1 = np.array([0.1, 0.2, 0.6, 0.3, 0.7, 0.4, 0.9])
    m = classification_metrics(y, np.c_[1 - p1, p1], ["neg", "pos"], threshold=0.5)
    # at 0.5: TP 2 (0.7, 0.9), FN 1 (0.4), FP 1 (0.6), TN 3
    assert m["threshold"] == 0.5
    assert m["sensitivity"] == pytest.approx(2 / 3)
    assert m["specificity"] == pytest.approx(3 / 4)
    assert m["ppv"] == pytest.approx(2 / 3)
    assert m["npv"] == pytest.approx(3 / 4)
    assert m["accuracy"] == pytest.approx(5 / 7)
    assert m["f1"] == pytest.approx(f1_score(y, p1 >= 0.5))
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, p1 >= 0.5))
    assert m["n"] == 7 and m["prevalence"] == pytest.approx(3 / 7)
    assert m["auroc"] == pytest.approx(roc_auc_score(y, p1), abs=1e-6)
    assert m["primary_metric"] == "auroc" and m["primary"] == m["auroc"]


def test_binary_threshold_chosen_by_rule_and_primary_sens_at_spec():
    y, p = _binary(2)
    m = classification_metrics(y, p, ["a", "b"], primary="sensitivity_at_specificity",
                               metric_params={"specificity": 0.8}, operating_point="at_specificity",
                               operating_value=0.8)
    pred = p[:, 1] >= m["threshold"]
    assert m["specificity"] == pytest.approx(1 - pred[y == 0].mean()) and m["specificity"] >= 0.8
    assert m["sensitivity"] == pytest.approx(pred[y == 1].mean())
    assert m["sensitivity_at_specificity"] == pytest.approx(m["sensitivity"])
    assert m["primary"] == m["sensitivity_at_specificity"]


def test_positive_class_zero_flips_the_score():
    y, p = _binary(3)
    m = classification_metrics(y, p, ["a", "b"], positive_class=0)
    assert m["auroc"] == pytest.approx(roc_auc_score(y == 0, p[:, 0]), abs=1e-6)
    assert m["prevalence"] == pytest.approx(np.mean(y == 0))


def test_single_class_is_none_not_zero_and_json_clean():
    p1 = np.array([0.2, 0.4, 0.9])
    m = classification_metrics(np.ones(3, int), np.c_[1 - p1, p1], ["a", "b"])
    assert m["auroc"] is None and m["threshold"] is None and m["specificity"] is None and m["primary"] is None
    assert m["notes"]
    json.dumps(m, allow_nan=False)
    m = classification_metrics(np.ones(3, int), np.c_[1 - p1, p1], ["a", "b"], threshold=0.5)
    assert m["sensitivity"] == pytest.approx(1 / 3) and m["specificity"] is None and m["npv"] == 0.0


def test_all_values_are_python_types():
    y, p = _binary(4)
    m = classification_metrics(y, p, ["a", "b"])
    for key in ("auroc", "sensitivity", "specificity", "threshold", "ppv", "npv", "f1", "primary"):
        assert type(m[key]) is float, key
    assert type(m["n"]) is int


def test_multiclass_against_sklearn():
    y, p = _multiclass()
    classes = ["akiec", "bcc", "mel", "nv"]
    m = classification_metrics(y, p, classes)
    ref = roc_auc_score(y, p, multi_class="ovr", average="macro")
    assert m["auroc_macro"] == pytest.approx(ref, abs=1e-6)
    assert m["auroc"] == m["primary"] == m["auroc_macro"]
    pred = p.argmax(1)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, pred))
    assert m["f1_macro"] == pytest.approx(f1_score(y, pred, average="macro"))
    assert m["accuracy"] == pytest.approx(np.mean(pred == y))
    assert m["confusion_matrix"] == confusion_matrix(y, pred).tolist()
    recalls = recall_score(y, pred, average=None)
    for k, name in enumerate(classes):
        pc = m["per_class"][name]
        assert pc["auroc"] == pytest.approx(roc_auc_score(y == k, p[:, k]), abs=1e-6)
        assert pc["sensitivity"] == pytest.approx(recalls[k])
        assert pc["specificity"] == pytest.approx(recall_score(y != k, pred != k))
        assert pc["support"] == int(np.sum(y == k))


def test_multiclass_target_class_metrics():
    y, p = _multiclass(1)
    classes = ["akiec", "bcc", "mel", "nv"]
    m = classification_metrics(y, p, classes, primary="sensitivity_at_specificity",
                               metric_params={"class": "mel", "specificity": 0.9},
                               operating_point="at_specificity", operating_value=0.9)
    assert m["auroc"] == pytest.approx(roc_auc_score(y == 2, p[:, 2]), abs=1e-6)
    pred = p[:, 2] >= m["threshold"]
    assert m["sensitivity"] == pytest.approx(pred[y == 2].mean())
    assert m["specificity"] == pytest.approx(1 - pred[y != 2].mean()) and m["specificity"] >= 0.9
    assert m["primary"] == pytest.approx(m["sensitivity"])
    assert m["target"]["class"] == "mel"
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, p.argmax(1)))


def test_multiclass_absent_class_gives_none_and_note():
    y, p = _multiclass(2)
    y = np.where(y == 3, 0, y)  # class 'nv' absent
    m = classification_metrics(y, p, ["a", "b", "c", "nv"])
    assert m["per_class"]["nv"]["auroc"] is None and m["per_class"]["nv"]["sensitivity"] is None
    ref = np.mean([roc_auc_score(y == k, p[:, k]) for k in range(3)])
    assert m["auroc_macro"] == pytest.approx(ref, abs=1e-6)
    assert m["balanced_accuracy"] == pytest.approx(balanced_accuracy_score(y, p.argmax(1)))
    assert any("nv" in note for note in m["notes"])
    json.dumps(m, allow_nan=False)


def test_errors_name_what_and_where():
    y, p = _multiclass()
    with pytest.raises(RecipeError, match="class"):
        classification_metrics(y, p, list("abcd"), primary="sensitivity_at_specificity",
                               metric_params={"specificity": 0.8})
    with pytest.raises(UnknownNameError, match="known: a, b, c, d"):
        classification_metrics(y, p, list("abcd"), metric_params={"class": "zz"})
    with pytest.raises(UnknownNameError, match="map50"):
        classification_metrics(y, p, list("abcd"), primary="map50")
    with pytest.raises(DataValidationError, match="shape"):
        classification_metrics(y, p[:, :3], list("abcd"))
    with pytest.raises(DataValidationError, match="labels"):
        classification_metrics(y + 1, p, list("abcd"))
    with pytest.raises(RecipeError, match="specificity"):
        classification_metrics(*_binary(), ["a", "b"], primary="sensitivity_at_specificity")
