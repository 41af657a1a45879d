"""End to end on tiny synthetic data: two iterations, keep/discard, the test split read once, reload."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from clinagent_lab.agent.engine import Engine
from clinagent_lab.records import Session
from clinagent_lab.errors import SessionError

pytestmark = pytest.mark.slow


def test_two_iterations_run_and_are_recorded(e2e_session):
    engine, events = e2e_session
    s = engine.session
    assert [it.index for it in s.iterations] == [1, 2]
    assert all(it.status == "ok" for it in s.iterations), [it.error for it in s.iterations]
    assert s.iterations[0].decision == "baseline"
    assert s.iterations[1].decision in ("kept", "discarded")
    assert s.iterations[1].rationale and s.iterations[1].idea != "baseline"
    for it in s.iterations:
        for key in ("auroc", "sensitivity", "specificity", "threshold", "auroc"):
            assert key in it.val_metrics
        assert Path(it.notebook).exists() and Path(it.checkpoint).exists()
        assert "chest_drain" in it.val_metrics["confounders"]
    kinds = {e["type"] for e in events}
    assert {"iteration_started", "data_started", "epoch", "iteration_finished", "session_finished"} <= kinds
    relayed = [e for e in events if e["type"] in ("data_started", "fit_started", "epoch")]
    assert all(e["iteration"] in (1, 2) and e["session"] == s.id for e in relayed)  # the engine's values


def test_best_iteration_is_the_best_kept_one(e2e_session):
    engine, _ = e2e_session
    s = engine.session
    kept = [it for it in s.iterations if it.decision in ("kept", "baseline")]
    assert s.best_iteration == kept[-1].index


def test_test_split_read_exactly_once(e2e_session):
    engine, _ = e2e_session
    s = engine.session
    assert s.test_reads == 1
    assert [e.kind for e in s.audit].count("test_split_read") == 1
    info = json.loads((Path(s.out_dir) / "final_test" / "run_info.json").read_text())
    assert info["test_reads"] == 1  # the test loader was built once, in the final-test notebook
    assert s.final_test is not None and s.final_test.iteration == s.best_iteration
    splits = pd.read_csv(Path(s.out_dir) / "splits.csv", dtype={"image_id": str})
    test_ids = set(splits.loc[splits["split"] == "test", "image_id"])
    for it in s.iterations:  # iteration notebooks never saw a test image
        val = pd.read_csv(Path(it.output_dir) / "val_predictions.csv", dtype={"image_id": str})
        assert not test_ids & set(val["image_id"])
    with pytest.raises(SessionError, match="already evaluated"):
        engine.finish()


def test_test_predictions_file(e2e_session):
    engine, _ = e2e_session
    s = engine.session
    pred = pd.read_csv(s.final_test.predictions, dtype={"image_id": str})
    assert list(pred.columns[:3]) == ["image_id", "label", "label_name"]
    assert [c for c in pred.columns if c.startswith("prob_")] == ["prob_normal", "prob_pneumothorax"]
    assert len(pred) == s.final_test.n_samples == s.fingerprint.split_counts["test"]["normal"] + \
        s.fingerprint.split_counts["test"]["pneumothorax"]
    assert pred[["prob_normal", "prob_pneumothorax"]].sum(axis=1).round(5).eq(1).all()
    for key in ("auroc", "sensitivity", "specificity", "threshold", "primary"):
        assert key in s.final_test.metrics
    # the operating threshold on test is the one chosen on validation
    best = s.best()
    assert s.final_test.metrics["threshold"] == pytest.approx(best.val_metrics["threshold"])


def test_session_reloads_identically(e2e_session):
    engine, _ = e2e_session
    reloaded = Session.load(engine.session.out_dir)
    assert reloaded.model_dump() == engine.session.model_dump()
    raw = json.loads((Path(engine.session.out_dir) / "session.json").read_text())
    for key in ("spec", "fingerprint", "iterations", "best_iteration", "final_test"):
        assert key in raw
    for key in ("index", "status", "recipe", "rationale", "val_metrics", "decision", "notebook"):
        assert key in raw["iterations"][0]
    assert raw["final_test"]["metrics"] and raw["final_test"]["evaluated_at"]


def test_reopen_marks_running_iteration_interrupted(e2e_session, tmp_path):
    import shutil

    engine, _ = e2e_session
    copy = tmp_path / "copy"
    shutil.copytree(engine.session.out_dir, copy)
    s = Session.load(copy)
    s.iterations[-1].status = "running"
    s.iterations[-1].finished_at = None
    s.status = "running"
    s.out_dir = str(copy)
    s.save()
    reopened = Engine.open(copy)
    assert reopened.session.iterations[-1].status == "interrupted"
    assert reopened.session.status == "stopped"


def test_drain_shortcut_detected_and_mitigated(e2e_session):
    """Confounder acceptance: baseline relies on the drain, the next iteration mitigates it and is kept,
    and the confounder metrics are recorded for each iteration and for the final test."""
    from clinagent_lab.plan.refiner import confounder_relies

    engine, _ = e2e_session
    s = engine.session
    assert s.spec.confounder("chest_drain").action == "mitigate"
    assert s.iterations[0].recipe.evaluation.selection_metric == "group_balanced_auroc"
    relies, why = confounder_relies(s.iterations[0].val_metrics, "chest_drain")
    assert relies, why
    second = s.iterations[1]
    assert second.idea.startswith("mitigate:chest_drain:")
    assert second.recipe.debias.method != "none"
    assert second.decision == "kept", second.decision_reason
    for it in s.iterations:
        conf = it.val_metrics["confounders"]["chest_drain"]
        for key in ("fpr_by_group", "tpr_by_group", "auroc_by_group", "dependence"):
            assert key in conf
    assert {"fpr_by_group", "tpr_by_group", "auroc_by_group", "dependence"} <= \
        set(s.final_test.metrics["confounders"]["chest_drain"])


def test_demo_check_scores_baseline_and_kept_model_on_fresh_data(e2e_session, tmp_path):
    import io

    from clinagent_lab.data.synth import generate
    from clinagent_lab.demo_check import external_check, print_external_check

    engine, _ = e2e_session
    s = engine.session
    reads = s.test_reads
    fresh = generate("chest_drain", tmp_path / "fresh", seed=7, n=80, image_size=16, correlation=0.0)
    rows = external_check(s, fresh)
    assert [it.index for it, _ in rows] == sorted({1, s.best_iteration})  # the baseline, then the kept one
    for it, metrics in rows:
        assert 0.0 <= metrics["auroc"] <= 1.0 and metrics["n"] == 80  # every fresh image, whatever its split
        assert metrics["threshold"] == pytest.approx(it.val_metrics["threshold"])  # the validation threshold
        assert "chest_drain" in metrics["confounders"]
    assert s.test_reads == reads  # the session's test split is not read again
    out = io.StringIO()
    print_external_check(rows, "chest_drain", 80, out)
    text = out.getvalue()
    assert "iteration 1 (baseline, baseline): auroc" in text
    assert "false alarms with / without chest_drain" in text
