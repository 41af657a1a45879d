"""The ROC widget: the slider moves the point (evaluator numbers), class selection, pins become annotations."""

from __future__ import annotations

import numpy as np
import pytest

from clinagent_lab.errors import RecipeError
from clinagent_lab.evaluation import classification_metrics, roc_points
from clinagent_lab.widgets.annotate import Receipt
from clinagent_lab.widgets.figdata import tpr_on_grid
from clinagent_lab.widgets.roc import RocWidget, plot_curve, thin_curve

from .widgets_fixtures import (
    BINARY,
    MULTI,
    binary_predictions,
    binary_recipe,
    multiclass_predictions,
    multiclass_recipe,
)


class RecordingSink:
    """A sink that keeps what it is given and confirms at once."""

    def __init__(self) -> None:
        self.got = []

    def submit(self, annotation, on_done=None):
        self.got.append(annotation)
        receipt = Receipt(True, "kept", "memory", annotation)
        if on_done:
            on_done(receipt)
        return receipt


@pytest.fixture(scope="module")
def df():
    return binary_predictions()


@pytest.fixture
def roc(df):
    return RocWidget(df, binary_recipe(), iteration=2, sink=RecordingSink(), bootstrap=5)


def test_starts_at_the_evaluators_operating_point(df, roc):
    ref = classification_metrics(df.label, df[["prob_normal", "prob_pneumothorax"]].to_numpy(), BINARY)
    assert roc.threshold == pytest.approx(ref["threshold"]) and roc.slider.value == pytest.approx(ref["threshold"])
    assert roc.plot.point["tpr"] == pytest.approx(ref["sensitivity"])
    assert roc.plot.point["fpr"] == pytest.approx(1 - ref["specificity"])
    assert roc.class_selector.layout.display == "none"  # binary: no class selector
    assert len(roc.plot.curves) == 1 and roc.plot.curves[0]["band"] is not None


@pytest.mark.parametrize("start", [0.5, 0.3333])
def test_slider_starts_at_the_given_threshold(df, start):
    roc = RocWidget(df, binary_recipe(), threshold=start, bootstrap=0)
    assert roc.slider.value == roc.threshold == start  # 0.5 is also the trait's default: no change event
    assert f"threshold <b>{start:.3f}</b>" in roc.readout.value


@pytest.mark.parametrize("t", [0.2, 0.45, 0.8])
def test_slider_moves_the_point_to_the_evaluators_numbers(df, roc, t):
    before = dict(roc.plot.point)
    roc.slider.value = t
    assert roc.threshold == t
    ref = classification_metrics(df.label, df[["prob_normal", "prob_pneumothorax"]].to_numpy(), BINARY, threshold=t)
    p = roc.point
    assert (p.sensitivity, p.specificity, p.ppv, p.npv) == pytest.approx(
        (ref["sensitivity"], ref["specificity"], ref["ppv"], ref["npv"]))
    assert roc.plot.point["tpr"] == pytest.approx(ref["sensitivity"])
    assert roc.plot.point["fpr"] == pytest.approx(1 - ref["specificity"])
    assert roc.plot.point != before
    assert f"{ref['sensitivity']:.3f}" in roc.readout.value and f"{ref['npv']:.3f}" in roc.readout.value
    assert roc.pin_value.value == pytest.approx(round(ref["sensitivity"], 3))  # the pin box follows the slider


def test_higher_threshold_never_raises_sensitivity(roc):
    sens = []
    for t in np.linspace(0.05, 0.95, 7):
        roc.slider.value = float(t)
        sens.append(roc.point.sensitivity)
    assert sens == sorted(sens, reverse=True) and sens[0] > sens[-1]


