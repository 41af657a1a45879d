"""Generic format adapters (MedMNIST npz, CSV manifest, image folder), detection and content validation."""

from __future__ import annotations

import os

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from clinagent_lab.data.formats import detect_format, load_dataset
from clinagent_lab.data.validate import check_images, check_labels, check_table
from clinagent_lab.errors import DataFormatError, DataValidationError


def write_png(path: Path, value: int = 100, size: int = 8, rgb: bool = False) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(value)
    shape = (size, size, 3) if rgb else (size, size)
    Image.fromarray(rng.integers(0, 255, shape, dtype=np.uint8)).save(path)
    return path


def write_npz(path: Path, sizes=(6, 3, 3), rgb: bool = False, label_shape_2d: bool = True,
              seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in zip(("train", "val", "test"), sizes):
        shape = (n, 5, 5, 3) if rgb else (n, 5, 5)
        arrays[f"{split}_images"] = rng.integers(0, 255, shape, dtype=np.uint8)
        labels = (np.arange(n) % 2).astype(np.uint8)
        arrays[f"{split}_labels"] = labels[:, None] if label_shape_2d else labels
    np.savez(path, **arrays)
    return path


def write_manifest(folder: Path, rows: list[dict], make_files: bool = True,
                   name: str = "manifest.csv") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for k, row in enumerate(rows):
        image = row.get("image") or row.get("path") or row.get("filename")
        if make_files and image:
            write_png(folder / image, value=k)
    pd.DataFrame(rows).to_csv(folder / name, index=False)
    return folder


# ------------------------------------------------------------------------------------------------- medmnist


def test_medmnist_grayscale_own_split_and_pixels(tmp_path):
    npz = write_npz(tmp_path / "pneumoniamnist.npz")
    assert detect_format(npz) == "medmnist"
    ds = load_dataset(npz)
    assert ds.classes == ["normal", "pneumonia"]
    assert ds.table["split"].value_counts().to_dict() == {"train": 6, "val": 3, "test": 3}
    assert ds.table["image_id"].iloc[6] == "val_0"
    raw = np.load(npz)
    np.testing.assert_array_equal(ds.read_image(7)[:, :, 0], raw["val_images"][1])
    assert ds.read_image(0).shape == (5, 5, 1) and ds.read_image(0).dtype == np.uint8
    assert ds.table["label"].tolist()[:6] == [0, 1, 0, 1, 0, 1]
    assert (ds.table["group_id"] == ds.table["image_id"]).all()


def test_medmnist_rgb_folder_flat_labels_generic_names(tmp_path):
    write_npz(tmp_path / "dermamnist.npz", rgb=True, label_shape_2d=False)
    assert detect_format(tmp_path) == "medmnist"
    ds = load_dataset(tmp_path)
    assert ds.classes == ["0", "1"]
    assert ds.read_image(2).shape == (5, 5, 3)


def test_medmnist_multilabel_rejected(tmp_path):
    path = write_npz(tmp_path / "x.npz")
    data = dict(np.load(path))
    data["train_labels"] = np.zeros((6, 3), dtype=np.uint8)
    np.savez(path, **data)
    with pytest.raises(DataValidationError, match="single-label"):
        load_dataset(path)


def test_npz_without_medmnist_keys_is_not_detected(tmp_path):
    np.savez(tmp_path / "other.npz", x=np.zeros(3))
    with pytest.raises(DataFormatError) as info:
        detect_format(tmp_path / "other.npz")
    message = str(info.value)
    for name in ("medmnist", "csv_manifest", "image_folder"):
        assert name in message  # every format's expected layout is listed


# --------------------------------------------------------------------------------------------- csv manifest


def _rows(n_per_class=6, classes=("cat", "dog"), **extra):
    rows = []
    for c in classes:
        for k in range(n_per_class):
            rows.append({"image": f"img/{c}_{k}.png", "label": c, "patient_id": f"{c}{k // 2}",
                         "sex": "MF"[k % 2],
                         **{key: v(k) if callable(v) else v for key, v in extra.items()}})
    return rows


def test_csv_manifest_columns_groups_metadata(tmp_path):
    root = write_manifest(tmp_path / "d", _rows(age=lambda k: 30 + k))
    assert detect_format(root) == "csv_manifest"
    ds = load_dataset(root)
    assert ds.classes == ["cat", "dog"]
    assert ds.table["label"].tolist() == [0] * 6 + [1] * 6
    assert ds.table["group_id"].iloc[0] == "cat0" and ds.table["group_id"].iloc[1] == "cat0"
    assert ds.metadata_columns == ["sex", "age"]
    assert ds.table["split"].isna().all() and ds.source["splits_given"] is False
    assert ds.source["group_column"] == "patient_id"
    assert ds.table["image_id"].iloc[0] == "img/cat_0.png"  # the path as the manifest writes it
    img = ds.read_image(3)
    expected = np.asarray(Image.open(root / "img/cat_3.png"))[:, :, None]
    np.testing.assert_array_equal(img, expected)


def test_csv_integer_labels_sorted_numerically_and_csv_file_path(tmp_path):
    rows = [{"path": f"i{k}.png", "target": lab} for k, lab in enumerate([10, 2, 2, 10, 1, 1])]
    root = write_manifest(tmp_path / "d", rows, name="labels.csv")
    ds = load_dataset(root / "labels.csv")
    assert ds.classes == ["1", "2", "10"]
    assert ds.table["label"].tolist() == [2, 1, 1, 2, 0, 0]
    assert ds.task_type == "multiclass_classification"


def test_csv_split_synonyms(tmp_path):
    rows = _rows()
    for k, row in enumerate(rows):
        row["split"] = ["Training", "validation", "TEST"][k % 3]
    ds = load_dataset(write_manifest(tmp_path / "d", rows))
    assert set(ds.table["split"]) == {"train", "val", "test"} and ds.source["splits_given"]


def test_csv_missing_label_column_names_found_and_accepted(tmp_path):
    rows = [{"image": f"i{k}.png", "diagnosis_code": "x"} for k in range(3)]
    root = write_manifest(tmp_path / "d", rows)
    with pytest.raises(DataValidationError) as info:
        load_dataset(root)
    msg = str(info.value)
    assert "diagnosis_code" in msg and "image" in msg  # columns found
    assert "label, target, class, diagnosis" in msg  # columns accepted


def test_csv_missing_image_column(tmp_path):
    root = write_manifest(tmp_path / "d", [{"picture": "a.png", "label": 1}], make_files=False)
    with pytest.raises(DataValidationError, match="no image column.*picture"):
        load_dataset(root)


def test_csv_many_missing_files_stop_with_examples(tmp_path):
    rows = _rows()
    root = write_manifest(tmp_path / "d", rows)
    for k in range(3):
        (root / rows[k]["image"]).unlink()
    with pytest.raises(DataValidationError) as info:
        load_dataset(root)
    msg = str(info.value)
    assert "3 of 12 rows" in msg and "img/cat_0.png" in msg and "line 2" in msg


def test_csv_few_missing_files_skipped_with_warning(tmp_path):
    rows = _rows(n_per_class=30)
    root = write_manifest(tmp_path / "d", rows)
    (root / rows[5]["image"]).unlink()  # 1 of 60 < 2%
    with pytest.warns(UserWarning, match="skipped 1 manifest rows"):
        ds = load_dataset(root)
    assert len(ds) == 59 and "cat_5" not in set(ds.table["image_id"])
    assert any("skipped 1" in w for w in ds.warnings)
    # read_image follows the kept rows
    np.testing.assert_array_equal(ds.read_image(5)[:, :, 0], np.asarray(Image.open(root / rows[6]["image"])))


def test_csv_empty_and_header_only(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "manifest.csv").write_text("")
    with pytest.raises(DataValidationError, match="empty"):
        load_dataset(tmp_path / "a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "manifest.csv").write_text("image,label\n")
    with pytest.raises(DataValidationError, match="no rows"):
        load_dataset(tmp_path / "b")


def test_csv_unknown_split_value(tmp_path):
    rows = _rows()
    for row in rows:
        row["split"] = "train"
    rows[4]["split"] = "calibration"
    with pytest.raises(DataValidationError, match="calibration.*line"):
        load_dataset(write_manifest(tmp_path / "d", rows))


def test_csv_rows_naming_one_file_twice(tmp_path):
    rows = _rows()
    root = write_manifest(tmp_path / "d", rows)
    os.link(root / "img/cat_0.png", root / "img/cat_copy.png")  # the same file under a second name
    for spelling in ("./img/cat_0.png", "img/../img/cat_0.png", "img/cat_copy.png"):
        pd.DataFrame([*rows, {**rows[0], "image": spelling}]).to_csv(root / "manifest.csv", index=False)
        with pytest.raises(DataValidationError, match="1 rows repeat an image path.*lines \\[14\\]"):
            load_dataset(root)


def test_csv_partially_empty_split(tmp_path):
    rows = _rows()
    for row in rows[:6]:
        row["split"] = "train"
    with pytest.raises(DataValidationError, match="split column is empty on 6 of 12"):
        load_dataset(write_manifest(tmp_path / "d", rows))


def test_csv_missing_labels(tmp_path):
    rows = _rows()
    rows[2]["label"] = None
    with pytest.raises(DataValidationError, match="1 rows have no label"):
        load_dataset(write_manifest(tmp_path / "d", rows))


def test_csv_reserved_metadata_name_is_renamed(tmp_path):
    rows = [{"image": f"i{k}.png", "label": k % 2, "path": "elsewhere"} for k in range(4)]
    ds = load_dataset(write_manifest(tmp_path / "d", rows))
    assert "path_meta" in ds.metadata_columns and ds.table["path"].str.endswith(".png").all()


# --------------------------------------------------------------------------------------------- image folder


def test_image_folder_flat(tmp_path):
    for c in ("b_class", "a_class"):
        for k in range(3):
            write_png(tmp_path / c / f"{k}.png", value=k, rgb=True)
    (tmp_path / "a_class" / "notes.txt").write_text("not an image")
    assert detect_format(tmp_path) == "image_folder"
    ds = load_dataset(tmp_path)
    assert ds.classes == ["a_class", "b_class"]
    assert len(ds) == 6 and ds.table["split"].isna().all()
    assert ds.table["image_id"].tolist()[0] == "a_class/0"  # stems repeat across classes
    assert ds.read_image(0).shape == (8, 8, 3)


def test_image_folder_with_splits(tmp_path):
    for split in ("train", "test"):
        for c in ("neg", "pos"):
            for k in range(2):
                write_png(tmp_path / split / c / f"{split}_{c}_{k}.jpg", value=k)
    ds = load_dataset(tmp_path)
    assert ds.source["splits_given"]
    assert ds.table.groupby("split").size().to_dict() == {"test": 4, "train": 4}
    assert ds.table["image_id"].iloc[0] == "test_neg_0"


def test_image_folder_one_class_not_detected(tmp_path):
    write_png(tmp_path / "only" / "a.png")
    with pytest.raises(DataFormatError, match="no known dataset format"):
        detect_format(tmp_path)


def test_csv_manifest_beats_image_folder(tmp_path):
    rows = [{"image": f"c{k % 2}/{k}.png", "label": k % 2} for k in range(6)]
    root = write_manifest(tmp_path, rows)
    assert detect_format(root) == "csv_manifest"


def test_missing_path(tmp_path):
    with pytest.raises(DataFormatError, match="does not exist"):
        detect_format(tmp_path / "nope")


# ------------------------------------------------------------------------------------------------ validation


def _folder_dataset(tmp_path, n_per_class=60, corrupt=0):
    for c in ("neg", "pos"):
        for k in range(n_per_class):
            write_png(tmp_path / c / f"{c}{k}.png", value=k)
    for k in range(corrupt):
        (tmp_path / "pos" / f"pos{k}.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    return load_dataset(tmp_path)


@pytest.mark.parametrize("full_decode_below", [0, 10_000])
def test_check_images_drops_few_corrupt(tmp_path, full_decode_below):
    ds = _folder_dataset(tmp_path, corrupt=2)
    with pytest.warns(UserWarning, match="dropped 2 unreadable"):
        out = check_images(ds, max_bad_fraction=0.02, full_decode_below=full_decode_below)
    assert len(out) == 118 and "pos0" not in set(out.table["image_id"])
    assert out.table["image_id"].iloc[60] == "pos10"  # sorted names; pos0 and pos1 dropped
    expected = np.asarray(Image.open(tmp_path / "pos/pos10.png"))
    np.testing.assert_array_equal(out.read_image(60)[:, :, 0], expected)


def test_check_images_too_many_corrupt(tmp_path):
    ds = _folder_dataset(tmp_path, n_per_class=10, corrupt=3)
    with pytest.raises(DataValidationError) as info:
        check_images(ds)
    assert "3 of 20 images cannot be read" in str(info.value) and "pos0.png" in str(info.value)


def test_check_images_clean_returns_same(tmp_path):
    ds = _folder_dataset(tmp_path, n_per_class=5)
    assert check_images(ds) is ds


def test_check_labels_single_class_and_small_class(tmp_path):
    npz = write_npz(tmp_path / "a.npz", sizes=(20, 10, 10))
    ds = load_dataset(npz)
    assert check_labels(ds) is ds
    one = ds.table.copy()
    one["label"] = 0
    import dataclasses

    with pytest.raises(DataValidationError, match="only one class is present \\(0\\)"):
        check_labels(dataclasses.replace(ds, table=one))
    few = ds.table.copy()
    few["label"] = 0
    few.loc[[0, 1, 2], "label"] = 1
    with pytest.raises(DataValidationError, match="'1': 3"):
        check_labels(dataclasses.replace(ds, table=few))


def test_check_table_duplicate_ids(tmp_path):
    import dataclasses

    ds = load_dataset(write_npz(tmp_path / "a.npz"))
    table = ds.table.copy()
    table.loc[1, "image_id"] = table.loc[0, "image_id"]
    with pytest.raises(DataValidationError, match="repeat"):
        check_table(dataclasses.replace(ds, table=table))


def test_data_package_import_is_torch_free():
    import subprocess
    import sys

    code = ("import sys, clinagent_lab.data as d; from clinagent_lab.data import formats, base, splits, "
            "fingerprint, validate; import clinagent_lab.data.synth; d.list_formats(); "
            "print('torch' in sys.modules, 'lightning' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
