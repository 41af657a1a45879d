"""Keep or discard: the selection rule must not let a shortcut win when a confounder is to be mitigated.

Validation metrics come from the frozen evaluator on synthetic scores (see ``plan_fixtures``): a shortcut model
whose score follows the chest drain, a fair model that reads the finding only, and variants in between.
"""

from __future__ import annotations

import pytest

try:
    from plan_fixtures import *
except ImportError:  # tests collected as a package
    from tests.plan_fixtures import *

from clinagent_lab.records import Annotation
from clinagent_lab.plan.refiner import confounder_relies
from clinagent_lab.plan.selection import (
    TRADE_TOLERANCE,
    constraint_violations,
    decide,
    reliance_score,
    selection_value,
)


def run_selection(kinds: list[str], spec, annotations=(), selection_metric="group_balanced_auroc"):
    """Decide iterations of the given model kinds in order, the way the engine does; returns them."""
    done, best, baseline = [], None, None
    for index, kind in enumerate(kinds, start=1):
        it = make_iteration(index, evaluate_scores(kind, selection_metric=selection_metric), idea=kind)
        it.decision, it.decision_reason = decide(it, best, baseline, spec, list(annotations))
        if it.decision in ("kept", "baseline"):
            best = it
        if it.decision == "baseline":
            baseline = it
        done.append(it)
    return done, best


# ------------------------------------------------------------------------------------- the key trust rule


def test_the_scenario_is_a_trap_for_plain_auroc():
    shortcut, fair = evaluate_scores("shortcut"), evaluate_scores("fair")
    assert shortcut["auroc"] > fair["auroc"]  # the shortcut looks better on plain validation AUROC...
    assert shortcut["selection_value"] < fair["selection_value"]  # ...but not label x drain balanced
    assert shortcut["selection_metric"] == "group_balanced_auroc"
    assert reliance_score(shortcut, "chest_drain") > reliance_score(fair, "chest_drain")
    assert confounder_relies(shortcut, "chest_drain")[0]


def test_fair_model_replaces_a_shortcut_baseline():
    (base, fair), best = run_selection(["shortcut", "fair"], drain_spec())
    assert base.decision == "baseline"
    assert fair.decision == "kept", fair.decision_reason
    assert best is fair


def test_shortcut_is_not_kept_over_a_fair_baseline():
    (base, shortcut), best = run_selection(["fair", "shortcut"], drain_spec())
    assert base.decision == "baseline"
    assert shortcut.decision == "discarded"
    assert "relies on chest_drain no less than the baseline" in shortcut.decision_reason
    assert best is base


def test_without_mitigation_the_shortcut_would_win():
    """The contrast that makes the rule necessary: on the primary metric alone, the cheat is kept."""
    (_, shortcut), best = run_selection(["fair", "shortcut"], drain_spec(action="report"), selection_metric=None)
    assert shortcut.decision == "kept" and best is shortcut


def test_mitigated_iteration_trading_a_little_value_for_less_reliance_is_kept():
    partial, mitigated = evaluate_scores("partial"), evaluate_scores("mitigated")
    best_value, value = partial["selection_value"], mitigated["selection_value"]
    assert best_value - TRADE_TOLERANCE <= value < best_value  # a small loss...
    assert reliance_score(mitigated, "chest_drain") < reliance_score(partial, "chest_drain")  # ...less reliance
    assert confounder_relies(partial, "chest_drain")[0]
    (_, it), best = run_selection(["partial", "mitigated"], drain_spec())
    assert it.decision == "kept" and best is it
    reason = it.decision_reason
    assert reason.startswith("traded")
    assert f"{best_value - value:.4f}" in reason and f"{value:.4f}" in reason and f"{best_value:.4f}" in reason
    assert "chest_drain" in reason and "iteration 1" in reason


def test_mitigation_that_loses_too_much_is_discarded():
    partial, weak = evaluate_scores("partial"), evaluate_scores("weak")
    assert weak["selection_value"] < partial["selection_value"] - TRADE_TOLERANCE
    assert reliance_score(weak, "chest_drain") < reliance_score(partial, "chest_drain")
    (_, it), _ = run_selection(["partial", "weak"], drain_spec())
    assert it.decision == "discarded"
    assert f"{weak['selection_value']:.4f} ≤ best" in it.decision_reason


def test_more_reliance_than_the_baseline_discards_even_a_higher_value():
    mitigated, partial = evaluate_scores("mitigated"), evaluate_scores("partial")
    assert partial["selection_value"] > mitigated["selection_value"]
    (_, it), best = run_selection(["mitigated", "partial"], drain_spec())
    assert it.decision == "discarded" and best.idea == "mitigated"
    assert it.decision_reason.startswith("constraint not met")
    base, new = reliance_score(mitigated, "chest_drain"), reliance_score(partial, "chest_drain")
    assert f"reliance {new:.3f} vs {base:.3f}" in it.decision_reason


def test_no_trade_without_a_mitigated_confounder():
    """Without a confounder to mitigate, a lower value is simply worse."""
    (_, it), _ = run_selection(["partial", "mitigated"], drain_spec(action="report"))
    assert it.decision == "discarded"


# --------------------------------------------------------------------------------------- clinician bounds


def _bound(max_fpr: float, group="1") -> Annotation:
    return Annotation(kind="group_fpr_bound", value={"confounder": "chest_drain", "group": group,
                                                     "max_fpr": max_fpr})


def test_group_fpr_bound_violation_discards():
    partial = evaluate_scores("partial", selection_metric=None)
    fpr = partial["confounders"]["chest_drain"]["fpr_by_group"]["1"]
    assert fpr > 0.2
    (_, it), best = run_selection(["mitigated", "partial"], drain_spec(action="report"), [_bound(0.2)],
                                  selection_metric=None)
    assert it.selection_value > best.selection_value  # better on the metric, yet...
    assert it.decision == "discarded"
    assert f"FPR {fpr:.2f} in chest_drain=1 exceeds the clinician's bound 0.20" in it.decision_reason


