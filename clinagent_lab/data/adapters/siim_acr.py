"""SIIM-ACR pneumothorax, in the Kaggle layout (DICOM) or its common PNG conversion.

DICOM layout (the challenge download)::

    <root>/
      train-rle.csv                  ImageId, EncodedPixels   (header with or without the space; -1 = none)
      dicom-images-train/<study UID>/<series UID>/<ImageId>.dcm     (found recursively)
      dicom-images-test/...          ignored: it has no labels
      chest_drain_labels.csv         optional: ImageId,drain (0/1); also drains.csv, or option drain_csv

PNG layout: ``png_images/<ImageId>.png`` (or ``train_png/<ImageId>.png``) beside the same ``train-rle.csv``.
``stage_2_train.csv`` is accepted in place of ``train-rle.csv``.

An image is ``pneumothorax`` (label 1) when any of its rows has a mask, ``normal`` (0) when its rows are
``-1``. Every RLE string is checked (integers, pairs, runs inside the image), so a malformed row is reported
with its line and ImageId before training. ``group_id`` is the DICOM PatientID (read from the header only,
``stop_before_pixels``) or the ImageId where there is none (PNG, ``read_headers=False``). The optional drain
annotation becomes metadata column ``chest_drain`` (0/1; NaN where an image has no annotation).

Options:
    drain_csv: path of a drain annotation CSV (columns ``ImageId`` and ``drain`` or ``chest_drain``).
    read_headers: read PatientID from every DICOM header (default True).
    max_missing_fraction: labelled images without a file are skipped with a warning up to this fraction
        of the labelled images (default 0.05); more is an error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import DataFormatError, DataValidationError
from ..base import LoadedDataset
from ..dicom import read_dicom, read_dicom_header
from ..formats import DatasetFormat, register_format
from ..images import image_file_info, read_image_file, to_channels
from ..rle import is_empty_rle, parse_rle
from ._common import child_with

__all__ = ["RLE_CSV_NAMES", "DICOM_DIR", "PNG_DIRS", "DRAIN_CSV_NAMES", "CLASSES", "DEFAULT_SIZE",
           "find_root", "detect", "load", "read_rle_csv", "read_drain_labels"]

RLE_CSV_NAMES = ("train-rle.csv", "stage_2_train.csv")
DICOM_DIR = "dicom-images-train"
PNG_DIRS = ("png_images", "train_png")
DRAIN_CSV_NAMES = ("chest_drain_labels.csv", "drains.csv")
DRAIN_COLUMNS = ("drain", "chest_drain")
CLASSES = ["normal", "pneumothorax"]
DEFAULT_SIZE = (1024, 1024)
"""Image size assumed for RLE checks when the header cannot tell (the challenge images are 1024x1024)."""

EXPECTED = (f"{RLE_CSV_NAMES[0]} + {DICOM_DIR}/<study>/<series>/<ImageId>.dcm "
            f"(or {PNG_DIRS[0]}/<ImageId>.png) (+ optional {DRAIN_CSV_NAMES[0]})")
_EXAMPLES = 5


def _rle_csv(folder: Path) -> Path | None:
    return next((folder / n for n in RLE_CSV_NAMES if (folder / n).is_file()), None)


def _has_marker(folder: Path) -> bool:
    return _rle_csv(folder) is not None or (folder / DICOM_DIR).is_dir()


def find_root(path: str | Path) -> Path | None:
    """The folder holding the SIIM files: ``path``, its parent (image folder or RLE CSV given) or a child
    folder."""
    path = Path(path)
    if path.is_file():
        return path.parent if path.name in RLE_CSV_NAMES else None
    if not path.is_dir():
        return None
    if _has_marker(path):
        return path
    if path.name in (DICOM_DIR, *PNG_DIRS) and _rle_csv(path.parent) is not None:
        return path.parent
    return child_with(path, _has_marker)


def detect(path: Path) -> bool:
    """True when ``path`` (or its parent / one child) has ``train-rle.csv`` or ``dicom-images-train/``."""
    return find_root(path) is not None


def _examples(ids) -> str:
    ids = list(ids)
    return ", ".join(str(i) for i in ids[:_EXAMPLES]) + (", ..." if len(ids) > _EXAMPLES else "")


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataValidationError(f"cannot parse CSV: {exc}", where=str(path),
                                  fix="check that the file is a comma-separated text file") from exc
    table.columns = [str(c).strip() for c in table.columns]
    return table


def _column(table: pd.DataFrame, names: tuple[str, ...], csv: Path) -> str:
    lower = {c.lower(): c for c in table.columns}
    found = next((lower[n.lower()] for n in names if n.lower() in lower), None)
    if found is None:
        raise DataValidationError(f"CSV has no column {' or '.join(names)} (columns: {list(table.columns)})",
                                  where=f"{csv} header", fix=f"name the column {names[0]}")
    return found


def read_rle_csv(csv: Path) -> pd.DataFrame:
    """``train-rle.csv`` as a table with columns ``ImageId``, ``EncodedPixels`` (stripped) and ``line``."""
    table = _read_csv(csv)
    id_col = _column(table, ("ImageId",), csv)
    rle_col = _column(table, ("EncodedPixels",), csv)
    return pd.DataFrame({"ImageId": table[id_col].str.strip(), "EncodedPixels": table[rle_col].str.strip(),
                         "line": np.arange(len(table)) + 2})


def _index_files(folder: Path, suffix: str, recursive: bool) -> dict[str, Path]:
    files = folder.rglob(f"*{suffix}") if recursive else folder.glob(f"*{suffix}")
    found: dict[str, Path] = {}
    for p in sorted(files):
        if not p.name.startswith("."):
            found.setdefault(p.stem, p)
    return found


def _image_source(root: Path) -> tuple[str, Path]:
    if (root / DICOM_DIR).is_dir():
        return "dicom", root / DICOM_DIR
    png = next((root / d for d in PNG_DIRS if (root / d).is_dir()), None)
    if png is not None:
        return "png", png
    raise DataFormatError(f"SIIM-ACR layout incomplete: no {DICOM_DIR}/ or {PNG_DIRS[0]}/ folder",
                          where=str(root), fix=f"put the images beside the CSV: {EXPECTED}")


def _check_missing(ids: list[str], files: dict[str, Path], folder: Path, max_missing_fraction: float,
                   warnings: list[str]) -> list[str]:
    missing = [i for i in ids if i not in files]
    if missing:
        msg = f"{len(missing)} of {len(ids)} labelled images have no file in {folder.name}/ " \
              f"(e.g. {_examples(missing)})"
        if len(missing) > max_missing_fraction * len(ids):
            raise DataValidationError(msg, where=str(folder),
                                      fix="complete the download of the training images, or raise "
                                          "max_missing_fraction to train on what is there")
        warnings.append(msg + "; these images were skipped")
    unlabelled = len(set(files) - set(ids))
    if unlabelled:
        warnings.append(f"{unlabelled} image files in {folder.name}/ have no row in the RLE CSV and were "
                        f"ignored (e.g. {_examples(sorted(set(files) - set(ids)))})")
    return [i for i in ids if i in files]


def _dicom_headers(ids: list[str], files: dict[str, Path], positives: set[str],
                   read_headers: bool) -> tuple[dict[str, str], dict[str, tuple[int, int]]]:
    patients: dict[str, str] = {}
    sizes: dict[str, tuple[int, int]] = {}
    for image_id in ids:
        if not read_headers and image_id not in positives:
            continue
        ds = read_dicom_header(files[image_id], ["PatientID", "Rows", "Columns"])
        patient = str(ds.get("PatientID", "") or "").strip()
        if patient:
            patients[image_id] = patient
        if ds.get("Rows") and ds.get("Columns"):
            sizes[image_id] = (int(ds.Rows), int(ds.Columns))
    return (patients if read_headers else {}), sizes


def _png_sizes(ids: list[str], files: dict[str, Path], positives: set[str]) -> dict[str, tuple[int, int]]:
    return {i: image_file_info(files[i])[:2] for i in ids if i in positives}


def _validate_rles(rows: pd.DataFrame, sizes: dict[str, tuple[int, int]], csv: Path) -> None:
    for image_id, encoded, line in rows[["ImageId", "EncodedPixels", "line"]].itertuples(index=False):
        h, w = sizes.get(image_id, DEFAULT_SIZE)
        parse_rle(encoded, h * w, where=f"{csv.name} line {line} (ImageId {image_id})")


def _labels(rows: pd.DataFrame, warnings: list[str]) -> pd.Series:
    has_mask = ~rows["EncodedPixels"].map(is_empty_rle)
    per_image = has_mask.groupby(rows["ImageId"], sort=False)
    mixed = int((per_image.any() & ~per_image.all()).sum())
    if mixed:
        warnings.append(f"{mixed} images have both -1 and mask rows; they count as pneumothorax")
    return per_image.any().astype(int)


def _find_drain_csv(root: Path, option: str | Path | None) -> Path | None:
    if option is not None:
        p = Path(option)
        if not p.is_absolute() and not p.exists():
            p = root / p
        if not p.is_file():
            raise DataFormatError(f"drain annotation file not found: {option}", where="option drain_csv",
                                  fix="pass the path of a CSV with columns ImageId,drain")
        return p
    return next((root / n for n in DRAIN_CSV_NAMES if (root / n).is_file()), None)


def read_drain_labels(csv: Path) -> pd.Series:
    """Drain annotations as an int 0/1 Series indexed by ImageId (empty cells left out).

    Raises:
        DataValidationError: no ImageId / drain column, a value other than 0/1, or one image with two
            different values (naming the CSV line and ImageId).
    """
    table = _read_csv(csv)
    id_col = _column(table, ("ImageId",), csv)
    drain_col = _column(table, DRAIN_COLUMNS, csv)
    ids, raw = table[id_col].str.strip(), table[drain_col].str.strip()
    present = raw != ""
    values = pd.to_numeric(raw.where(present), errors="coerce")
    bad = np.flatnonzero((present & ~values.isin([0, 1])).to_numpy())
    if len(bad):
        i = int(bad[0])
        raise DataValidationError(f"drain value '{raw.iloc[i]}' is not 0 or 1 ({len(bad)} such rows)",
                                  where=f"{csv.name} line {i + 2} (ImageId {ids.iloc[i]})",
                                  fix="write 1 when a chest drain is visible, 0 when not, empty when unknown")
    labels = pd.Series(values[present].astype(int).to_numpy(), index=ids[present].to_numpy())
    conflict = labels.groupby(level=0).nunique() > 1
    if conflict.any():
        image_id = conflict.index[conflict.to_numpy()][0]
        line = int(np.flatnonzero((ids == image_id).to_numpy())[1]) + 2
        raise DataValidationError(f"{int(conflict.sum())} images have conflicting drain values",
                                  where=f"{csv.name} line {line} (ImageId {image_id})",
                                  fix="keep one drain value per image")
    return labels[~labels.index.duplicated()]


def _join_drains(table: pd.DataFrame, csv: Path, warnings: list[str]) -> None:
    drains = read_drain_labels(csv)
    unknown = sorted(set(drains.index) - set(table["image_id"]))
    if unknown:
        warnings.append(f"{len(unknown)} ImageIds in {csv.name} are not in the data (ignored): "
                        f"{_examples(unknown)}")
    joined = table["image_id"].map(drains)
    n_missing = int(joined.isna().sum())
    if n_missing:
        warnings.append(f"{n_missing} of {len(table)} images have no drain annotation in {csv.name} "
                        f"(chest_drain is NaN for them)")
        table["chest_drain"] = joined.astype(float)
    else:
        table["chest_drain"] = joined.astype(int)


def _reader(kind: str, paths: list[str]):
    def read_dicom_image(i: int) -> np.ndarray:
        return read_dicom(paths[i])[:, :, None]

    def read_png_image(i: int) -> np.ndarray:
        return to_channels(read_image_file(paths[i]), 1)

    return read_dicom_image if kind == "dicom" else read_png_image


def _resolve(path: Path) -> tuple[Path, Path]:
    root = find_root(path) or Path(path)
    csv = _rle_csv(root)
    if csv is None:
        raise DataFormatError(f"SIIM-ACR layout incomplete: no {' or '.join(RLE_CSV_NAMES)}", where=str(root),
                              fix=f"put the label CSV beside the images: {EXPECTED}")
    return root, csv


def load(path: Path, *, drain_csv: str | Path | None = None, read_headers: bool = True,
         max_missing_fraction: float = 0.05) -> LoadedDataset:
    """Load SIIM-ACR pneumothorax (see the module docstring for layouts and options).

    Raises:
        DataFormatError: no RLE CSV, no image folder, or ``drain_csv`` not found.
        DataValidationError: malformed RLE or drain rows (naming line and ImageId), too many missing images,
            unreadable DICOM headers.
    """
    root, csv = _resolve(Path(path))
    kind, folder = _image_source(root)
    files = _index_files(folder, ".dcm" if kind == "dicom" else ".png", recursive=kind == "dicom")
    rows = read_rle_csv(csv)
    warnings: list[str] = []
    labels = _labels(rows, warnings)
    ids = _check_missing(list(labels.index), files, folder, max_missing_fraction, warnings)
    positives = {i for i in ids if labels[i] == 1}
    if kind == "dicom":
        patients, sizes = _dicom_headers(ids, files, positives, read_headers)
    else:
        patients, sizes = {}, _png_sizes(ids, files, positives)
    _validate_rles(rows, sizes, csv)
    table = pd.DataFrame({
        "image_id": pd.Series(ids, dtype=str),
        "label": pd.Series([int(labels[i]) for i in ids], dtype=int),
        "split": pd.Series([None] * len(ids), dtype=object),
        "group_id": pd.Series([patients.get(i, i) for i in ids], dtype=str),
        "path": pd.Series([str(files[i]) for i in ids], dtype=str),
    })
    drains = _find_drain_csv(root, drain_csv)
    if drains is not None:
        _join_drains(table, drains, warnings)
    source = {"labels": csv.name, "images": folder.name, "image_format": kind, "n_rle_rows": len(rows),
              "n_image_files": len(files), "drain_csv": str(drains) if drains is not None else None,
              "modality": "chest_xray", "splits_given": False,
              "group_column": "PatientID" if patients else None}
    return LoadedDataset(format="siim_acr", root=root, task_type="binary_classification",
                         classes=list(CLASSES), table=table, read_image=_reader(kind, table["path"].tolist()),
                         metadata_columns=["chest_drain"] if drains is not None else [], warnings=warnings,
                         source=source)


register_format(DatasetFormat(name="siim_acr", detect=detect, load=load, expected=EXPECTED, priority=10))
