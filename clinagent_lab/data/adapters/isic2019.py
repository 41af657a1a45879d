"""ISIC 2019 skin-lesion classification, in the layout of the challenge download.

::

    <root>/
      ISIC_2019_Training_Input/         ISIC_0000000.jpg, ... (ATTRIBUTION.txt, LICENSE.txt are ignored)
      ISIC_2019_Training_GroundTruth.csv   image,MEL,NV,BCC,AK,BKL,DF,VASC,SCC,UNK  (one-hot, "1.0"/"0.0")
      ISIC_2019_Training_Metadata.csv      image,age_approx,anatom_site_general,lesion_id,sex  (optional)

``path`` may be ``<root>``, its parent (one level up) or the images folder itself.

Classes are the 8 diagnostic columns in file order (MEL, NV, BCC, AK, BKL, DF, VASC, SCC). The UNK column
has no training image and is dropped (with a warning); a row marking UNK, or marking no class or several,
is an error. ``group_id`` is the ``lesion_id`` (several images of one lesion stay in one split) or the image
id where the metadata has none. Metadata columns: ``age_approx``, ``anatom_site_general``, ``sex``. There is
no split: the engine splits grouped by lesion.

Options:
    subtask: ``"melanoma_vs_nevus"`` keeps only MEL and NV images, classes ``["NV", "MEL"]`` (MEL is the
        positive class, index 1).
    max_missing_fraction: ground-truth rows whose image file is missing are skipped with a warning when
        they are at most this fraction of the rows (default 0.05); more is an error.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import DataFormatError, DataValidationError, UnknownNameError
from ..base import LoadedDataset
from ..formats import DatasetFormat, register_format
from ..images import read_image_file, to_channels
from ._common import child_with

__all__ = ["GT_CSV", "METADATA_CSV", "IMAGES_DIR", "GT_COLUMNS", "CLASSES", "METADATA_COLUMNS", "SUBTASKS",
           "find_root", "detect", "load"]

GT_CSV = "ISIC_2019_Training_GroundTruth.csv"
METADATA_CSV = "ISIC_2019_Training_Metadata.csv"
IMAGES_DIR = "ISIC_2019_Training_Input"
GT_COLUMNS = ("image", "MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
CLASSES = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC")
UNKNOWN_CLASS = "UNK"
METADATA_COLUMNS = ("age_approx", "anatom_site_general", "sex")
SUBTASKS: dict[str, tuple[str, ...]] = {"melanoma_vs_nevus": ("NV", "MEL")}
"""Subtask name -> classes kept, in label order (the last one is the positive class)."""

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
EXPECTED = f"{IMAGES_DIR}/ISIC_*.jpg + {GT_CSV} (+ optional {METADATA_CSV})"
_EXAMPLES = 5


def _has_marker(folder: Path) -> bool:
    return (folder / GT_CSV).is_file() or (folder / IMAGES_DIR).is_dir()


def find_root(path: str | Path) -> Path | None:
    """The folder holding the ISIC files: ``path``, its parent (images folder or ground-truth CSV given) or
    a child folder."""
    path = Path(path)
    if path.is_file():
        return path.parent if path.name == GT_CSV else None
    if not path.is_dir():
        return None
    if _has_marker(path):
        return path
    if path.name == IMAGES_DIR and (path.parent / GT_CSV).is_file():
        return path.parent
    return child_with(path, _has_marker)


def detect(path: Path) -> bool:
    """True when ``path`` (or its parent / one child) has the ISIC ground-truth CSV or images folder."""
    return find_root(path) is not None


def _require_layout(root: Path) -> None:
    missing = [name for name, ok in ((GT_CSV, (root / GT_CSV).is_file()),
                                     (IMAGES_DIR + "/", (root / IMAGES_DIR).is_dir())) if not ok]
    if missing:
        raise DataFormatError(f"ISIC 2019 layout incomplete: missing {', '.join(missing)}", where=str(root),
                              fix=f"put the challenge files side by side: {EXPECTED}")


def _read_csv(path: Path) -> pd.DataFrame:
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DataValidationError(f"cannot parse CSV: {exc}", where=str(path),
                                  fix="check that the file is the CSV of the challenge download") from exc
    table.columns = [str(c).strip() for c in table.columns]
    return table


def _line(index: int) -> int:
    return index + 2  # header is line 1


def _row_where(csv: Path, index: int, image: str) -> str:
    return f"{csv.name} line {_line(index)} (image {image})"


def _check_gt_columns(table: pd.DataFrame, csv: Path) -> None:
    have, want = set(table.columns), set(GT_COLUMNS)
    if have != want:
        parts = []
        if want - have:
            parts.append(f"missing {sorted(want - have)}")
        if have - want:
            parts.append(f"unexpected {sorted(have - want)}")
        raise DataValidationError(f"ground-truth columns do not match ISIC 2019 ({'; '.join(parts)})",
                                  where=f"{csv} header", fix=f"the header must be {','.join(GT_COLUMNS)}")


def _one_hot_matrix(table: pd.DataFrame, csv: Path) -> np.ndarray:
    cols = list(GT_COLUMNS[1:])
    values = table[cols].apply(lambda s: pd.to_numeric(s.str.strip(), errors="coerce")).to_numpy(float)
    bad = ~np.isin(values, (0.0, 1.0))
    if bad.any():
        i, j = (int(v[0]) for v in np.nonzero(bad))
        raise DataValidationError(
            f"value '{table.iloc[i][cols[j]]}' in column {cols[j]} is not 0 or 1 ({int(bad.any(1).sum())} "
            f"rows have such values)", where=_row_where(csv, i, table.iloc[i]["image"]),
            fix="the ground truth is one-hot: write 1.0 in the diagnosis column and 0.0 elsewhere")
    return values


def _check_one_class(values: np.ndarray, table: pd.DataFrame, csv: Path) -> None:
    unk = values[:, GT_COLUMNS.index(UNKNOWN_CLASS) - 1] == 1
    if unk.any():
        i = int(np.flatnonzero(unk)[0])
        raise DataValidationError(
            f"{int(unk.sum())} rows mark UNK, which has no training images in ISIC 2019",
            where=_row_where(csv, i, table.iloc[i]["image"]),
            fix="give these images one of the 8 diagnoses or remove their rows")
    counts = values.sum(axis=1)
    bad = np.flatnonzero(counts != 1)
    if len(bad):
        i = int(bad[0])
        marked = [c for c, v in zip(GT_COLUMNS[1:], values[i]) if v == 1]
        raise DataValidationError(
            f"{len(bad)} rows do not mark exactly one class; the first marks {marked or 'none'}",
            where=_row_where(csv, i, table.iloc[i]["image"]),
            fix="mark exactly one diagnosis per row with 1.0")


def _check_unique_images(table: pd.DataFrame, csv: Path) -> None:
    dup = table["image"].duplicated(keep="first")
    if dup.any():
        i = int(np.flatnonzero(dup.to_numpy())[0])
        raise DataValidationError(f"{int(dup.sum())} images appear twice in the ground truth",
                                  where=_row_where(csv, i, table.iloc[i]["image"]),
                                  fix="keep one row per image")


def read_ground_truth(csv: Path) -> pd.DataFrame:
    """Validated ground truth: columns ``image`` and ``diagnosis`` (one of :data:`CLASSES`), file order.

    Raises:
        DataValidationError: wrong header, a non 0/1 value, a row marking UNK or not exactly one class,
            a duplicated image (each names the CSV line and image).
    """
    table = _read_csv(csv)
    _check_gt_columns(table, csv)
    table["image"] = table["image"].str.strip()
    values = _one_hot_matrix(table, csv)
    _check_one_class(values, table, csv)
    _check_unique_images(table, csv)
    diagnosis = np.array(GT_COLUMNS[1:])[values.argmax(axis=1)]
    return pd.DataFrame({"image": table["image"].to_numpy(), "diagnosis": diagnosis})


def read_metadata(csv: Path) -> pd.DataFrame:
    """The metadata CSV indexed by image: ``age_approx`` (float, NaN when empty), the other columns as
    str or None. Columns absent from the file are absent from the result."""
    table = _read_csv(csv)
    if "image" not in table.columns:
        raise DataValidationError("metadata CSV has no 'image' column", where=f"{csv} header",
                                  fix="the header must be image,age_approx,anatom_site_general,lesion_id,sex")
    table["image"] = table["image"].str.strip()
    table = table.drop_duplicates("image").set_index("image")
    keep = [c for c in (*METADATA_COLUMNS, "lesion_id") if c in table.columns]
    out = pd.DataFrame({c: [v.strip() or None for v in table[c]] for c in keep}, index=table.index,
                       dtype=object)
    if "age_approx" in out.columns:
        out["age_approx"] = pd.to_numeric(out["age_approx"], errors="coerce").astype(float)
    return out


def _index_images(folder: Path) -> dict[str, Path]:
    found: dict[str, Path] = {}
    for p in sorted(folder.rglob("*")):
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith("."):
            found.setdefault(p.stem, p)
    return found


def _examples(ids) -> str:
    ids = list(ids)
    return ", ".join(ids[:_EXAMPLES]) + (", ..." if len(ids) > _EXAMPLES else "")


def _attach_paths(gt: pd.DataFrame, images: dict[str, Path], root: Path, max_missing_fraction: float,
                  warnings: list[str]) -> pd.DataFrame:
    has_file = gt["image"].isin(images.keys())
    missing = gt.loc[~has_file, "image"].tolist()
    if missing:
        msg = (f"{len(missing)} of {len(gt)} ground-truth images have no file in {IMAGES_DIR}/ "
               f"(e.g. {_examples(missing)})")
        if len(missing) > max_missing_fraction * len(gt):
            raise DataValidationError(msg, where=str(root / IMAGES_DIR),
                                      fix="complete the download/unzip of the training images, or raise "
                                          "max_missing_fraction to train on what is there")
        warnings.append(msg + "; these rows were skipped")
    extra = sorted(set(images) - set(gt["image"]))
    if extra:
        warnings.append(f"{len(extra)} image files are not in {GT_CSV} and were ignored "
                        f"(e.g. {_examples(extra)})")
    gt = gt[has_file].reset_index(drop=True)
    gt["path"] = [str(images[i]) for i in gt["image"]]
    return gt


def _join_metadata(gt: pd.DataFrame, meta: pd.DataFrame,
                   warnings: list[str]) -> tuple[pd.DataFrame, list[str]]:
    gt_ids, meta_ids = set(gt["image"]), set(meta.index)
    no_meta = sorted(gt_ids - meta_ids)
    if no_meta:
        warnings.append(f"{len(no_meta)} images have no row in {METADATA_CSV}: {_examples(no_meta)}")
    no_gt = sorted(meta_ids - gt_ids)
    if no_gt:
        warnings.append(f"{len(no_gt)} rows of {METADATA_CSV} name images without ground truth or file "
                        f"(ignored): {_examples(no_gt)}")
    joined = meta.reindex(gt["image"])
    lesion = joined["lesion_id"] if "lesion_id" in joined.columns else pd.Series(None, index=joined.index)
    gt["group_id"] = [str(les) if isinstance(les, str) and les else img
                      for img, les in zip(gt["image"], lesion.tolist())]
    columns = [c for c in METADATA_COLUMNS if c in joined.columns]
    for c in columns:
        gt[c] = joined[c].to_numpy()
    return gt, columns


def _apply_subtask(gt: pd.DataFrame, subtask: str | None,
                   warnings: list[str]) -> tuple[pd.DataFrame, list[str]]:
    if subtask is None:
        return gt, list(CLASSES)
    if subtask not in SUBTASKS:
        raise UnknownNameError("ISIC 2019 subtask", subtask, list(SUBTASKS))
    classes = list(SUBTASKS[subtask])
    kept = gt[gt["diagnosis"].isin(classes)].reset_index(drop=True)
    warnings.append(f"subtask {subtask}: kept {len(kept)} of {len(gt)} images ({' and '.join(classes)}); "
                    f"classes {classes}, positive class {classes[-1]}")
    return kept, classes


def _reader(paths: list[str]):
    def read_image(i: int) -> np.ndarray:
        return to_channels(read_image_file(paths[i]), 3)

    return read_image


def _table(gt: pd.DataFrame, classes: list[str], meta_cols: list[str]) -> pd.DataFrame:
    table = pd.DataFrame({
        "image_id": gt["image"].astype(str),
        "label": gt["diagnosis"].map({c: i for i, c in enumerate(classes)}).astype(int),
        "split": pd.Series([None] * len(gt), dtype=object),
        "group_id": gt["group_id"].astype(str),
        "path": gt["path"].astype(str),
    })
    for c in meta_cols:
        table[c] = gt[c].to_numpy()
    return table


def load(path: Path, *, subtask: str | None = None, max_missing_fraction: float = 0.05) -> LoadedDataset:
    """Load an ISIC 2019 training download (see the module docstring for layout and options).

    Raises:
        DataFormatError: the ground-truth CSV or the images folder is missing.
        DataValidationError: bad ground truth (see :func:`read_ground_truth`) or too many missing images.
        UnknownNameError: unknown ``subtask``.
    """
    root = find_root(path) or Path(path)
    _require_layout(root)
    warnings = [f"column {UNKNOWN_CLASS} dropped from the classes: ISIC 2019 has no training image of it "
                f"(it is the test-time 'unknown' class)"]
    gt = read_ground_truth(root / GT_CSV)
    n_gt = len(gt)
    gt = _attach_paths(gt, _index_images(root / IMAGES_DIR), root, max_missing_fraction, warnings)
    meta_csv = root / METADATA_CSV
    if meta_csv.is_file():
        gt, meta_cols = _join_metadata(gt, read_metadata(meta_csv), warnings)
    else:
        gt["group_id"], meta_cols = gt["image"], []
        warnings.append(f"no {METADATA_CSV}: lesion ids unknown, so images of one lesion may land in "
                        f"different splits; add the metadata file to split by lesion")
    gt, classes = _apply_subtask(gt, subtask, warnings)
    table = _table(gt, classes, meta_cols)
    source = {"ground_truth": GT_CSV, "images": IMAGES_DIR,
              "metadata": METADATA_CSV if meta_csv.is_file() else None, "n_ground_truth_rows": n_gt,
              "n_loaded": len(table), "subtask": subtask, "modality": "dermoscopy", "splits_given": False,
              "group_column": "lesion_id" if (table["group_id"] != table["image_id"]).any() else None}
    task_type = "binary_classification" if len(classes) == 2 else "multiclass_classification"
    return LoadedDataset(format="isic2019", root=root, task_type=task_type, classes=classes, table=table,
                         read_image=_reader(table["path"].tolist()), metadata_columns=meta_cols,
                         warnings=warnings, source=source)


register_format(DatasetFormat(name="isic2019", detect=detect, load=load, expected=EXPECTED, priority=10))
