"""GRAZPEDWRI-DX adapter and YOLO label files, on the synthetic writer's exact layout."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clinagent_lab.data.adapters import grazpedwri as adapter
from clinagent_lab.data.formats import detect_format, load_dataset
from clinagent_lab.data.synth.wrist import grazpedwri
from clinagent_lab.data.yolo import (YoloBox, box_to_yolo, parse_yolo_line, read_yolo_labels,
                                     write_yolo_labels, yolo_to_box)
from clinagent_lab.errors import DataFormatError, DataValidationError

SIZE = 32


@pytest.fixture()
def wrist(tmp_path: Path) -> Path:
    return grazpedwri(tmp_path / "wrist", seed=3, n=12, image_size=SIZE, box_fraction=0.5)


def _csv(root: Path) -> pd.DataFrame:
    return pd.read_csv(root / "dataset.csv", dtype={"filestem": str, "patient_id": str})


def test_synthetic_layout_loads_with_labels_groups_and_boxes(wrist: Path) -> None:
    ds = load_dataset(wrist)
    csv = _csv(wrist)
    label_files = sorted(p.stem for p in (wrist / "labels").glob("*.txt"))
    assert ds.format == "grazpedwri" and ds.task_type == "detection"
    assert ds.box_classes == adapter.BOX_CLASSES and ds.box_classes[3] == "fracture"
    assert ds.table["image_id"].tolist() == csv["filestem"].tolist()
    assert ds.table["group_id"].tolist() == csv["patient_id"].tolist()
    assert ds.table["split"].isna().all()
    assert ds.table["label"].tolist() == (csv["fracture_visible"].fillna(0) == 1).astype(int).tolist()
    assert sorted(ds.boxes) == label_files
    assert ds.source["box_fraction"] == pytest.approx(len(label_files) / len(csv))
    assert 0 < len(label_files) < len(csv)
    assert "fracture_visible" not in ds.metadata_columns
    assert {"gender", "age", "metal", "laterality"} <= set(ds.metadata_columns)
    image = ds.read_image(0)
    assert image.shape == (SIZE, SIZE, 1) and image.dtype == np.uint8
    patients = csv.groupby("patient_id").size()
    assert patients.between(1, 3).all() and patients.max() >= 2


def test_boxes_are_yolo_lines_in_absolute_pixels(wrist: Path) -> None:
    ds = load_dataset(wrist)
    stem = next(s for s, b in ds.boxes.items() if any(x.label == 3 for x in b))
    first = (wrist / "labels" / f"{stem}.txt").read_text().splitlines()[0].split()
    cls, cx, cy, w, h = int(first[0]), *map(float, first[1:])
    box = ds.boxes[stem][0]
    assert box.label == cls
    assert (box.x1, box.y1, box.x2, box.y2) == pytest.approx(
        ((cx - w / 2) * SIZE, (cy - h / 2) * SIZE, (cx + w / 2) * SIZE, (cy + h / 2) * SIZE), abs=1e-4)
    label = int(ds.table.loc[ds.table["image_id"] == stem, "label"].iloc[0])
    assert label == 1


def test_fracture_box_sets_the_label_without_fracture_visible(wrist: Path) -> None:
    csv = _csv(wrist)
    ds = load_dataset(wrist)
    boxed_pos = next(s for s, b in ds.boxes.items() if any(x.label == 3 for x in b))
    unboxed_pos = next(s for s, y in zip(ds.table["image_id"], ds.table["label"])
                       if y == 1 and s not in ds.boxes)
    csv.loc[csv["filestem"].isin([boxed_pos, unboxed_pos]), "fracture_visible"] = np.nan
    csv.to_csv(wrist / "dataset.csv", index=False)
    labels = dict(zip(*load_dataset(wrist).table[["image_id", "label"]].to_numpy().T))
    assert labels[boxed_pos] == 1
    assert labels[unboxed_pos] == 0


def test_release_layout_with_image_parts_and_nested_yolov5_labels(wrist: Path) -> None:
    nested = wrist / "folder_structure" / "yolov5" / "labels"
    nested.parent.mkdir(parents=True)
    shutil.move(wrist / "labels", nested)
    pngs = sorted((wrist / "images").glob("*.png"))
    for k, png in enumerate(pngs):
        part = wrist / f"images_part{1 + k % 2}"
        part.mkdir(exist_ok=True)
        shutil.move(png, part / png.name)
    (wrist / "images").rmdir()
    assert detect_format(wrist) == "grazpedwri"
    ds = load_dataset(wrist)
    assert len(ds) == len(pngs)
    assert sorted(ds.boxes) == sorted(p.stem for p in nested.glob("*.txt"))
    assert ds.source["labels_dir"] == str(nested)
    assert len(ds.source["image_dirs"]) == 2


def test_detect_format_picks_grazpedwri_for_folder_and_csv(wrist: Path, tmp_path: Path) -> None:
    assert detect_format(wrist) == "grazpedwri"
    assert detect_format(wrist / "dataset.csv") == "grazpedwri"
    assert not adapter.detect(tmp_path)
    other = tmp_path / "other"
    (other / "images").mkdir(parents=True)
    (other / "dataset.csv").write_text("image,label\na.png,1\n")
    assert not adapter.detect(other)


def test_missing_images_are_counted_with_examples(wrist: Path) -> None:
    stems = _csv(wrist)["filestem"].tolist()
    for stem in stems[:2]:
        (wrist / "images" / f"{stem}.png").unlink()
    ds = load_dataset(wrist)
    assert len(ds) == len(stems) - 2
    assert ds.source["missing_images"] == 2
    assert ds.source["missing_examples"] == stems[:2]
    assert any("2 of 12 images" in w and stems[0] in w for w in ds.warnings)
    for stem in stems[2:]:
        (wrist / "images" / f"{stem}.png").unlink()
    with pytest.raises(DataValidationError, match="none of the 12 images"):
        load_dataset(wrist)


def test_no_label_folder_means_no_box_annotation(wrist: Path) -> None:
    shutil.rmtree(wrist / "labels")
    ds = load_dataset(wrist)
    assert ds.boxes == {} and ds.source["box_fraction"] == 0.0
    assert any("no YOLO label folder" in w for w in ds.warnings)


def test_csv_without_patient_column_is_rejected(wrist: Path) -> None:
    _csv(wrist).drop(columns=["patient_id"]).to_csv(wrist / "dataset.csv", index=False)
    with pytest.raises(DataValidationError, match="patient_id"):
        load_dataset(wrist, "grazpedwri")


def test_not_a_grazpedwri_folder(tmp_path: Path) -> None:
    with pytest.raises(DataFormatError):
        adapter.load(tmp_path)


@pytest.mark.parametrize(("line", "message"), [
    ("3 0.5 0.5 0.2", "expected 5 fields"),
    ("3 0.5 0.5 0.2 0.2 0.1", "expected 5 fields"),
    ("3 0.5 abc 0.2 0.2", "not a number"),
    ("3 0.5 1.2 0.2 0.2", r"outside \[0, 1\]"),
    ("3 -0.1 0.5 0.2 0.2", r"outside \[0, 1\]"),
    ("9 0.5 0.5 0.2 0.2", "unknown class id"),
    ("1.5 0.5 0.5 0.2 0.2", "unknown class id"),
])
def test_bad_yolo_lines_name_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "x.txt"
    path.write_text("3 0.5 0.5 0.2 0.2\n\n" + line + "\n")
    with pytest.raises(DataValidationError, match=message) as info:
        read_yolo_labels(path, num_classes=9)
    assert info.value.where == f"{path}, line 3"


def test_bad_label_file_stops_loading_with_its_name(wrist: Path) -> None:
    label = sorted((wrist / "labels").glob("*.txt"))[0]
    label.write_text("12 0.5 0.5 0.1 0.1\n")
    with pytest.raises(DataValidationError, match="unknown class id") as info:
        load_dataset(wrist)
    assert str(label) in info.value.where and "line 1" in info.value.where


def test_yolo_round_trip(tmp_path: Path) -> None:
    boxes = [YoloBox(3, 0.5, 0.25, 0.2, 0.1), YoloBox(8, 0.1, 0.1, 0.1, 0.1)]
    path = write_yolo_labels(tmp_path / "a.txt", boxes)
    read = read_yolo_labels(path, num_classes=9)
    assert [(b.class_id, b.cx, b.cy, b.w, b.h) for b in read] == \
        [pytest.approx((b.class_id, b.cx, b.cy, b.w, b.h)) for b in boxes]
    pixel = yolo_to_box(boxes[0], width=100, height=40)
    assert (pixel.x1, pixel.y1, pixel.x2, pixel.y2) == pytest.approx((40, 8, 60, 12))
    back = box_to_yolo(pixel, width=100, height=40)
    assert (back.cx, back.cy, back.w, back.h) == pytest.approx((0.5, 0.25, 0.2, 0.1))
    write_yolo_labels(tmp_path / "empty.txt", [])
    assert read_yolo_labels(tmp_path / "empty.txt") == []
    assert parse_yolo_line("0 1.0000001 0 0 0").cx == 1.0


def test_generator_is_registered_and_deterministic(tmp_path: Path) -> None:
    from clinagent_lab.data.synth import generate

    a = generate("grazpedwri", tmp_path / "a", seed=5, n=8, image_size=24, box_fraction=0.5)
    b = grazpedwri(tmp_path / "b", seed=5, n=8, image_size=24, box_fraction=0.5)
    files_a = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files_a == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    assert all((a / f).read_bytes() == (b / f).read_bytes() for f in files_a)
    ds = load_dataset(a)
    assert ds.source["n_annotated"] == 4 and len(ds) == 8
    assert set(ds.table["label"]) <= {0, 1}
