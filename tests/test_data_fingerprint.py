"""Dataset fingerprint and shortcut audit, checked against sklearn / scipy references."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2_contingency
from sklearn.metrics import roc_auc_score

from clinagent_lab.data.base import DatasetFingerprint, LoadedDataset
from clinagent_lab.data.fingerprint import (column_association, compute_fingerprint, content_hash,
                                            read_fingerprint, write_fingerprint)


def _v_reference(x, y):
    table = pd.crosstab(np.asarray(x), np.asarray(y)).to_numpy()
    chi2, p, _, _ = chi2_contingency(table, correction=False)
    return float(np.sqrt(chi2 / (table.sum() * (min(table.shape) - 1)))), float(p)


def _orient(a):
    return max(a, 1 - a)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_binary_column_matches_references(rng):
    y = rng.integers(0, 2, 300)
    drain = np.where(rng.random(300) < 0.85, y, 1 - y)  # strongly associated
    a = column_association(pd.Series(drain), y, 2, "chest_drain")
    assert a.kind == "binary" and a.n_levels == 2 and a.n_missing == 0
    assert a.auroc == pytest.approx(_orient(roc_auc_score(y, drain)))
    v, p = _v_reference(drain, y)
    assert a.cramers_v == pytest.approx(v) and a.p_value == pytest.approx(p)
    assert a.flagged


def test_numeric_column_auroc_direct_and_quartile_chi2(rng):
    y = rng.integers(0, 2, 400)
    age = rng.normal(50, 10, 400) - 3 * y  # weak, inverted association
    a = column_association(pd.Series(age), y, 2, "age")
    assert a.kind == "numeric"
    assert a.auroc == pytest.approx(_orient(roc_auc_score(y, age)))
    assert a.auroc == pytest.approx(1 - roc_auc_score(y, age))  # orientation-free
    v, p = _v_reference(pd.qcut(age, 4).astype(str), y)
    assert a.cramers_v == pytest.approx(v) and a.p_value == pytest.approx(p)
    assert "quartiles" in a.note


def test_independent_column_not_flagged(rng):
    y = rng.integers(0, 2, 400)
    sex = pd.Series(rng.choice(["M", "F"], 400))
    a = column_association(sex, y, 2, "sex")
    assert not a.flagged and a.auroc < 0.6 and a.cramers_v < 0.15
    assert a.auroc == pytest.approx(_orient(roc_auc_score(y, (sex == "M").astype(int))))


def test_categorical_target_encoding_and_missing_level(rng):
    y = rng.integers(0, 2, 300)
    site = pd.Series(rng.choice(["A", "B", "C"], 300), dtype=object)
    site[y == 1] = np.where(rng.random(int((y == 1).sum())) < 0.6, "C", site[y == 1])
    site[rng.random(300) < 0.1] = None
    a = column_association(site, y, 2, "site")
    filled = site.fillna("<missing>")
    encoded = filled.map(pd.Series(y).groupby(filled).mean())
    assert a.kind == "categorical" and a.n_levels == 4 and a.n_missing == int(site.isna().sum())
    assert a.auroc == pytest.approx(_orient(roc_auc_score(y, encoded)))
    v, p = _v_reference(filled, y)
    assert a.cramers_v == pytest.approx(v) and a.p_value == pytest.approx(p)
    assert "missing value(s) treated as their own level" in a.note


def test_multiclass_macro_one_vs_rest(rng):
    y = rng.integers(0, 3, 300)
    x = y + rng.normal(0, 1.5, 300)
    a = column_association(pd.Series(x), y, 3, "score")
    expected = np.mean([_orient(roc_auc_score(y == k, x)) for k in range(3)])
    assert a.auroc == pytest.approx(expected)


def test_constant_and_identifier_never_flagged():
    y = np.array([0, 1] * 20)
    const = column_association(pd.Series(["scanner1"] * 40), y, 2, "scanner")
    assert not const.flagged and const.note == "constant: nothing to mitigate"
    ident = column_association(pd.Series([f"acc{i}" for i in range(40)]), y, 2, "accession")
    assert not ident.flagged and ident.note.startswith("identifier-like")
    # an identifier that happens to sort with the label is still not flagged
    ident2 = column_association(pd.Series(np.arange(40)[np.argsort(y, kind="stable")]), np.sort(y), 2, "row")
    assert not ident2.flagged and ident2.note.startswith("identifier-like")


def test_strong_but_tiny_sample_not_flagged():
    y = np.array([0, 0, 1, 1, 1])
    a = column_association(pd.Series(["a", "a", "b", "b", "a"]), y, 2, "x")
    assert a.auroc >= 0.7 and a.p_value > 0.05 and not a.flagged and "not significant" in a.note


def _dataset(n=200, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    split = np.array(["train", "val", "test", "train", "train"] * (n // 5), dtype=object)
    drain = np.where(split == "test", rng.integers(0, 2, n), np.where(rng.random(n) < 0.9, y, 1 - y))
    sizes = [(8 + i % 3, 10) for i in range(n)]
    table = pd.DataFrame({"image_id": [f"i{k}" for k in range(n)], "label": y, "split": split,
                          "group_id": [f"p{k // 2}" for k in range(n)], "path": None, "chest_drain": drain,
                          "sex": rng.choice(["M", "F"], n)})
    return LoadedDataset("memory", Path("/data"), "binary_classification", ["normal", "pneumothorax"], table,
                         lambda i: np.zeros((*sizes[i], 1), np.uint8),
                         metadata_columns=["chest_drain", "sex"],
                         source={"group_column": "patient_id", "splits_given": True})


def test_compute_fingerprint_counts_and_audit_on_train_val(tmp_path):
    ds = _dataset()
    fp = compute_fingerprint(ds, split_rule="given", leakage_checked=True, sample_images=50)
    t = ds.table
    assert fp.n_images == 200 and fp.splits_given and fp.leakage_checked
    assert fp.class_counts == {"normal": int((t.label == 0).sum()), "pneumothorax": int((t.label == 1).sum())}
    assert fp.split_counts["test"]["normal"] == int(((t.split == "test") & (t.label == 0)).sum())
    train = t[t.split == "train"].label.value_counts()
    assert fp.imbalance_ratio == pytest.approx(train.max() / train.min())
    assert fp.image_sizes["height"] == {"min": 8, "median": pytest.approx(9.0, abs=1), "max": 10}
    assert fp.image_sizes["n_sampled"] == 50 and fp.channels == [1]
    assert fp.group_column == "patient_id" and fp.n_groups == 100
    tv = t.split.isin(["train", "val"])
    drain = fp.association("chest_drain")
    assert drain.auroc == pytest.approx(_orient(roc_auc_score(t.label[tv], t.chest_drain[tv])))
    assert drain.flagged and not fp.association("sex").flagged
    assert any("chest_drain" in w for w in fp.warnings)
    assert fp.content_hash == content_hash(t) and len(fp.content_hash) == 64


def test_image_size_sample_is_deterministic():
    ds = _dataset()
    a = compute_fingerprint(ds, "r", False, sample_images=20).image_sizes
    b = compute_fingerprint(ds, "r", False, sample_images=20).image_sizes
    assert a == b


def test_content_hash_changes_with_split_and_not_with_row_order():
    t = _dataset().table
    assert content_hash(t) == content_hash(t.iloc[::-1])
    changed = t.copy()
    changed.loc[0, "split"] = "test" if t.loc[0, "split"] != "test" else "train"
    assert content_hash(changed) != content_hash(t)


def test_write_and_read_fingerprint_atomic(tmp_path):
    fp = compute_fingerprint(_dataset(), "given", True, sample_images=10)
    path = write_fingerprint(fp, tmp_path / "run" / "dataset_fingerprint.json")
    assert json.loads(path.read_text())["n_images"] == 200
    assert read_fingerprint(path) == fp
    assert [p.name for p in path.parent.iterdir()] == ["dataset_fingerprint.json"]  # no temp file left
    assert isinstance(read_fingerprint(path), DatasetFingerprint)
