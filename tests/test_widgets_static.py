"""Figure data equal the evaluator's numbers; static PNGs are real images."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score, roc_curve

from clinagent_lab.errors import DataValidationError, RecipeError
from clinagent_lab.evaluation import (
    classification_metrics,
    confounder_metrics,
    roc_points,
    sensitivity_at_specificity,
)
from clinagent_lab.evaluation.evaluate import evaluate_predictions
from clinagent_lab.recipe import Recipe
from clinagent_lab.widgets.figdata import (
    confounder_figure_data,
    operating_point,
    roc_band,
    roc_figure_data,
    tpr_on_grid,
)
from clinagent_lab.widgets.static import save_confounder_png, save_roc_png

from .widgets_fixtures import (
    BINARY,
    MULTI,
    binary_predictions,
    binary_recipe,
    binary_spec,
    multiclass_predictions,
    multiclass_recipe,
    multiclass_spec,
)


@pytest.fixture(scope="module")
def binary():
    df = binary_predictions()
    recipe = binary_recipe(operating_point="at_specificity", operating_value=0.8)
    metrics = evaluate_predictions(df, BINARY, recipe.evaluation, confounders={"chest_drain": "chest_drain"},
                                   n_permutations=19, seed=recipe.seed)
    return df, recipe, metrics


def _probs(df: pd.DataFrame, classes: list[str]) -> np.ndarray:
    return df[[f"prob_{c}" for c in classes]].to_numpy()


def test_binary_roc_data_are_the_evaluators(binary):
    df, recipe, metrics = binary
    data = roc_figure_data(df, recipe, bootstrap=0)
    assert [c.class_name for c in data.curves] == ["pneumothorax"] and data.main.is_target
    curve = data.main
    fpr, tpr, thr = roc_points(df.label == 1, df.prob_pneumothorax)
    np.testing.assert_array_equal(curve.fpr, fpr)
    np.testing.assert_array_equal(curve.tpr, tpr)
    np.testing.assert_array_equal(curve.thresholds, thr)
    ref_fpr, ref_tpr, _ = roc_curve(df.label, df.prob_pneumothorax, drop_intermediate=False)
    np.testing.assert_allclose(curve.fpr, ref_fpr)
    np.testing.assert_allclose(curve.tpr, ref_tpr)
    assert curve.auroc == pytest.approx(roc_auc_score(df.label, df.prob_pneumothorax), abs=1e-6)
    # the operating point is the evaluator's: same rule, same threshold, same sensitivity/specificity
    p = curve.point
    assert p.threshold == pytest.approx(metrics["threshold"])
    assert (p.sensitivity, p.specificity, p.ppv, p.npv) == pytest.approx(
        (metrics["sensitivity"], metrics["specificity"], metrics["ppv"], metrics["npv"]))
    assert p.specificity >= 0.8
    assert curve.band is None


@pytest.mark.parametrize("t", [0.1, 0.35, 0.5, 0.7231, 0.95])
def test_operating_point_at_any_threshold_matches_classification_metrics(binary, t):
    df, _, _ = binary
    ref = classification_metrics(df.label, _probs(df, BINARY), BINARY, threshold=t)
    p = operating_point(df.label == 1, df.prob_pneumothorax, t)
    assert p.threshold == t
    assert (p.sensitivity, p.specificity, p.ppv, p.npv) == pytest.approx(
        (ref["sensitivity"], ref["specificity"], ref["ppv"], ref["npv"]))
    # the point lies on the empirical curve: one of its vertices
    fpr, tpr, _ = roc_points(df.label == 1, df.prob_pneumothorax)
    assert np.any(np.isclose(fpr, p.fpr) & np.isclose(tpr, p.tpr))
    # hand count
    pred = df.prob_pneumothorax >= t
    assert p.confusion == {"tp": int((pred & (df.label == 1)).sum()), "fp": int((pred & (df.label == 0)).sum()),
                           "tn": int((~pred & (df.label == 0)).sum()), "fn": int((~pred & (df.label == 1)).sum())}


def test_step_reading_of_the_curve_is_sensitivity_at_specificity(binary):
    df, _, _ = binary
    y, s = df.label.to_numpy() == 1, df.prob_pneumothorax.to_numpy()
    fpr, tpr, _ = roc_points(y, s)
    grid = np.array([0.0, 0.05, 0.1, 0.2, 1 / 3, 0.5, 0.8, 1.0])
    expected = [sensitivity_at_specificity(y, s, 1 - x) for x in grid]
    np.testing.assert_allclose(tpr_on_grid(fpr, tpr, grid), expected)


def test_bootstrap_band_matches_an_independent_recomputation(binary):
    df, _, _ = binary
    y, s = df.label.to_numpy(), df.prob_pneumothorax.to_numpy()
    band = roc_band(y, s, n_resamples=25, seed=3, grid_points=21)
    rng = np.random.default_rng(3)
    grid = np.linspace(0, 1, 21)
    rows = []
    for idx in rng.integers(0, len(y), (25, len(y))):
        if len(set(y[idx])) < 2:
            continue
        f, t, _ = roc_curve(y[idx], s[idx], drop_intermediate=False)
        rows.append([t[f <= x + 1e-12].max() for x in grid])
    low, high = np.quantile(rows, [0.025, 0.975], axis=0)
    np.testing.assert_allclose(band.low, low)
    np.testing.assert_allclose(band.high, high)
    assert band.n_skipped == 25 - len(rows)
    curve = tpr_on_grid(*roc_points(y, s)[:2], grid)
    inside = (band.low - 1e-9 <= curve) & (curve <= band.high + 1e-9)
    assert inside.mean() > 0.8 and np.all(band.low <= band.high)


def test_bootstrap_band_resamples_whole_patients(binary):
    df, _, _ = binary
    y, s = df.label.to_numpy(), df.prob_pneumothorax.to_numpy()
    rows = roc_band(y, s, n_resamples=25, seed=3, grid_points=21)
    one_each = roc_band(y, s, n_resamples=25, seed=3, grid_points=21, groups=[f"p{i:04d}" for i in range(len(y))])
    np.testing.assert_array_equal(one_each.low, rows.low)  # a patient per row: the row bootstrap
    np.testing.assert_array_equal(one_each.high, rows.high)
    pairs = roc_band(y, s, n_resamples=25, seed=3, grid_points=21, groups=df.group_id.to_numpy())
    assert not (np.array_equal(pairs.low, rows.low) and np.array_equal(pairs.high, rows.high))


def test_multiclass_has_one_curve_per_class_with_the_target_marked():
    df = multiclass_predictions()
    recipe = multiclass_recipe(operating_point="at_sensitivity", operating_value=0.8)
    data = roc_figure_data(df, recipe, bootstrap=5)
    assert [c.class_name for c in data.curves] == MULTI
    assert data.main.class_name == "mel" and [c.is_target for c in data.curves] == [False, True, False]
    ref = classification_metrics(df.label, _probs(df, MULTI), MULTI, metric_params={"class": "mel"},
                                 operating_point="at_sensitivity", operating_value=0.8)
    for curve in data.curves:
        assert curve.auroc == pytest.approx(ref["per_class"][curve.class_name]["auroc"])
        assert curve.band is not None and curve.band.n_resamples == 5
        assert curve.point.sensitivity >= 0.8  # the recipe's rule, applied one-vs-rest
    assert data.main.point.threshold == pytest.approx(ref["threshold"])
    assert data.main.point.specificity == pytest.approx(ref["specificity"])
    assert roc_figure_data(df, classes=MULTI, positive="nv", bootstrap=0).main.class_name == "nv"


def test_confounder_data_are_the_evaluators(binary):
    df, recipe, metrics = binary
    entry = metrics["confounders"]["chest_drain"]
    data = confounder_figure_data(df, recipe, binary_spec(), "chest_drain", metrics=metrics)
    assert data.threshold == pytest.approx(metrics["threshold"])
    assert data.groups == ["0", "1", "missing"]
    assert data.fpr_by_group == pytest.approx(entry["fpr_by_group"])
    assert data.tpr_by_group == pytest.approx(entry["tpr_by_group"])
    assert data.dependence == entry["dependence"] and data.dependence_p == entry["dependence_p"]
    assert sum(len(v) for v in data.scores.values()) == len(df)
    # at another threshold: the evaluator again, and a hand count per group
    t = 0.6
    moved = confounder_figure_data(df, recipe, binary_spec(), "chest_drain", threshold=t, metrics=metrics)
    ref = confounder_metrics(df.label == 1, df.prob_pneumothorax, df.chest_drain.to_numpy(object), t,
                             positive_label=True, n_permutations=0)
    assert moved.fpr_by_group == ref["fpr_by_group"] and moved.tpr_by_group == ref["tpr_by_group"]
    neg = df[(df.label == 0) & (df.chest_drain == 1)]
    assert moved.fpr_by_group["1"] == pytest.approx((neg.prob_pneumothorax >= t).mean())
    pos = df[(df.label == 1) & (df.chest_drain == 0)]
    assert moved.tpr_by_group["0"] == pytest.approx((pos.prob_pneumothorax >= t).mean())
    assert len(moved.scores[(1, "0")]) == len(pos)


def test_confounder_data_compute_dependence_without_metrics(binary):
    df, recipe, metrics = binary
    data = confounder_figure_data(df, recipe, binary_spec(), "chest_drain", n_permutations=19)
    assert data.dependence == pytest.approx(metrics["confounders"]["chest_drain"]["dependence"])
    assert data.dependence_p == pytest.approx(metrics["confounders"]["chest_drain"]["dependence_p"])


def test_confounder_errors_say_what_and_where(binary):
    df, recipe, _ = binary
    with pytest.raises(DataValidationError, match="no column 'ruler'") as err:
        confounder_figure_data(df, recipe, None, "ruler")
    assert "chest_drain" in err.value.fix
    with pytest.raises(RecipeError, match="target class"):
        confounder_figure_data(multiclass_predictions(),
                               Recipe(task_type="multiclass_classification", classes=MULTI), None, "ruler")
    with pytest.raises(RecipeError, match="class names"):
        roc_figure_data(df)


def _valid_png(path) -> tuple[int, int]:
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG"
        arr = np.asarray(im.convert("L"))
        assert arr.std() > 5  # something was drawn
        return im.size


def test_static_pngs_are_valid_images(tmp_path, binary):
    df, recipe, metrics = binary
    roc = save_roc_png(df, recipe, tmp_path / "figs" / "roc.png")
    conf = save_confounder_png(df, recipe, binary_spec(), "chest_drain", tmp_path / "conf.png", metrics=metrics)
    assert roc == tmp_path / "figs" / "roc.png"
    w, h = _valid_png(roc)
    assert w > 200 and h > 200
    cw, _ = _valid_png(conf)
    assert cw > w  # three panels


def test_static_pngs_for_multiclass(tmp_path):
    df = multiclass_predictions()
    roc = save_roc_png(df, multiclass_recipe(), tmp_path / "roc.png", bootstrap=3)
    assert _valid_png(roc)[0] > 3 * 300  # one panel per class
    conf = save_confounder_png(df, multiclass_recipe(), multiclass_spec(), "ruler", tmp_path / "c.png",
                               n_permutations=5)
    _valid_png(conf)
    note = save_confounder_png(df, Recipe(task_type="multiclass_classification", classes=MULTI), None, "ruler",
                               tmp_path / "note.png")
    _valid_png(note)  # no target class: a figure that says so


def test_importing_the_package_is_light():
    code = ("import sys, clinagent_lab.widgets as w; from clinagent_lab.widgets import static; "
            "print(sorted(m for m in ('torch', 'ipywidgets', 'anywidget') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
