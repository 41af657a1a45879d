"""Content checks after loading: readable images, usable labels, a sane table.

Each check returns the (possibly reduced) dataset or raises :class:`~clinagent_lab.errors.DataValidationError`
saying which file, class or row is at fault.
"""

from __future__ import annotations

import dataclasses
import os
import warnings

import numpy as np

from ..errors import DataValidationError
from .base import REQUIRED_COLUMNS, LoadedDataset
from .dicom import is_dicom_file
from .memo import FileMemo, memo_path

__all__ = ["check_table", "check_images", "check_labels", "validate_dataset", "drop_rows"]

CLASSIFICATION_TASKS = ("binary_classification", "multiclass_classification")


def drop_rows(ds: LoadedDataset, rows: np.ndarray | list[int], note: str | None = None) -> LoadedDataset:
    """A copy of ``ds`` without table rows ``rows`` (positions); ``read_image`` is re-indexed."""
    drop = np.zeros(len(ds.table), dtype=bool)
    drop[np.asarray(rows, dtype=int)] = True
    keep = np.flatnonzero(~drop)
    parent = ds.read_image

    def read_image(i: int) -> np.ndarray:
        return parent(int(keep[i]))

    table = ds.table.iloc[keep].reset_index(drop=True)
    boxes = ds.boxes
    if boxes is not None:
        kept_ids = set(table["image_id"])
        boxes = {k: v for k, v in boxes.items() if k in kept_ids}
    return dataclasses.replace(ds, table=table, read_image=read_image, boxes=boxes,
                               warnings=[*ds.warnings, *([note] if note else [])])


def check_table(ds: LoadedDataset) -> LoadedDataset:
    """Required columns present, unique image ids, labels within the class range."""
    missing = [c for c in REQUIRED_COLUMNS if c not in ds.table.columns]
    if missing:
        raise DataValidationError(f"the dataset table lacks columns {missing}", where=f"format '{ds.format}'",
                                  fix="the adapter must provide image_id, label, split, group_id and path")
    if len(ds.table) == 0:
        raise DataValidationError("the dataset has no images", where=str(ds.root),
                                  fix="point at a folder with images")
    dup = ds.table["image_id"][ds.table["image_id"].duplicated()]
    if len(dup):
        raise DataValidationError(f"{len(dup)} image ids repeat (e.g. {list(dup.unique()[:5])})",
                                  where=str(ds.root), fix="give every image a unique id")
    if ds.task_type in CLASSIFICATION_TASKS:
        labels = ds.table["label"].to_numpy()
        bad = (labels < 0) | (labels >= len(ds.classes))
        if bad.any():
            ids = ds.table["image_id"][bad].tolist()[:5]
            raise DataValidationError(f"{int(bad.sum())} labels are outside 0..{len(ds.classes) - 1}",
                                      where=f"images {ids}", fix="fix the labels or the class list")
    return ds


