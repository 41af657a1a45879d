"""show_results on fake iteration folders, without a kernel frontend."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image

from clinagent_lab.records import Session
from clinagent_lab.errors import SessionError
from clinagent_lab.evaluation import confounder_metrics
from clinagent_lab.widgets import show_results
from clinagent_lab.widgets.annotate import ServerSink, SessionFileSink
from clinagent_lab.widgets.results import load_iteration

from .widgets_fixtures import (
    binary_predictions,
    binary_recipe,
    binary_spec,
    make_iteration,
    multiclass_predictions,
    multiclass_recipe,
    multiclass_spec,
)


@pytest.fixture(scope="module")
def binary_folder(tmp_path_factory) -> Path:
    return make_iteration(tmp_path_factory.mktemp("bin"), binary_predictions(),
                          binary_recipe(operating_point="at_sensitivity", operating_value=0.85), binary_spec(),
                          index=3)


def _capture(fn):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    InteractiveShell.instance()
    try:
        with capture_output() as cap:
            result = fn()
        return result, [o.data for o in cap.outputs]
    finally:
        InteractiveShell.clear_instance()


def test_show_results_builds_widgets_and_static_pngs(binary_folder):
    view, outputs = _capture(lambda: show_results(binary_folder, session_id="abc123", bootstrap=5))
    metrics = json.loads((binary_folder / "metrics.json").read_text())
    assert view.results.iteration == 3 and view.results.recipe.evaluation.operating_point == "at_sensitivity"
    assert view.roc.threshold == pytest.approx(metrics["threshold"])
    assert view.roc.point.sensitivity == pytest.approx(metrics["sensitivity"])
    assert list(view.confounders) == ["chest_drain"]
    assert isinstance(view.sink, ServerSink) and isinstance(view.sink.fallback, SessionFileSink)
    assert [p.name for p in view.pngs] == ["roc.png", "confounder_chest_drain.png"]
    for path in view.pngs:
        assert path.parent == binary_folder
        with Image.open(path) as im:
            assert im.format == "PNG" and im.size[0] > 200
    # what the notebook gets: a heading, the widgets, and the PNGs for kernel-less copies
    mimes = [set(d) for d in outputs]
    assert sum("image/png" in m for m in mimes) == 2
    assert sum("application/vnd.jupyter.widget-view+json" in m for m in mimes) == 1
    assert any("Iteration 3" in d.get("text/html", "") for d in outputs)
    _, again = _capture(lambda: view._ipython_display_())
    assert again == []  # the cell's return value does not show everything a second time


def test_sentence_counts_flagged_negatives_with_and_without_the_confounder(binary_folder):
    """The drain column holds floats with gaps (1.0, 0.0, NaN): matched as the evaluator keys them."""
    from clinagent_lab.widgets.results import _sentence

    res = load_iteration(binary_folder)
    df, t = binary_predictions(), res.metrics["threshold"]
    flagged = (df.label == 0) & (df.prob_pneumothorax >= t)
    counts = [(int((flagged & (df.chest_drain == v)).sum()), int(((df.label == 0) & (df.chest_drain == v)).sum()))
              for v in (0, 1)]
    assert counts[1][1] > 0
    assert (f"{counts[0][0]} of {counts[0][1]} negatives without chest drain flagged, "
            f"{counts[1][0]} of {counts[1][1]} with chest drain") in _sentence(res)


def test_slider_and_sentence_show_the_same_operating_point(tmp_path):
    """A threshold equal to the widget's start value (0.5, a fixed rule) still reaches the slider, and the
    clinician's sentence names the same threshold the slider and the readout show."""
    folder = make_iteration(tmp_path, binary_predictions(), binary_recipe(operating_point="fixed",
                                                                           operating_value=0.5), binary_spec())
    view, outputs = _capture(lambda: show_results(folder, bootstrap=0))
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["threshold"] == 0.5
    assert view.roc.slider.value == view.roc.threshold == 0.5
    shown = f"{view.roc.slider.value:{view.roc.slider.readout_format}}"
    heading = next(d["text/html"] for d in outputs if "clinagent-summary" in d.get("text/html", ""))
    assert f"At the chosen threshold ({shown}): sensitivity" in heading
    assert f"threshold <b>{shown}</b>" in view.roc.readout.value


def test_roc_threshold_drives_the_confounder_view(binary_folder):
    view = show_results(binary_folder, display=False, bootstrap=0)
    conf = view.confounders["chest_drain"]
    before = dict(conf.data.fpr_by_group)
    view.roc.slider.value = 0.62
    assert conf.threshold == 0.62 and conf.data.threshold == 0.62
    df = view.results.predictions
    ref = confounder_metrics(df.label == 1, df.prob_pneumothorax, df.chest_drain.to_numpy(object), 0.62,
                             positive_label=True, n_permutations=0)
    assert conf.data.fpr_by_group == ref["fpr_by_group"] != before
    assert f"{ref['fpr_by_group']['1']:.3f}" in conf.table.value
    metrics = json.loads((binary_folder / "metrics.json").read_text())
    assert conf.data.dependence == metrics["confounders"]["chest_drain"]["dependence"]  # reused, not recomputed


