"""GRAZPEDWRI-DX: paediatric wrist radiographs with YOLO boxes (Nagy et al., Sci Data 2022).

Layout (the release ships ``images_part1..4.zip`` and ``folder_structure.zip``)::

    root/
      dataset.csv                        one row an image: filestem, patient_id, fracture_visible, metal, ...
      images/*.png                       the four image zips extracted into one folder, or
      images_part1/ ... images_part4/    each zip extracted into its own folder
      labels/*.txt                       YOLO boxes 'class cx cy w h', or the release's nested
      folder_structure/yolov5/labels/*.txt

Table: ``image_id`` = filestem, ``label`` = 1 when the image has a ``fracture`` box or ``fracture_visible`` is
1, else 0; ``group_id`` = patient_id; no split (the engine splits grouped by patient). Every other CSV column
is metadata (``fracture_visible`` is the label's source and is kept out of the metadata).

``boxes`` holds the boxes of every image that has a label file (absolute pixels; the size is read from the PNG
header). Images without a label file have no box annotation: with boxes on only a fraction of the images the
dataset is *mixed supervision*, and ``source["box_fraction"]`` says how large that fraction is.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...errors import DataFormatError, DataValidationError
from ..base import Box, LoadedDataset
from ..formats import DatasetFormat, register_format
from ..images import image_file_info, read_image_file
from ..yolo import read_yolo_labels, yolo_to_box

__all__ = ["BOX_CLASSES", "CLASSES", "CSV_NAME", "LABEL_DIRS", "find_root", "find_image_files",
           "find_labels_dir",
           "detect", "load"]

CSV_NAME = "dataset.csv"
#: YOLO class order of the release (``folder_structure/yolov5/meta.yaml``)
BOX_CLASSES = ["boneanomaly", "bonelesion", "foreignbody", "fracture", "metal", "periostealreaction",
               "pronatorsign", "softtissue", "text"]
CLASSES = ["no_fracture", "fracture"]
LABEL_DIRS = ("labels", "folder_structure/yolov5/labels", "yolov5/labels")
IMAGE_DIR = "images"
IMAGE_PART_PREFIX = "images_part"
TARGET_BOX_CLASS = "fracture"
#: label sources, not metadata
_NOT_METADATA = {"filestem", "patient_id", "fracture_visible"}
EXPECTED = ("a folder with dataset.csv (filestem, patient_id, ...), images/*.png or images_part*/ and YOLO "
            "labels in labels/ or folder_structure/yolov5/labels/")


def find_root(path: Path) -> Path:
    """The dataset root for ``path``: the folder itself, or the folder of a ``dataset.csv`` file."""
    p = Path(path)
    return p.parent if p.is_file() and p.name.lower() == CSV_NAME else p


def _image_dirs(root: Path) -> list[Path]:
    dirs = [root / IMAGE_DIR] if (root / IMAGE_DIR).is_dir() else []
    with os.scandir(root) as it:
        parts = sorted(Path(e.path) for e in it
                       if e.is_dir() and e.name.lower().startswith(IMAGE_PART_PREFIX))
    return dirs + parts


def _csv_header(csv_path: Path) -> list[str]:
    with open(csv_path, encoding="utf-8", errors="replace") as fh:
        first = fh.readline()
    return [c.strip().strip('"').lower() for c in first.split(",")]


def detect(path: Path) -> bool:
    root = find_root(Path(path))
    csv_path = root / CSV_NAME
    if not root.is_dir() or not csv_path.is_file():
        return False
    return "filestem" in _csv_header(csv_path) and bool(_image_dirs(root))


def find_image_files(root: Path) -> dict[str, Path]:
    """filestem -> PNG path over ``images/`` and every ``images_part*/`` folder (searched recursively)."""
    out: dict[str, Path] = {}
    for folder in _image_dirs(root):
        for path in sorted(folder.rglob("*.png")):
            if not path.name.startswith("."):
                out.setdefault(path.stem, path)
    return out


def find_labels_dir(root: Path) -> Path | None:
    """The first of :data:`LABEL_DIRS` that exists under ``root``."""
    return next((root / d for d in LABEL_DIRS if (root / d).is_dir()), None)


def _read_table(csv_path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(csv_path, dtype={"filestem": str, "patient_id": str}, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DataValidationError("dataset.csv is empty", where=str(csv_path),
                                  fix="restore dataset.csv from the GRAZPEDWRI-DX release") from None
    frame.columns = [c.strip() for c in frame.columns]
    missing = [c for c in ("filestem", "patient_id") if c not in frame.columns]
    if missing:
        raise DataValidationError(f"dataset.csv lacks column(s) {missing}", where=str(csv_path),
                                  fix="GRAZPEDWRI-DX's dataset.csv has filestem and patient_id columns; "
                                      "restore it from the release")
    stems = frame["filestem"].fillna("").str.strip()
    empty = frame.index[stems == ""]
    if len(empty):
        raise DataValidationError(f"{len(empty)} rows of dataset.csv have no filestem",
                                  where=f"{csv_path}, CSV lines {[int(i) + 2 for i in empty[:5]]}",
                                  fix="fill the filestem (the image file name without .png)")
    frame["filestem"] = stems
    dupes = frame.loc[stems.duplicated(), "filestem"]
    if len(dupes):
        raise DataValidationError(f"filestem repeated in dataset.csv: {sorted(set(dupes))[:5]}",
                                  where=str(csv_path), fix="keep one row per image")
    return frame


def _fracture_visible(frame: pd.DataFrame) -> np.ndarray:
    if "fracture_visible" not in frame.columns:
        return np.zeros(len(frame), dtype=bool)
    values = pd.to_numeric(frame["fracture_visible"], errors="coerce")
    return (values.fillna(0).to_numpy() == 1)


def _read_boxes(labels_dir: Path | None, images: dict[str, Path],
                stems: list[str]) -> tuple[dict[str, list[Box]], int]:
    """Boxes (absolute pixels) of every listed image that has a label file; also the count of orphan files."""
    if labels_dir is None:
        return {}, 0
    files = {p.stem: p for p in sorted(labels_dir.rglob("*.txt")) if not p.name.startswith(".")}
    wanted = set(stems)
    boxes: dict[str, list[Box]] = {}
    for stem in stems:
        label_file = files.get(stem)
        if label_file is None or stem not in images:
            continue
        height, width, _ = image_file_info(images[stem])
        boxes[stem] = [yolo_to_box(b, width, height)
                       for b in read_yolo_labels(label_file, num_classes=len(BOX_CLASSES))]
    return boxes, sum(1 for s in files if s not in wanted)


def _missing_note(missing: list[str], n_rows: int) -> str:
    return (f"{len(missing)} of {n_rows} images listed in dataset.csv are missing (e.g. {missing[:5]}); they "
            f"were left out. Extract every images_part*.zip of the release into images/")


def load(path: Path, **options: Any) -> LoadedDataset:
    """Read a GRAZPEDWRI-DX folder. No options are accepted.

    Raises:
        DataFormatError: no dataset.csv or no image folder.
        DataValidationError: bad CSV, bad YOLO label lines, or none of the listed images found.
    """
    if options:
        raise DataValidationError(f"the grazpedwri format takes no options, got {sorted(options)}",
                                  where="recipe data.format_options", fix="remove these options")
    root = find_root(Path(path))
    csv_path = root / CSV_NAME
    if not csv_path.is_file() or not _image_dirs(root):
        raise DataFormatError(f"{root} is not a GRAZPEDWRI-DX folder", where=str(root),
                              fix=f"expected {EXPECTED}")
    frame = _read_table(csv_path)
    images = find_image_files(root)
    present = frame["filestem"].isin(images).to_numpy()
    missing = frame.loc[~present, "filestem"].tolist()
    if not present.any():
        raise DataValidationError(f"none of the {len(frame)} images listed in dataset.csv was found "
                                  f"(e.g. {missing[:5]})", where=", ".join(str(d) for d in _image_dirs(root)),
                                  fix="extract the images_part*.zip files into images/ (PNG files named "
                                      "<filestem>.png)")
    warnings = [_missing_note(missing, len(frame))] if missing else []
    visible = _fracture_visible(frame)[present]
    frame = frame.loc[present].reset_index(drop=True)
    stems = frame["filestem"].tolist()

    labels_dir = find_labels_dir(root)
    boxes, orphans = _read_boxes(labels_dir, images, stems)
    if labels_dir is None:
        warnings.append("no YOLO label folder found (labels/ or folder_structure/yolov5/labels/): "
                        "no image has box annotations")
    if orphans:
        warnings.append(f"{orphans} label file(s) have no row in dataset.csv and were ignored")
    fracture_id = BOX_CLASSES.index(TARGET_BOX_CLASS)
    has_fracture_box = np.array([any(b.label == fracture_id for b in boxes.get(s, [])) for s in stems])
    label = (has_fracture_box | visible).astype(int)

    metadata = [c for c in frame.columns if c not in _NOT_METADATA]
    table = pd.DataFrame({"image_id": stems, "label": label, "split": [None] * len(stems),
                          "group_id": frame["patient_id"].fillna("").astype(str).str.strip().to_numpy(),
                          "path": [str(images[s]) for s in stems]})
    no_patient = table["group_id"] == ""
    table.loc[no_patient, "group_id"] = table.loc[no_patient, "image_id"]
    for column in metadata:
        table[column] = frame[column].to_numpy()
    paths = table["path"].tolist()

    def read_image(i: int) -> np.ndarray:
        return read_image_file(paths[i])

    n_boxes = sum(len(v) for v in boxes.values())
    source = {"csv": str(csv_path), "image_dirs": [str(d) for d in _image_dirs(root)],
              "labels_dir": str(labels_dir) if labels_dir else None, "n_rows_csv": int(len(present)),
              "n_images": len(stems), "missing_images": len(missing), "missing_examples": missing[:5],
              "n_annotated": len(boxes), "n_boxes": n_boxes, "box_fraction": len(boxes) / len(stems),
              "label_rule": "1 if a fracture box or fracture_visible == 1, else 0"}
    return LoadedDataset(format="grazpedwri", root=root, task_type="detection", classes=list(CLASSES),
                         table=table, read_image=read_image, metadata_columns=metadata, boxes=boxes,
                         box_classes=list(BOX_CLASSES), warnings=warnings, source=source)


FORMAT = register_format(DatasetFormat(name="grazpedwri", detect=detect, load=load, expected=EXPECTED,
                                       priority=11))
