"""Keep/discard against validation noise: the paired bootstrap interval of the difference to the best so far.

Each iteration's ``val_predictions.csv`` is written to its output folder (as a notebook does) and ``decide``
reads both; the synthetic validation set and the model kinds are those of ``plan_fixtures``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

try:
    from plan_fixtures import *
except ImportError:  # tests collected as a package
    from tests.plan_fixtures import *

from clinagent_lab.evaluation import paired_difference_ci
from clinagent_lab.evaluation.bootstrap import bootstrap_ci
from clinagent_lab.evaluation.confounders import group_balanced_auroc
from clinagent_lab.plan.selection import decide, difference_to_best, format_difference
from clinagent_lab.recipe import EvalConfig

CFG = {"positive_class": 1, "selection_metric": "group_balanced_auroc", "bootstrap": 200}


def _iteration(tmp_path, index: int, table: pd.DataFrame):
    """An iteration with the evaluator's metrics of ``table`` and the table in its output folder."""
    from clinagent_lab.evaluation import evaluate_predictions

    folder = tmp_path / f"iter_{index:02d}"
    folder.mkdir()
    table.to_csv(folder / "val_predictions.csv", index=False)
    metrics = evaluate_predictions(table, CLASSES, EvalConfig(**CFG) .model_copy(update={"bootstrap": 0}),
                                   confounders={"chest_drain": "chest_drain"}, n_permutations=0)
    it = make_iteration(index, metrics)
    it.output_dir = str(folder)
    return it


def _nudged(kind: str, scale: float, seed: int) -> pd.DataFrame:
    """Model ``kind`` with a little independent noise on its logit."""
    table = scores(kind).copy()
    p = table["prob_pneumothorax"].to_numpy()
    logit = np.log(p / (1 - p)) + scale * np.random.default_rng(seed).standard_normal(len(p))
    table["prob_pneumothorax"] = 1 / (1 + np.exp(-logit))
    table["prob_normal"] = 1 - table["prob_pneumothorax"]
    return table


def _gba(table: pd.DataFrame) -> float:
    return group_balanced_auroc(table["label"].to_numpy() == 1, table["prob_pneumothorax"].to_numpy(),
                                table["chest_drain"].astype(str).to_numpy())


def test_an_advantage_inside_the_interval_is_not_called_better(tmp_path):
    spec = drain_spec(action="report")
    fair = scores("fair")
    # a candidate whose point value is higher than the best's, by less than the validation noise
    seed = next(s for s in range(50) if 0 < _gba(_nudged("fair", 0.3, s)) - _gba(fair) < 0.01)
    best = _iteration(tmp_path, 1, fair)
    candidate = _iteration(tmp_path, 2, _nudged("fair", 0.3, seed))
    assert candidate.val_metrics["selection_value"] > best.val_metrics["selection_value"]
    ci = difference_to_best(candidate, best, spec)
    assert ci.low < 0 < ci.high and ci.point > 0
    decision, reason = decide(candidate, best, best, spec, [])
    assert decision == "discarded", reason
    assert "not better beyond validation noise" in reason and "a tie goes to the less reliant model" in reason
    assert format_difference(ci, "group_balanced_auroc") in reason
    assert "95 % CI" in reason


def test_a_clear_improvement_is_kept_with_its_interval(tmp_path):
    spec = drain_spec(action="report")
    best = _iteration(tmp_path, 1, scores("shortcut"))
    candidate = _iteration(tmp_path, 2, scores("fair"))
    ci = difference_to_best(candidate, best, spec)
    assert ci.low > 0
    decision, reason = decide(candidate, best, best, spec, [])
    assert decision == "kept" and "beyond validation noise" in reason and "95 % CI +" in reason


def test_a_tie_goes_to_the_less_reliant_model(tmp_path):
    spec = drain_spec()
    base = _iteration(tmp_path, 1, scores("shortcut"))
    best = _iteration(tmp_path, 2, scores("partial"))
    mitigated = _iteration(tmp_path, 3, scores("mitigated"))
    ci = difference_to_best(mitigated, best, spec)
    assert ci.low < 0 < ci.high  # within noise
    decision, reason = decide(mitigated, best, base, spec, [])
    assert decision == "kept", reason
    assert "chest_drain" in reason and format_difference(ci, "group_balanced_auroc") in reason


def test_the_difference_reads_like_the_rationale():
    from clinagent_lab.evaluation.bootstrap import BootstrapCI

    ci = BootstrapCI(-0.001, -0.012, 0.009, n_resamples=200, n_skipped=0, confidence=0.95)
    assert format_difference(ci, "auroc") == "AUROC difference \u22120.001, 95 % CI \u22120.012 to +0.009"
    assert "no interval" in format_difference(None, "auroc")


def test_patients_are_resampled_whole():
    """Each patient's two identical rows resampled together give the interval of one row per patient."""
    one = scores("partial").iloc[:120].reset_index(drop=True)
    other = scores("fair").iloc[:120].reset_index(drop=True)
    twice = lambda t: pd.concat([t, t]).assign(
        patient_id=lambda d: [f"p{i:03d}" for i in d.index], image_id=[f"i{k}" for k in range(2 * len(t))])
    cfg = dict(CFG, bootstrap=0)
    paired = paired_difference_ci(twice(other), twice(one), CLASSES, cfg,
                                  confounders={"chest_drain": "chest_drain"}, n_resamples=100, seed=3)
    rows = bootstrap_ci(lambda _, r: _gba(other.iloc[r]) - _gba(one.iloc[r]), other["label"].to_numpy(),
                        np.arange(len(one)), n_resamples=100, seed=3)
    assert paired.point == pytest.approx(rows.point)
    assert (paired.low, paired.high) == pytest.approx((rows.low, rows.high))
