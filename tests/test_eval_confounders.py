"""Confounder reliance and dependence against hand counts, numpy, sklearn and scipy references."""

import json

import numpy as np
import pandas as pd
import pytest
from scipy.spatial.distance import pdist, squareform
from sklearn.metrics import mutual_info_score, roc_auc_score

from clinagent_lab.evaluation.confounders import confounder_association, confounder_metrics
from clinagent_lab.evaluation.dependence import (
    conditional_hsic,
    conditional_mutual_information,
    partial_correlation,
)


def _shortcut(n=400, seed=0, strength=0.4):
    """Drain present mostly in positives; the score rewards the drain (a shortcut) by ``strength``."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    drain = (rng.random(n) < np.where(y == 1, 0.7, 0.3)).astype(int)
    score = np.clip(0.3 * y + strength * drain + rng.normal(0, 0.2, n), 0, 1)
    return y, score, drain


def test_per_group_rates_match_hand_counts():
    #            group 0 rows                 group 1 rows
    y = np.array([0, 0, 0, 1, 1, 1, 0, 0, 0, 1, 1, 1])
    s = np.array([.1, .6, .2, .7, .3, .8, .7, .9, .2, .9, .8, .6])
    g = np.array([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    out = confounder_metrics(y, s, g, 0.5, min_group_size=2, n_permutations=0)
    assert out["groups"] == {"0": 6, "1": 6}
    # group 0: negatives .1 .6 .2 -> FP 1/3; positives .7 .3 .8 -> TP 2/3
    # group 1: negatives .7 .9 .2 -> FP 2/3; positives .9 .8 .6 -> TP 3/3
    assert out["fpr_by_group"] == pytest.approx({"0": 1 / 3, "1": 2 / 3})
    assert out["tpr_by_group"] == pytest.approx({"0": 2 / 3, "1": 1.0})
    assert out["reliance"]["excess_fpr"] == pytest.approx(1 / 3)
    assert out["reliance"]["excess_tpr"] == pytest.approx(1 / 3)
    assert out["reliance"]["fpr_confounder_pos"] == pytest.approx(2 / 3)
    for key in ("0", "1"):
        m = g == int(key)
        assert out["auroc_by_group"][key] == pytest.approx(roc_auc_score(y[m], s[m]), abs=1e-6)
    sel = ((g == 0) & (y == 1)) | ((g == 1) & (y == 0))
    cross = out["cross_group_auroc"]["pos|0 vs neg|1"]
    assert cross == pytest.approx(roc_auc_score(y[sel], s[sel]), abs=1e-6)
    assert out["worst_group_auroc"] == min(out["auroc_by_group"].values())
    assert out["dependence_p"] == {"partial_correlation": None, "conditional_mi": None, "hsic": None}


def test_shortcut_is_detected():
    y, s, drain = _shortcut()
    out = confounder_metrics(y, s, drain, 0.5, n_permutations=100, seed=1)
    assert out["reliance"]["excess_fpr"] > 0.2
    # drain-free positives against drain-bearing negatives is the hard case
    assert out["cross_group_auroc"]["pos|0 vs neg|1"] < out["cross_group_auroc"]["pos|1 vs neg|0"] - 0.2
    assert out["dependence"]["partial_correlation"] > 0.4
    assert all(p <= 0.01 for p in out["dependence_p"].values())
    json.dumps(out, allow_nan=False)


def test_no_shortcut_is_not_flagged():
    y, s, drain = _shortcut(strength=0.0, seed=2)
    out = confounder_metrics(y, s, drain, 0.5, n_permutations=100, seed=1)
    assert abs(out["dependence"]["partial_correlation"]) < 0.1
    assert all(p > 0.05 for p in out["dependence_p"].values())


def test_partial_correlation_matches_numpy_on_centred_data():
    y, s, drain = _shortcut(seed=3)
    sc, dc = s.astype(float).copy(), drain.astype(float).copy()
    for v in (0, 1):
        sc[y == v] -= sc[y == v].mean()
        dc[y == v] -= dc[y == v].mean()
    assert partial_correlation(s, drain, y) == pytest.approx(np.corrcoef(sc, dc)[0, 1], abs=1e-12)


def test_conditional_mi_matches_sklearn_per_stratum():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 300)
    bins = rng.integers(0, 5, 300)
    conf = rng.integers(0, 3, 300)
    ref = sum(np.mean(y == v) * mutual_info_score(conf[y == v], bins[y == v]) for v in (0, 1))
    assert conditional_mutual_information(bins, conf, y) == pytest.approx(ref, abs=1e-12)


def _hsic_reference(score, conf, label):
    """Direct trace(K H L H) / n^2 per stratum with scipy distances (median heuristic)."""
    total, n = 0.0, len(label)
    for v in np.unique(label):
        m = label == v
        grams = []
        for x in (score[m], conf[m]):
            d = pdist(x.reshape(-1, 1).astype(float))
            sigma = np.median(d[d > 0])
            grams.append(np.exp(-squareform(d) ** 2 / (2 * sigma**2)))
        k = m.sum()
        h = np.eye(k) - 1 / k
        total += k / n * np.trace(grams[0] @ h @ grams[1] @ h) / k**2
    return total


@pytest.mark.parametrize("n_values", [2, 60])  # one-hot path (few levels) and gather path (many levels)
def test_hsic_matches_direct_formula(n_values):
    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 120)
    conf = rng.integers(0, n_values, 120).astype(float)
    s = rng.random(120) + 0.1 * conf / n_values
    assert conditional_hsic(s, conf.reshape(-1, 1), y) == pytest.approx(_hsic_reference(s, conf, y), rel=1e-9)


def test_hsic_independent_vs_dependent():
    rng = np.random.default_rng(6)
    n = 300
    y = rng.integers(0, 2, n)
    conf = rng.normal(size=n)
    independent = confounder_metrics(y, rng.random(n), np.round(conf, 3), None, n_permutations=100, seed=0)
    # non-monotone dependence: invisible to correlation, visible to HSIC
    dependent = confounder_metrics(y, conf**2 + 0.1 * rng.normal(size=n), np.round(conf, 3), None,
                                   n_permutations=100, seed=0)
    assert independent["dependence"]["hsic"] < dependent["dependence"]["hsic"] / 5
    assert independent["dependence_p"]["hsic"] > 0.05
    assert dependent["dependence_p"]["hsic"] <= 0.01


def test_permutation_p_values_reproducible_and_bounded():
    y, s, drain = _shortcut(n=200, seed=7, strength=0.05)
    a = confounder_metrics(y, s, drain, 0.5, n_permutations=50, seed=3)
    b = confounder_metrics(y, s, drain, 0.5, n_permutations=50, seed=3)
    c = confounder_metrics(y, s, drain, 0.5, n_permutations=50, seed=4)
    assert a["dependence_p"] == b["dependence_p"]
    assert a["dependence_p"] != c["dependence_p"]
    for p in a["dependence_p"].values():
        assert 1 / 51 <= p <= 1.0


def test_missing_values_counted_as_own_group_or_dropped():
    y, s, drain = _shortcut(n=200, seed=8)
    g = pd.Series(drain, dtype=object)
    g.iloc[:7] = None
    g.iloc[7:10] = np.nan
    own = confounder_metrics(y, s, g, 0.5, n_permutations=0)
    assert own["n_missing"] == 10 and own["groups"]["missing"] == 10
    assert own["groups"]["0"] + own["groups"]["1"] == 190
    assert any("missing" in note for note in own["notes"])
    dropped = confounder_metrics(y, s, g, 0.5, n_permutations=0, missing="drop")
    assert dropped["n"] == 190 and "missing" not in dropped["groups"] and dropped["n_missing"] == 10
    assert any("dropped" in note for note in dropped["notes"])
    # float column with NaN: keys lose the '.0'
    gf = drain.astype(float)
    gf[:3] = np.nan
    assert set(confounder_metrics(y, s, gf, 0.5, n_permutations=0)["groups"]) == {"0", "1", "missing"}


def test_undefined_group_gives_none_and_note():
    y, s, drain = _shortcut(n=200, seed=9)
    g = drain.astype(object)
    neg = np.flatnonzero(y == 0)
    g[neg[:3]] = "rare"  # three negatives, no positives
    out = confounder_metrics(y, s, g, 0.5, n_permutations=0)
    assert out["fpr_by_group"]["rare"] is None and out["auroc_by_group"]["rare"] is None
    assert "group rare has 3 negatives (< 5): FPR undefined" in out["notes"]
    assert out["reliance"] is None  # three values: not a binary confounder
    assert out["dependence"]["partial_correlation"] is None
    assert out["dependence"]["hsic"] is not None


def test_group_balanced_auroc_matches_weighted_sklearn():
    y, s, drain = _shortcut(seed=10)
    out = confounder_metrics(y, s, drain, 0.5, n_permutations=0)
    cell = pd.Series(list(zip(y, drain)))
    w = 1.0 / cell.map(cell.value_counts()).to_numpy()
    assert out["group_balanced_auroc"] == pytest.approx(roc_auc_score(y, s, sample_weight=w), abs=1e-12)
    # every label x group cell carries the same total weight
    assert np.allclose(pd.Series(w).groupby(cell).sum(), 1.0)


def test_constant_confounder():
    y, s, _ = _shortcut(n=100, seed=11)
    out = confounder_metrics(y, s, np.ones(100), 0.5)
    assert "constant: nothing to measure" in out["notes"]
    assert out["dependence"] is None and out["dependence_p"] is None and out["reliance"] is None


def test_positive_value_words_and_association():
    y = np.array([0, 0, 0, 1, 1, 1, 1, 0])
    g = np.array(["no", "no", "yes", "yes", "yes", "yes", "no", "no"])
    out = confounder_metrics(y, np.linspace(0, 1, 8), g, 0.5, min_group_size=1, n_permutations=0)
    assert out["positive_value"] == "yes"
    assoc = confounder_association(y, g)
    table = pd.crosstab(g, y).to_numpy()
    n = table.sum()
    expected = np.outer(table.sum(1), table.sum(0)) / n
    chi2 = ((table - expected) ** 2 / expected).sum()
    assert assoc["cramers_v"] == pytest.approx(np.sqrt(chi2 / n), abs=1e-12)
    assert assoc["auroc"] == pytest.approx(roc_auc_score(y, g == "yes"), abs=1e-6)
