"""Small helpers shared by the evaluation modules: JSON-safe numbers and input checks."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..errors import DataValidationError

__all__ = ["fnum", "jsonable", "as_1d", "as_binary_labels"]


def fnum(value: Any) -> float | None:
    """A Python float, or None for None / NaN / infinity (so the result stays valid JSON)."""
    if value is None:
        return None
    out = float(value)
    return out if math.isfinite(out) else None


def jsonable(value: Any) -> Any:
    """Recursively turn numpy scalars and arrays into Python values; NaN and infinity become None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return [jsonable(v) for v in value.tolist()]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return fnum(value)
    return value


def as_1d(values: Any, name: str, *, dtype: Any = None) -> np.ndarray:
    """``values`` as a 1-D numpy array, or a DataValidationError naming the argument."""
    arr = np.asarray(values, dtype=dtype)
    if arr.ndim != 1:
        raise DataValidationError(f"{name} must be one-dimensional, got shape {arr.shape}",
                                  where=f"argument '{name}'", fix="pass one value per image")
    return arr


def as_binary_labels(y: Any, name: str = "y", positive_label: Any = 1) -> np.ndarray:
    """Labels as a boolean array (True where ``y == positive_label``)."""
    return as_1d(y, name) == positive_label


def check_same_length(**arrays: np.ndarray) -> int:
    """Raise when the arrays differ in length; return the common length."""
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise DataValidationError(f"arguments differ in length: {lengths}", where="evaluation inputs",
                                  fix="pass one label, one score (and one group value) per image")
    return next(iter(lengths.values()), 0)
