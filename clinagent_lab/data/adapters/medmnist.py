"""MedMNIST ``.npz`` files: ``{train,val,test}_{images,labels}`` arrays, the dataset's own split kept.

Images are ``(N, H, W)`` grayscale or ``(N, H, W, 3)`` RGB uint8; labels ``(N, 1)`` or ``(N,)`` class indices.
The arrays are loaded once and kept in memory (MedMNIST files are small), so ``read_image`` is a slice.
A folder holding exactly one such file is accepted too.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from ...errors import DataFormatError, DataValidationError
from ..base import LoadedDataset
from ..formats import DatasetFormat, register_format
from ..images import to_hwc_uint8

__all__ = ["REQUIRED_KEYS", "KNOWN_CLASS_NAMES", "detect", "load", "find_npz", "class_names_for"]

REQUIRED_KEYS = tuple(f"{split}_{kind}" for split in ("train", "val", "test")
                      for kind in ("images", "labels"))

KNOWN_CLASS_NAMES: dict[str, list[str]] = {
    "pneumonia": ["normal", "pneumonia"],
}
"""File-name fragment -> class names, used when the number of classes matches."""


def _npz_keys(path: Path) -> set[str]:
    """Array names in an ``.npz`` from its zip index only (no array is read)."""
    try:
        with zipfile.ZipFile(path) as zf:
            return {n[:-4] if n.endswith(".npy") else n for n in zf.namelist()}
    except (zipfile.BadZipFile, OSError):
        return set()


def _is_medmnist_npz(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() == ".npz" and set(REQUIRED_KEYS) <= _npz_keys(path)


def find_npz(path: Path) -> Path | None:
    """The MedMNIST file at ``path``: the file itself, or the only ``.npz`` in a folder."""
    if path.is_file():
        return path if _is_medmnist_npz(path) else None
    if path.is_dir():
        candidates = sorted(p for p in path.iterdir() if p.suffix.lower() == ".npz")
        if len(candidates) == 1 and _is_medmnist_npz(candidates[0]):
            return candidates[0]
    return None


def detect(path: Path) -> bool:
    return find_npz(Path(path)) is not None


def class_names_for(file_name: str, n_classes: int) -> list[str]:
    """Known names when the file name says which dataset it is, else ``["0", "1", ...]``."""
    lowered = file_name.lower()
    for fragment, names in KNOWN_CLASS_NAMES.items():
        if fragment in lowered and len(names) == n_classes:
            return list(names)
    return [str(i) for i in range(n_classes)]


def _labels(raw: np.ndarray, where: str) -> np.ndarray:
    labels = np.asarray(raw)
    if labels.ndim == 2 and labels.shape[1] == 1:
        labels = labels[:, 0]
    if labels.ndim != 1:
        raise DataValidationError(
            f"labels have shape {labels.shape}; only single-label classification is supported",
            where=where, fix="use a MedMNIST subset with one label per image (shape (N,) or (N, 1))")
    return labels.astype(np.int64)


def _check_images(images: np.ndarray, n_labels: int, where: str) -> None:
    if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[3] not in (1, 3)):
        raise DataValidationError(f"images have shape {images.shape}", where=where,
                                  fix="store images as (N, H, W) grayscale or (N, H, W, 3) RGB uint8")
    if len(images) != n_labels:
        raise DataValidationError(f"{len(images)} images but {n_labels} labels", where=where,
                                  fix="store one label per image")


def load(path: Path, *, classes: list[str] | None = None) -> LoadedDataset:
    """Load a MedMNIST ``.npz``.

    Args:
        path: the ``.npz`` file or a folder containing exactly one.
        classes: class names overriding the automatic ones (length must match the label range).
    """
    npz = find_npz(Path(path))
    if npz is None:
        raise DataFormatError(f"no MedMNIST .npz found at {path}", where=str(path), fix=EXPECTED)
    arrays: dict[str, np.ndarray] = {}
    with np.load(npz, allow_pickle=False) as data:
        for key in REQUIRED_KEYS:
            arrays[key] = np.asarray(data[key])
    frames, offsets, images_by_split = [], [], {}
    for split in ("train", "val", "test"):
        where = f"{npz.name}, arrays '{split}_images'/'{split}_labels'"
        labels = _labels(arrays[f"{split}_labels"], where)
        images = arrays[f"{split}_images"]
        _check_images(images, len(labels), where)
        images_by_split[split] = images
        frames.append(pd.DataFrame({"image_id": [f"{split}_{i}" for i in range(len(labels))],
                                    "label": labels, "split": split}))
        offsets.append((split, len(labels)))
    table = pd.concat(frames, ignore_index=True)
    table["group_id"] = table["image_id"]
    table["path"] = None
    table["split"] = table["split"].astype(object)
    n_classes = int(table["label"].max()) + 1 if len(table) else 0
    if table["label"].min() < 0:
        raise DataValidationError("negative class labels", where=npz.name, fix="use labels 0..K-1")
    if classes is not None and len(classes) < n_classes:
        raise DataValidationError(f"{len(classes)} class names given for labels 0..{n_classes - 1}",
                                  where=npz.name, fix="pass one name per class index")
    names = list(classes) if classes is not None else class_names_for(npz.name, n_classes)
    split_of = np.repeat([s for s, _ in offsets], [n for _, n in offsets])
    local = np.concatenate([np.arange(n) for _, n in offsets]) if len(table) else np.zeros(0, int)

    def read_image(i: int) -> np.ndarray:
        return to_hwc_uint8(images_by_split[split_of[i]][local[i]])

    return LoadedDataset(
        format="medmnist", root=npz.parent, task_type="binary_classification" if len(names) == 2
        else "multiclass_classification", classes=names, table=table, read_image=read_image,
        source={"file": str(npz), "counts": {s: n for s, n in offsets}, "splits_given": True,
                "group_column": None})


EXPECTED = ("a MedMNIST .npz (or a folder with exactly one) holding train_images, train_labels, val_images, "
            "val_labels, test_images, test_labels")

FORMAT = register_format(DatasetFormat(name="medmnist", detect=detect, load=load, expected=EXPECTED,
                                       priority=50))
