"""A folder of class folders: ``root/<class>/*.png`` or ``root/{train,val,test}/<class>/*.png``.

Class names are the folder names (sorted; integers numerically). Extensions: png, jpg, jpeg, bmp, tif, tiff.
There is no patient id in this layout, so every image is its own group.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import DataFormatError, DataValidationError
from ..base import LoadedDataset
from ..formats import DatasetFormat, register_format
from ..images import is_image_file, read_image_file
from ._common import image_ids_from_paths, normalise_split, order_classes

__all__ = ["detect", "load"]


def _subdirs(path: Path) -> list[Path]:
    return sorted(Path(e.path) for e in os.scandir(path) if e.is_dir() and not e.name.startswith("."))


def _has_image(folder: Path) -> bool:
    with os.scandir(folder) as it:
        return any(e.is_file() and is_image_file(Path(e.name)) for e in it)


def _split_dirs(root: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for d in _subdirs(root):
        split = normalise_split(d.name)
        if split is not None:
            out[split] = d
    return out


def _class_dirs(folder: Path) -> list[Path]:
    return [d for d in _subdirs(folder) if _has_image(d)]


def detect(path: Path) -> bool:
    path = Path(path)
    if not path.is_dir():
        return False
    splits = _split_dirs(path)
    if splits:
        return any(len(_class_dirs(d)) >= 1 for d in splits.values()) and \
            len({c.name for d in splits.values() for c in _class_dirs(d)}) >= 2
    return len(_class_dirs(path)) >= 2


def _collect(folder: Path, split: str | None) -> list[tuple[Path, str, str | None]]:
    rows = []
    for class_dir in _class_dirs(folder):
        with os.scandir(class_dir) as it:  # the entry's type comes with the listing: no stat per file
            files = sorted(Path(e.path) for e in it if is_image_file(Path(e.name)) and e.is_file())
        rows.extend((f, class_dir.name, split) for f in files)
    return rows


def load(path: Path, *, classes: list[str] | None = None) -> LoadedDataset:
    """Load a class-folder tree.

    Args:
        path: the root folder.
        classes: class order to use (default: folder names sorted).
    """
    root = Path(path)
    if not detect(root):
        raise DataFormatError(f"no class folders with images at {root}", where=str(root), fix=EXPECTED)
    splits = _split_dirs(root)
    if splits:
        other = [d.name for d in _subdirs(root) if normalise_split(d.name) is None and _class_dirs(d)]
        if other:
            raise DataValidationError(
                f"folders {other[:5]} sit beside split folders {sorted(splits)}", where=str(root),
                fix="put every class folder inside train/, val/ or test/, or drop the split folders")
        rows = [r for split, d in sorted(splits.items()) for r in _collect(d, split)]
    else:
        rows = _collect(root, None)
    names = list(classes) if classes is not None else order_classes([r[1] for r in rows])
    unknown = sorted({r[1] for r in rows} - set(names))
    if unknown:
        raise DataValidationError(f"class folders {unknown} are not in the given classes {names}",
                                  where=str(root), fix="add them to classes or move those folders")
    paths = [r[0] for r in rows]
    ids = image_ids_from_paths(paths, root)
    index_of = {n: k for k, n in enumerate(names)}
    table = pd.DataFrame({
        "image_id": ids,
        "label": np.array([index_of[r[1]] for r in rows], dtype=np.int64),
        "split": pd.Series([r[2] for r in rows], dtype=object),
        "group_id": ids,
        "path": [str(p) for p in paths],
    })
    path_list = table["path"].tolist()

    def read_image(i: int) -> np.ndarray:
        return read_image_file(path_list[i])

    return LoadedDataset(
        format="image_folder", root=root,
        task_type="binary_classification" if len(names) == 2 else "multiclass_classification",
        classes=names, table=table, read_image=read_image,
        source={"folder": str(root), "files": len(table), "splits_given": bool(splits), "group_column": None})


EXPECTED = "a folder of class folders (root/<class>/*.png|jpg|bmp|tif), optionally inside train/, val/, test/"

FORMAT = register_format(DatasetFormat(name="image_folder", detect=detect, load=load, expected=EXPECTED,
                                       priority=1))
