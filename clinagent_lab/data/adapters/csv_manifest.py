"""A CSV manifest: one row an image, with its path, label and optional split, group and metadata.

Layout: a folder with ``manifest.csv`` (or a path to any ``.csv`` file). Columns, matched case-insensitively:

- image path (``image``, ``path``, ``file``, ``filename``, ``image_path``), relative to the CSV's folder or
  absolute;
- label (``label``, ``target``, ``class``, ``diagnosis``), strings or integers; classes are sorted
  (integers numerically);
- optional ``split`` (train/val/test and common synonyms);
- optional group (``patient_id``, ``patient``, ``subject_id``, ``group``, ``lesion_id``);
- any other column is metadata (``sex``, ``age``, ``chest_drain``...) and goes to the shortcut audit.

``image_id`` is the manifest's own ``image_id`` column when it has one, else the image path exactly as the
manifest writes it (``images/test_00000.png``), so predictions join back to the manifest.

Rows whose image file is missing: a few (at most 2% and at most 20) are skipped with a warning; more stop
the load with the count and the first examples.
"""

from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import DataFormatError, DataValidationError
from ..base import REQUIRED_COLUMNS, LoadedDataset
from ..formats import DatasetFormat, register_format
from ..images import read_image_file
from ..listing import FileListing
from ._common import normalise_split_column, order_classes

__all__ = ["IMAGE_COLUMNS", "LABEL_COLUMNS", "GROUP_COLUMNS", "SPLIT_COLUMNS", "MANIFEST_NAME", "detect",
           "load", "find_csv"]

MANIFEST_NAME = "manifest.csv"
IMAGE_COLUMNS = ("image", "path", "file", "filename", "image_path")
LABEL_COLUMNS = ("label", "target", "class", "diagnosis")
SPLIT_COLUMNS = ("split",)
GROUP_COLUMNS = ("patient_id", "patient", "subject_id", "group", "lesion_id")
MAX_MISSING_FRACTION = 0.02
MAX_MISSING_COUNT = 20


def find_csv(path: Path) -> Path | None:
    """The manifest at ``path``: a ``.csv`` file itself, or ``manifest.csv`` inside a folder."""
    if path.is_file():
        return path if path.suffix.lower() == ".csv" else None
    candidate = path / MANIFEST_NAME
    return candidate if candidate.is_file() else None


def detect(path: Path) -> bool:
    return find_csv(Path(path)) is not None


def _pick(columns: list[str], accepted: tuple[str, ...], explicit: str | None, role: str,
          csv_path: Path, required: bool) -> str | None:
    if explicit is not None:
        if explicit not in columns:
            raise DataValidationError(f"the {role} column '{explicit}' is not in the CSV",
                                      where=str(csv_path),
                                      fix=f"use one of the columns found: {', '.join(columns)}")
        return explicit
    lowered = {c.strip().lower(): c for c in columns}
    for name in accepted:
        if name in lowered:
            return lowered[name]
    if required:
        raise DataValidationError(
            f"no {role} column in the manifest; columns found: {', '.join(columns) or '(none)'}",
            where=str(csv_path),
            fix=f"name the {role} column one of: {', '.join(accepted)} (or pass {role}_column=...)")
    return None


def _read_csv(csv_path: Path) -> pd.DataFrame:
    try:
        frame = pd.read_csv(csv_path, skipinitialspace=True)
    except pd.errors.EmptyDataError:
        raise DataValidationError("the manifest CSV is empty", where=str(csv_path),
                                  fix="write a header row and one row per image") from None
    except (pd.errors.ParserError, UnicodeDecodeError, csv.Error) as exc:
        raise DataValidationError(f"the manifest CSV cannot be parsed: {exc}", where=str(csv_path),
                                  fix="save it as a comma-separated UTF-8 file") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise DataValidationError("the manifest CSV has a header but no rows", where=str(csv_path),
                                  fix="add one row per image")
    return frame


