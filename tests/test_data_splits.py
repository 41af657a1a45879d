"""Grouped, stratified splits; leakage detection; frozen split tables."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from clinagent_lab.data.base import LoadedDataset
from clinagent_lab.data.formats import load_dataset
from clinagent_lab.data.splits import (apply_split_table, assign_splits, check_leakage,
                                       remove_cross_split_duplicates, split_table)
from clinagent_lab.errors import DataValidationError, LeakageError


def memory_dataset(labels, groups, splits=None, images=None) -> LoadedDataset:
    n = len(labels)
    table = pd.DataFrame({"image_id": [f"im{i}" for i in range(n)],
                          "label": np.asarray(labels, dtype=np.int64),
                          "split": pd.Series(splits if splits is not None else [None] * n, dtype=object),
                          "group_id": [str(g) for g in groups], "path": None})
    if images is None:
        images = [np.full((4, 4, 1), i % 256, np.uint8) + (i // 256) for i in range(n)]
    return LoadedDataset("memory", Path("."), "binary_classification", ["neg", "pos"], table,
                         lambda i: images[i], source={"group_column": "patient_id"})


def _patients(n_patients=100, per_patient=2, seed=0, imbalance=0.3):
    rng = np.random.default_rng(seed)
    patient_label = (rng.random(n_patients) < imbalance).astype(int)
    groups = np.repeat(np.arange(n_patients), per_patient)
    return patient_label[groups], groups


def test_no_split_grouped_stratified_60_20_20():
    labels, groups = _patients()
    out, rule = assign_splits(memory_dataset(labels, groups), seed=3)
    t = out.table
    assert t["split"].notna().all()
    assert (t.groupby("group_id")["split"].nunique() == 1).all()  # no patient in two splits
    fractions = t["split"].value_counts(normalize=True)
    assert fractions["train"] == pytest.approx(0.6, abs=0.04)
    assert fractions["val"] == pytest.approx(0.2, abs=0.04)
    assert fractions["test"] == pytest.approx(0.2, abs=0.04)
    overall = t["label"].mean()
    for split, frame in t.groupby("split"):
        assert frame["label"].mean() == pytest.approx(overall, abs=0.06), split  # stratified
    assert "patient_id" in rule and "stratified" in rule and "seed 3" in rule
    assert out.source["splits_given"] is False
    check_leakage(out)  # passes


def test_splits_deterministic_for_seed_and_vary_with_seed():
    labels, groups = _patients()
    ds = memory_dataset(labels, groups)
    a = assign_splits(ds, seed=1)[0].table["split"].tolist()
    b = assign_splits(ds, seed=1)[0].table["split"].tolist()
    c = assign_splits(ds, seed=2)[0].table["split"].tolist()
    assert a == b and a != c


def test_train_test_given_val_carved_from_train():
    labels, groups = _patients(n_patients=120)
    splits = np.where(groups < 90, "train", "test").astype(object)
    out, rule = assign_splits(memory_dataset(labels, groups, splits))
    t = out.table
    assert (t.loc[groups >= 90, "split"] == "test").all()  # own test kept
    train_rows = groups < 90
    val_share = (t.loc[train_rows, "split"] == "val").mean()
    assert val_share == pytest.approx(0.2, abs=0.04)
    assert "own train/test split kept" in rule
    assert out.source["splits_given"] is True
    assert (t.groupby("group_id")["split"].nunique() == 1).all()


def test_full_split_kept_unchanged():
    labels, groups = _patients(n_patients=20)
    splits = np.array(["train", "val", "test", "train"] * 10, dtype=object)
    ds = memory_dataset(labels, np.arange(40), splits)
    out, rule = assign_splits(ds)
    assert out.table["split"].tolist() == splits.tolist()
    assert rule == "dataset's own train/val/test split kept"


def test_small_class_falls_back_to_group_shuffle():
    labels = np.array([1, 1] + [0] * 38)
    groups = np.arange(40)
    out, rule = assign_splits(memory_dataset(labels, groups))
    assert "grouped only" in rule
    assert out.table["split"].notna().all()


def test_single_group_cannot_be_split():
    with pytest.raises(DataValidationError, match="one group"):
        assign_splits(memory_dataset([0, 1, 0, 1], [7, 7, 7, 7]))


def test_leakage_shared_patient():
    labels, groups = _patients(n_patients=10)
    splits = np.array(["train"] * 10 + ["val"] * 5 + ["test"] * 5, dtype=object)
    splits[9] = "val"  # patient 4: rows 8 (train) and 9 (val)
    with pytest.raises(LeakageError) as info:
        check_leakage(memory_dataset(labels, groups, splits), check_content=False)
    assert "4 in train/val" in str(info.value) and "patient_id" in str(info.value)


def test_leakage_duplicated_image_pixels():
    n = 20
    images = [np.full((4, 4, 1), i, np.uint8) for i in range(n)]
    images[15] = images[2].copy()  # same picture, train row 2 and test row 15
    splits = np.array(["train"] * 10 + ["val"] * 5 + ["test"] * 5, dtype=object)
    ds = memory_dataset([i % 2 for i in range(n)], range(n), splits, images)
    with pytest.raises(LeakageError) as info:
        check_leakage(ds)
    assert "im2 (train) = im15 (test)" in str(info.value)
    # duplicates inside one split are not leakage
    images[15] = np.full((4, 4, 1), 99, np.uint8)
    images[3] = images[2].copy()
    assert check_leakage(ds)["method"] == "decoded pixels"


def test_leakage_duplicated_file_bytes_and_removal(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    splits = ["train"] * 8 + ["val"] * 2 + ["test"] * 2
    for k in range(12):
        path = tmp_path / f"{k}.png"
        Image.fromarray(rng.integers(0, 255, (6, 6), dtype=np.uint8)).save(path)
        rows.append({"image": path.name, "label": k % 2, "split": splits[k]})
    shutil.copy(tmp_path / "1.png", tmp_path / "dup_of_1.png")
    rows.append({"image": "dup_of_1.png", "label": 1, "split": "test"})
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    ds = load_dataset(tmp_path)
    with pytest.raises(LeakageError, match=r"1\.png \(train\) = dup_of_1\.png \(test\)"):
        check_leakage(ds)
    assert check_leakage(ds, check_content=False)["images_hashed"] == 0  # groups alone are fine here
    with pytest.warns(UserWarning, match="dropped 1"):
        clean = remove_cross_split_duplicates(ds)
    assert "1.png" not in set(clean.table["image_id"]) and "dup_of_1.png" in set(clean.table["image_id"])
    assert check_leakage(clean)["method"] == "file bytes"


def test_pixel_hash_catches_reencoded_duplicate(tmp_path):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 255, (6, 6), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp_path / "a.png")
    Image.fromarray(pixels).save(tmp_path / "b.bmp")
    rows = [{"image": "a.png", "label": 0, "split": "train"}, {"image": "b.bmp", "label": 0, "split": "val"}]
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    ds = load_dataset(tmp_path)
    assert check_leakage(ds)["method"] == "file bytes"  # different bytes: not caught by the fast check
    with pytest.raises(LeakageError):
        check_leakage(ds, dataset_bytes_hash=False)


def test_split_table_roundtrip_and_errors(tmp_path):
    labels, groups = _patients(n_patients=30)
    ds, _ = assign_splits(memory_dataset(labels, groups))
    frozen = split_table(ds)
    assert list(frozen.columns) == ["image_id", "split", "group_id"]
    frozen.to_csv(tmp_path / "splits.csv", index=False)
    fresh = memory_dataset(labels, groups)
    back = apply_split_table(fresh, pd.read_csv(tmp_path / "splits.csv", dtype={"image_id": str}))
    assert back.table["split"].tolist() == ds.table["split"].tolist()
    # one row absent from the frozen table (e.g. dropped as unreadable): skipped with a note
    partial = apply_split_table(fresh, frozen.iloc[1:])
    assert len(partial) == len(fresh) - 1 and any("left out" in w for w in partial.warnings)
    with pytest.raises(DataValidationError, match="not in the frozen split table"):
        apply_split_table(fresh, frozen.iloc[30:])
    bad = frozen.copy()
    bad.loc[0, "split"] = "holdout"
    with pytest.raises(DataValidationError, match="unknown split"):
        apply_split_table(fresh, bad)


def test_assign_splits_rejects_bad_fractions():
    labels, groups = _patients(n_patients=10)
    with pytest.raises(DataValidationError, match="fractions"):
        assign_splits(memory_dataset(labels, groups), val_fraction=0.6, test_fraction=0.5)


def test_assign_splits_does_not_mutate_input():
    labels, groups = _patients(n_patients=20)
    ds = memory_dataset(labels, groups)
    assign_splits(ds)
    assert ds.table["split"].isna().all()
    assert dataclasses.is_dataclass(ds)