def test_pin_creates_an_operating_point_annotation(roc):
    roc.slider.value = 0.4
    roc.pin_kind.value = "specificity"
    assert roc.pin_value.value == pytest.approx(round(roc.point.specificity, 3))
    roc.pin_value.value = 0.85
    roc.pin_button.click()
    [a] = roc.sink.got
    assert a.kind == "operating_point" and a.value == {"specificity": 0.85} and a.iteration == 2
    assert "specificity 0.85" in a.text and "0.400" in a.text
    assert "kept" in roc.status.value
    b = roc.pin("sensitivity", 0.9)
    t = roc.pin("threshold", 0.4)
    assert b.value == {"sensitivity": 0.9} and t.value == {"threshold": 0.4}
    assert roc.annotations == [a, b, t] == roc.sink.got


def test_pin_rejects_bad_values(roc):
    with pytest.raises(RecipeError, match="cannot pin"):
        roc.pin("ppv", 0.5)
    with pytest.raises(RecipeError, match=r"\(0, 1\]"):
        roc.pin("sensitivity", 1.5)
    assert roc.sink.got == []


def test_without_a_sink_annotations_stay_in_the_widget(df):
    roc = RocWidget(df, binary_recipe(), bootstrap=0)
    a = roc.pin("sensitivity", 0.9)
    assert roc.annotations == [a] and a.iteration is None and "Recorded here only" in roc.status.value


def test_clicking_the_plot_picks_a_vertex(df, roc):
    curve = roc.plot.curves[0]
    i = len(curve["thresholds"]) // 2
    roc.plot._handle_custom_msg({"type": "pick", "curve": 0, "index": i}, [])
    assert roc.threshold == curve["thresholds"][i]
    assert roc.plot.point["fpr"] == pytest.approx(curve["fpr"][i])
    assert roc.plot.point["tpr"] == pytest.approx(curve["tpr"][i])
    roc.plot._handle_custom_msg({"type": "pick", "curve": 0, "index": 0}, [])  # +inf vertex: ignored
    assert roc.threshold == curve["thresholds"][i]


def test_multiclass_selector_switches_curves_and_pins_name_the_class():
    df = multiclass_predictions()
    roc = RocWidget(df, multiclass_recipe(), iteration=1, sink=RecordingSink(), bootstrap=3)
    assert roc.class_selector.options == tuple(MULTI) and roc.selected_class == "mel" and roc.plot.selected == 1
    mel_t = roc.threshold
    roc.class_selector.value = "nv"
    assert roc.plot.selected == 2 and roc.curve.class_name == "nv"
    assert roc.threshold == pytest.approx(roc.data.curve("nv").point.threshold)
    roc.slider.value = 0.3
    ref = classification_metrics(df.label, df[[f"prob_{c}" for c in MULTI]].to_numpy(), MULTI,
                                 metric_params={"class": "nv"}, threshold=0.3)
    assert roc.point.sensitivity == pytest.approx(ref["sensitivity"])
    assert roc.point.specificity == pytest.approx(ref["specificity"])
    a = roc.pin("sensitivity", 0.8)
    assert a.value == {"sensitivity": 0.8, "class": "nv"}
    roc.class_selector.value = "mel"
    assert roc.threshold == mel_t  # each class keeps its own threshold
    roc.class_selector.value = "nv"
    assert roc.threshold == 0.3


def test_thinning_keeps_the_curve_shape(df):
    fpr, tpr, _ = roc_points(df.label == 1, df.prob_pneumothorax)
    keep = thin_curve(fpr, tpr)
    assert len(keep) < len(fpr) and keep[0] == 0 and keep[-1] == len(fpr) - 1
    grid = np.linspace(0, 1, 201)
    np.testing.assert_array_equal(tpr_on_grid(fpr[keep], tpr[keep], grid), tpr_on_grid(fpr, tpr, grid))
    assert thin_curve(np.array([0.0, 0.0, 1.0]), np.array([0.0, 1.0, 1.0])).tolist() == [0, 1, 2]
    roc = RocWidget(df, binary_recipe(), bootstrap=0)
    data = plot_curve(roc.data.main)
    assert data["thresholds"][0] is None and data["fpr"] == fpr[keep].tolist()
