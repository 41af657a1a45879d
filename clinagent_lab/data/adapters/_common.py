"""Small helpers the generic adapters share: split names, image ids, table assembly."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pandas as pd

from ...errors import DataValidationError

__all__ = ["SPLIT_SYNONYMS", "SPLITS", "normalise_split", "normalise_split_column", "image_ids_from_paths",
           "order_classes"]

SPLITS = ("train", "val", "test")

SPLIT_SYNONYMS = {
    "train": "train", "training": "train", "tr": "train",
    "val": "val", "valid": "val", "validation": "val", "dev": "val", "tune": "val",
    "test": "test", "testing": "test", "holdout": "test", "hold-out": "test", "ts": "test",
}


def normalise_split(value: object) -> str | None:
    """Map a split name (any case, common synonyms) to ``train``/``val``/``test``; None when unknown."""
    return SPLIT_SYNONYMS.get(str(value).strip().lower())


def normalise_split_column(values: pd.Series, where: str) -> tuple[pd.Series, bool]:
    """Normalise a split column. Returns ``(splits, given)``; an all-empty column means "no split given".

    Raises:
        DataValidationError: unknown split names, or a split missing on some rows but not all.
    """
    present = values.notna() & (values.astype(str).str.strip() != "")
    if not present.any():
        return pd.Series([None] * len(values), index=values.index, dtype=object), False
    if not present.all():
        rows = [int(i) + 2 for i in values.index[~present][:5]]
        raise DataValidationError(
            f"the split column is empty on {int((~present).sum())} of {len(values)} rows",
            where=f"{where}, CSV lines {rows}",
            fix="fill the split (train/val/test) on every row, or leave the whole column empty to let "
                "clinagent make patient-grouped splits")
    mapped = values.map(normalise_split)
    bad = values[mapped.isna()]
    if len(bad):
        examples = sorted({str(v) for v in bad})[:5]
        raise DataValidationError(
            f"unknown split value(s) {examples} on {len(bad)} rows",
            where=f"{where}, CSV lines {[int(i) + 2 for i in bad.index[:5]]}",
            fix=f"use one of train/val/test (accepted synonyms: {', '.join(sorted(SPLIT_SYNONYMS))})")
    return mapped.astype(object), True


def image_ids_from_paths(paths: list[Path], root: Path) -> list[str]:
    """File stems when unique, else paths relative to ``root`` without the suffix."""
    stems = [p.stem for p in paths]
    if len(set(stems)) == len(stems):
        return stems
    out = []
    for p in paths:
        try:
            rel = p.relative_to(root)
        except ValueError:
            rel = p
        out.append(rel.with_suffix("").as_posix())
    return out


def order_classes(values: list[object]) -> list[str]:
    """Class names sorted: numerically when every label is an integer, else alphabetically."""
    unique = sorted({str(v).strip() for v in values})
    try:
        return sorted(unique, key=lambda s: int(float(s)))
    except ValueError:
        return unique


def child_with(path: Path, has_marker: Callable[[Path], bool], limit: int = 200) -> Path | None:
    """The first visible sub-folder of ``path`` (among its first ``limit`` entries) for which ``has_marker``."""
    with os.scandir(path) as it:
        for i, entry in enumerate(it):
            if i >= limit:
                break
            if entry.is_dir() and not entry.name.startswith(".") and has_marker(Path(entry.path)):
                return Path(entry.path)
    return None