def _label_strings(values: pd.Series, csv_path: Path, column: str) -> pd.Series:
    missing = values.isna() | (values.astype(str).str.strip() == "")
    if missing.any():
        raise DataValidationError(
            f"{int(missing.sum())} rows have no label",
            where=f"{csv_path}, column '{column}', "
                  f"CSV lines {[int(i) + 2 for i in values.index[missing][:5]]}",
            fix="give every row a label, or remove unlabelled rows")
    if pd.api.types.is_numeric_dtype(values) and np.all(np.mod(values.to_numpy(dtype=float), 1) == 0):
        return values.astype(np.int64).astype(str)
    return values.astype(str).str.strip()


def _resolve_paths(values: pd.Series, base: Path) -> list[Path]:
    out = []
    for v in values.astype(str).str.strip():
        p = Path(v).expanduser()
        out.append(p if p.is_absolute() else base / p)
    return out


def _drop_missing_files(frame: pd.DataFrame, paths: list[Path], csv_path: Path, column: str,
                        notes: list[str], files: FileListing) -> tuple[pd.DataFrame, list[Path]]:
    exists = np.array([st is not None for st in files.stats(paths)], dtype=bool)
    n_missing = int((~exists).sum())
    if n_missing == 0:
        return frame, paths
    examples = [f"line {int(i) + 2}: {frame.loc[i, column]}" for i in frame.index[~exists][:5]]
    if n_missing > MAX_MISSING_COUNT or n_missing > MAX_MISSING_FRACTION * len(frame):
        raise DataValidationError(
            f"{n_missing} of {len(frame)} rows point at image files that do not exist "
            f"(e.g. {'; '.join(examples)})",
            where=f"{csv_path}, column '{column}' (paths are relative to {csv_path.parent})",
            fix="fix the paths or remove those rows")
    msg = (f"skipped {n_missing} manifest rows whose image file is missing ({'; '.join(examples)})")
    warnings.warn(msg, stacklevel=3)
    notes.append(msg)
    keep = frame.index[exists]
    return frame.loc[keep], [p for p, ok in zip(paths, exists) if ok]


def _image_ids(frame: pd.DataFrame, paths: list[Path], csv_path: Path, path_column: str,
               files: FileListing) -> list[str]:
    """The manifest's own ``image_id`` column, else the image path exactly as the manifest writes it, so that
    predictions join back to the clinician's table. Two rows naming one file (``a.png`` and ``./a.png``, a
    link) are told by the file's stat, already taken, not by resolving every path again."""
    if "image_id" in frame.columns and path_column != "image_id":
        ids = frame["image_id"].astype(str).str.strip()
        dup = ids[ids.duplicated()]
        if len(dup):
            raise DataValidationError(f"image_id values repeat: {sorted(set(dup))[:5]}", where=str(csv_path),
                                      fix="give every row a unique image_id (or drop the column)")
        return ids.tolist()
    dup = pd.Series([tuple(st) if st else None for st in files.stats(paths)], dtype=object).duplicated()
    if dup.any():
        lines = [int(frame.index[i]) + 2 for i in np.flatnonzero(dup.to_numpy())[:5]]
        raise DataValidationError(f"{int(dup.sum())} rows repeat an image path already listed",
                                  where=f"{csv_path}, CSV lines {lines}", fix="list each image once")
    return frame[path_column].astype(str).str.strip().tolist()  # the path as the manifest writes it