def _bad_image_reason(ds: LoadedDataset, i: int, path: object, full_decode: bool) -> str | None:
    try:
        if isinstance(path, str) and path and not full_decode:
            from PIL import Image  # only image files need it

            if is_dicom_file(path):
                import pydicom  # only DICOM data need it

                header = pydicom.dcmread(path, defer_size=1024)  # pixel data stays on disk, unread
                if not any(tag in header for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
                    return "DICOM file has no pixel data"
                return None

            with Image.open(path) as img:
                img.verify()
            return None
        image = ds.read_image(i)
        if image.ndim != 3 or image.shape[0] < 1 or image.shape[1] < 1 or image.shape[2] not in (1, 3):
            return f"unexpected decoded shape {image.shape}"
        return None
    except Exception as exc:  # noqa: BLE001 - any decoder failure means the file is unusable
        return f"{type(exc).__name__}: {exc}"


def check_images(ds: LoadedDataset, max_bad_fraction: float = 0.02, full_decode_below: int = 2000,
                 max_bad_count: int = 20) -> LoadedDataset:
    """Open every image; drop a few unreadable ones with a warning, stop when there are too many.

    Files are checked with PIL's ``verify()`` (header and structure, fast); sets smaller than
    ``full_decode_below`` and in-memory images are fully decoded through ``ds.read_image``.

    Args:
        ds: the dataset.
        max_bad_fraction: above this fraction of unreadable images, raise instead of dropping.
        full_decode_below: fully decode every image when the dataset is smaller than this.
        max_bad_count: above this many unreadable images, raise instead of dropping.

    Returns:
        ``ds`` itself when every image reads, else a copy without the bad rows (and a warning).

    Raises:
        DataValidationError: too many unreadable images; names the first five files and why.
    """
    full = len(ds.table) < full_decode_below
    paths = ds.table["path"].tolist()
    found = ds.files.stats(paths)  # the dataset's one stat pass (data.listing), shared with later steps
    files = [i for i, st in enumerate(found) if st is not None]
    names = [os.path.abspath(paths[i]) for i in files]
    stats = [found[i] for i in files]
    # a file that read well before and has not changed since is not opened again (see data.memo)
    kind = f"readable:{'decoded' if full else 'header'}:{ds.format}"
    with FileMemo(memo_path()) as memo:
        known = {i for i, hit in zip(files, memo.lookup(kind, names, stats)) if hit is not None}
        bad: list[tuple[int, str]] = []
        for i, path in enumerate(paths):
            reason = None if i in known else _bad_image_reason(ds, i, path, full)
            if reason is not None:
                bad.append((i, reason))
        failed = {i for i, _ in bad}
        memo.store(kind, ((n, st, "ok") for i, n, st in zip(files, names, stats)
                          if i not in known and i not in failed))
    if not bad:
        return ds
    examples = "; ".join(f"{paths[i] or ds.table['image_id'].iat[i]} ({why})" for i, why in bad[:5])
    if len(bad) > max_bad_fraction * len(paths) or len(bad) > max_bad_count:
        raise DataValidationError(
            f"{len(bad)} of {len(paths)} images cannot be read: {examples}", where=str(ds.root),
            fix="re-export or remove the broken files")
    note = f"dropped {len(bad)} unreadable image(s): {examples}"
    warnings.warn(note, stacklevel=2)
    return drop_rows(ds, [i for i, _ in bad], note)


def check_labels(ds: LoadedDataset, min_per_class: int = 5) -> LoadedDataset:
    """At least two classes present and ``min_per_class`` images of each (classification tasks only).

    Raises:
        DataValidationError: one class only, or a class with too few images (named, with its count).
    """
    if ds.task_type not in CLASSIFICATION_TASKS:
        return ds
    counts = np.bincount(ds.table["label"].to_numpy(dtype=np.int64), minlength=len(ds.classes))
    present = [ds.classes[k] for k in np.flatnonzero(counts)]
    if len(present) < 2:
        raise DataValidationError(
            f"only one class is present ({present[0] if present else 'none'}); "
            "a classifier needs at least two",
            where=str(ds.root), fix="add images of the other class(es)")
    few = [(ds.classes[k], int(c)) for k, c in enumerate(counts) if c < min_per_class]
    if few:
        listed = ", ".join(f"'{name}': {c}" for name, c in few)
        raise DataValidationError(
            f"too few images for class(es) {listed} (need at least {min_per_class} each)", where=str(ds.root),
            fix="add images of these classes, merge them with a related class, or drop them")
    return ds


def validate_dataset(ds: LoadedDataset, *, max_bad_fraction: float = 0.02,
                     min_per_class: int = 5) -> LoadedDataset:
    """:func:`check_table`, then :func:`check_images`, then :func:`check_labels`."""
    ds = check_table(ds)
    ds = check_images(ds, max_bad_fraction=max_bad_fraction)
    return check_labels(ds, min_per_class=min_per_class)