def test_annotations_from_the_results_reach_the_session_file(tmp_path):
    folder = make_iteration(tmp_path, binary_predictions(n=80), binary_recipe(), binary_spec(), index=1)
    view = show_results(folder, session_id="abc123", display=False, bootstrap=0)  # no browser: file fallback
    view.roc.pin("sensitivity", 0.9)
    view.confounders["chest_drain"].group.value = "1"
    view.confounders["chest_drain"].max_fpr.value = 0.15
    view.confounders["chest_drain"].mark_button.click()
    view.controls.note.value = "drains are common after treatment"
    view.controls.note_button.click()
    saved = Session.load(tmp_path / "abc123")
    assert [(a.kind, a.value) for a in saved.annotations] == [
        ("operating_point", {"sensitivity": 0.9}),
        ("group_fpr_bound", {"confounder": "chest_drain", "group": "1", "max_fpr": 0.15}),
        ("note", {}),
    ]
    assert saved.annotations[2].text == "drains are common after treatment" and view.controls.note.value == ""
    assert saved.iteration(1).annotations == [0, 1, 2]
    assert view.annotations == saved.annotations
    assert "session.json" in view.confounders["chest_drain"].status.value


def test_multiclass_results_offer_class_priority(tmp_path):
    folder = make_iteration(tmp_path, multiclass_predictions(), multiclass_recipe(), multiclass_spec(), index=2)
    view = show_results(folder, display=False, bootstrap=0)
    assert isinstance(view.sink, SessionFileSink)
    assert [c.class_name for c in view.roc.data.curves] == ["bcc", "mel", "nv"] and view.roc.selected_class == "mel"
    assert list(view.confounders) == ["ruler"] and view.confounders["ruler"].data.target_class == "mel"
    view.controls.priority_class.value = "mel"
    view.controls.weight.value = 3.0
    view.controls.priority_button.click()
    [a] = Session.load(tmp_path / "abc123").annotations
    assert a.kind == "class_priority" and a.value == {"class": "mel", "weight": 3.0} and a.iteration == 2
    view.roc.class_selector.value = "bcc"
    view.roc.slider.value = 0.5
    assert view.confounders["ruler"].threshold != 0.5  # the view follows the target class only


def test_folder_outside_a_session_needs_a_recipe(tmp_path, binary_folder):
    lone = tmp_path / "iter_01"
    lone.mkdir()
    for name in ("val_predictions.csv", "metrics.json"):
        (lone / name).write_bytes((binary_folder / name).read_bytes())
    with pytest.raises(SessionError, match="no recipe"):
        load_iteration(lone)
    view = show_results(lone, recipe=binary_recipe(), spec=binary_spec(), display=False, bootstrap=0)
    assert view.sink is None and view.results.iteration == 1 and view.pngs[0].exists()
    a = view.roc.pin("specificity", 0.7)
    assert view.roc.annotations == [a] and "Recorded here only" in view.roc.status.value


def test_widget_html_escapes_values_from_the_data():
    from clinagent_lab.widgets.confounder import rates_table
    from clinagent_lab.widgets.figdata import confounder_figure_data

    df = binary_predictions()
    df["site"] = ["<b>A</b>" if i % 2 else "B&C" for i in range(len(df))]
    html = rates_table(confounder_figure_data(df, binary_recipe(), None, "site", n_permutations=0))
    assert "<b>A</b>" not in html
    assert "site=&lt;b&gt;A&lt;/b&gt;" in html and "site=B&amp;C" in html


def test_the_readout_agrees_with_the_evaluator_on_float32_scores(tmp_path):
    """A small model's scores crowd together in float32; saved and reloaded, each one must still fall on the
    same side of the threshold as when the evaluator chose it (the readout read 0.333 where it said 0.50)."""
    import numpy as np

    from clinagent_lab.evaluation.evaluate import evaluate_predictions
    from clinagent_lab.tasks import get_backend

    df = binary_predictions(n=120)
    rng = np.random.default_rng(5)
    crowded = (0.5137 + 1e-4 * rng.random(len(df)) + 2e-5 * df.label).astype(np.float32)
    df["prob_pneumothorax"], df["prob_normal"] = crowded, (1 - crowded).astype(np.float32)
    recipe, spec = binary_recipe(), binary_spec()
    metrics = evaluate_predictions(df, recipe.classes, recipe.evaluation, n_permutations=0, seed=recipe.seed)
    folder = make_iteration(tmp_path, df, recipe, spec)
    get_backend(recipe.task_type).save_predictions(df, folder / "val_predictions.csv")
    (folder / "metrics.json").write_text(json.dumps(metrics), encoding="utf-8")
    view, _ = _capture(lambda: show_results(folder, bootstrap=0))
    p = view.roc.point
    assert p.threshold == metrics["threshold"]
    assert (p.sensitivity, p.specificity) == (metrics["sensitivity"], metrics["specificity"])
    assert p.confusion == metrics["confusion"]