def load(path: Path, *, image_column: str | None = None, label_column: str | None = None,
         split_column: str | None = None, group_column: str | None = None,
         classes: list[str] | None = None) -> LoadedDataset:
    """Load a CSV manifest (see the module docstring for the layout).

    Args:
        path: the folder holding ``manifest.csv`` or the CSV file.
        image_column / label_column / split_column / group_column: override the automatic column choice.
        classes: class order to use (every label must be one of them); default sorted labels.
    """
    csv_path = find_csv(Path(path))
    if csv_path is None:
        raise DataFormatError(f"no CSV manifest at {path}", where=str(path), fix=EXPECTED)
    frame = _read_csv(csv_path)
    columns = list(frame.columns)
    img_col = _pick(columns, IMAGE_COLUMNS, image_column, "image", csv_path, required=True)
    lab_col = _pick(columns, LABEL_COLUMNS, label_column, "label", csv_path, required=True)
    split_col = _pick(columns, SPLIT_COLUMNS, split_column, "split", csv_path, required=False)
    grp_col = _pick(columns, GROUP_COLUMNS, group_column, "group", csv_path, required=False)
    notes: list[str] = []
    bad_path = frame[img_col].isna() | (frame[img_col].astype(str).str.strip() == "")
    if bad_path.any():
        raise DataValidationError(f"{int(bad_path.sum())} rows have no image path",
                                  where=f"{csv_path}, column '{img_col}', CSV lines "
                                  f"{[int(i) + 2 for i in frame.index[bad_path][:5]]}",
                                  fix="give every row an image path")
    paths = _resolve_paths(frame[img_col], csv_path.parent)
    files = FileListing()  # the stat of each image, kept for validation, leakage digests and the cache key
    frame, paths = _drop_missing_files(frame, paths, csv_path, img_col, notes, files)
    label_str = _label_strings(frame[lab_col], csv_path, lab_col)
    names = list(classes) if classes is not None else order_classes(label_str.tolist())
    unknown = sorted(set(label_str) - set(names))
    if unknown:
        raise DataValidationError(f"labels {unknown[:5]} are not in the given classes {names}",
                                  where=f"{csv_path}, column '{lab_col}'",
                                  fix="add them to classes or fix rows")
    if split_col is not None:
        splits, splits_given = normalise_split_column(frame[split_col], f"{csv_path}, column '{split_col}'")
    else:
        splits, splits_given = pd.Series([None] * len(frame), index=frame.index, dtype=object), False
    ids = _image_ids(frame, paths, csv_path, img_col, files)
    if grp_col is not None:
        groups = frame[grp_col].astype(str).str.strip().where(frame[grp_col].notna(), None)
        group_ids = [g if g not in (None, "", "nan") else i for g, i in zip(groups, ids)]
    else:
        group_ids = list(ids)
    index_of = {name: k for k, name in enumerate(names)}
    table = pd.DataFrame({
        "image_id": ids,
        "label": np.array([index_of[s] for s in label_str], dtype=np.int64),
        "split": splits.to_numpy(dtype=object),
        "group_id": group_ids,
        "path": [str(p) for p in paths],
    })
    consumed = {img_col, lab_col, split_col, grp_col, "image_id"}
    metadata = []
    for col in columns:
        if col in consumed:
            continue
        target = col if col not in REQUIRED_COLUMNS else f"{col}_meta"
        table[target] = frame[col].to_numpy()
        metadata.append(target)
    path_list = table["path"].tolist()

    def read_image(i: int) -> np.ndarray:
        return read_image_file(path_list[i])

    return LoadedDataset(
        format="csv_manifest", root=csv_path.parent,
        task_type="binary_classification" if len(names) == 2 else "multiclass_classification",
        classes=names, table=table, read_image=read_image, metadata_columns=metadata, warnings=notes,
        files=files,
        source={"file": str(csv_path), "rows": len(table), "columns": {"image": img_col, "label": lab_col,
                "split": split_col, "group": grp_col}, "splits_given": splits_given, "group_column": grp_col})


EXPECTED = ("a folder with manifest.csv (or a .csv file) with an image path column "
            f"({'/'.join(IMAGE_COLUMNS)}) and a label column ({'/'.join(LABEL_COLUMNS)}), optional split and "
            f"group ({'/'.join(GROUP_COLUMNS)}) columns")

FORMAT = register_format(DatasetFormat(name="csv_manifest", detect=detect, load=load, expected=EXPECTED,
                                       priority=2))