def test_group_fpr_within_bound_is_kept():
    fair = evaluate_scores("fair", selection_metric=None)
    assert fair["confounders"]["chest_drain"]["fpr_by_group"]["1"] <= 0.2
    (_, it), best = run_selection(["weak", "fair"], drain_spec(action="report"), [_bound(0.2, group=1)],
                                  selection_metric=None)
    assert it.decision == "kept" and best is it


def test_meeting_a_bound_the_baseline_breaks_is_worth_a_small_trade():
    """The clinician bounds FPR among drain-bearing negatives; the baseline breaks the bound."""
    partial, mitigated = evaluate_scores("partial"), evaluate_scores("mitigated")
    assert partial["confounders"]["chest_drain"]["fpr_by_group"]["1"] > 0.2
    assert mitigated["confounders"]["chest_drain"]["fpr_by_group"]["1"] <= 0.2
    assert partial["selection_value"] - TRADE_TOLERANCE <= mitigated["selection_value"] < partial["selection_value"]
    (base, it), best = run_selection(["partial", "mitigated"], drain_spec(action="report"), [_bound(0.2)])
    assert base.decision == "baseline"  # the first model is the baseline whatever its FPR
    assert it.decision == "kept" and best is it
    assert it.decision_reason.startswith("traded")
    assert "meeting the constraints iteration 1 breaks" in it.decision_reason
    assert "exceeds the clinician's bound 0.20" in it.decision_reason
    # without the bound the same iteration is simply worse
    (_, again), _ = run_selection(["partial", "mitigated"], drain_spec(action="report"))
    assert again.decision == "discarded"


def test_constraint_violations_lists_each_problem():
    spec = drain_spec()
    base = make_iteration(1, evaluate_scores("fair"))
    it = make_iteration(2, evaluate_scores("shortcut"))
    problems = constraint_violations(it, spec, base, [_bound(0.5), _bound(0.01, group="0"),
                                                       Annotation(kind="note", text="looks odd")])
    assert len(problems) == 2  # reliance, and FPR 1.00 in group 1 > 0.5; group 0 has FPR 0.0
    assert any("relies on chest_drain" in p for p in problems)
    assert any("FPR 1.00 in chest_drain=1" in p for p in problems)
    assert constraint_violations(base, spec, base, []) == []  # the baseline is not compared with itself


# ------------------------------------------------------------------------------------ failed and baseline


@pytest.mark.parametrize("status", ["crash", "timeout", "stopped", "interrupted"])
def test_failed_iterations_are_failed(status):
    best = make_iteration(1, evaluate_scores("fair"))
    it = make_iteration(2, evaluate_scores("fair"), status=status)  # metrics are ignored
    decision, reason = decide(it, best, best, drain_spec(), [])
    assert decision == "failed" and f"'{status}'" in reason and "unchanged" in reason


def test_ok_without_a_selection_value_is_failed():
    assert decide(make_iteration(1, {"primary": 0.9}), None, None, drain_spec(), [])[0] == "baseline"
    decision, reason = decide(make_iteration(1, {"notes": []}), None, None, drain_spec(), [])
    assert decision == "failed" and "no selection value" in reason


def test_first_ok_iteration_is_the_baseline_even_if_it_cheats():
    metrics = evaluate_scores("shortcut")
    decision, reason = decide(make_iteration(1, metrics), None, None, drain_spec(), [_bound(0.01)])
    assert decision == "baseline"
    assert f"{metrics['selection_value']:.4f}" in reason


def test_failed_first_then_baseline():
    crash = make_iteration(1, status="crash", error={"ename": "RuntimeError", "evalue": "boom"})
    assert decide(crash, None, None, drain_spec(), [])[0] == "failed"
    assert decide(make_iteration(2, evaluate_scores("fair")), None, None, drain_spec(), [])[0] == "baseline"


def test_plain_improvement_and_tie():
    spec = drain_spec(action="report")
    best = make_iteration(1, {"selection_value": 0.80, "primary": 0.80})
    better = make_iteration(2, {"selection_value": 0.85, "primary": 0.85})
    tie = make_iteration(3, {"selection_value": 0.80, "primary": 0.80})
    decision, reason = decide(better, best, best, spec, [])
    assert decision == "kept" and reason.startswith("selection value 0.8500 > best 0.8000 (iteration 1)")
    assert "no interval" in reason  # no prediction tables: the point values decide, and the reason says so
    assert decide(tie, best, best, spec, [])[0] == "discarded"


# -------------------------------------------------------------------------------------------- the helpers


def test_selection_value_prefers_the_selection_metric():
    assert selection_value({"selection_value": 0.7, "primary": 0.9}) == 0.7
    assert selection_value({"selection_value": None, "primary": 0.9}) == 0.9
    assert selection_value({"primary": 1}) == 1.0
    assert selection_value({}) is None


def test_reliance_score_by_hand():
    m = evaluate_scores("partial")
    conf = m["confounders"]["chest_drain"]
    expected = abs(conf["dependence"]["partial_correlation"]) + max(conf["reliance"]["excess_fpr"], 0.0)
    assert reliance_score(m, "chest_drain") == pytest.approx(expected)
    negative = {"confounders": {"x": {"dependence": {"partial_correlation": -0.3},
                                      "reliance": {"excess_fpr": -0.2}}}}
    assert reliance_score(negative, "x") == pytest.approx(0.3)
    assert reliance_score(m, "ruler") is None
    assert reliance_score({"confounders": {"x": {"dependence": None, "reliance": None}}}, "x") is None
