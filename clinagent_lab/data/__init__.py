"""Data layer: format adapters, validation, splits, fingerprint, synthetic data, transforms, datamodule.

Importing this package is light (no torch): names are resolved on first use.

Example:
    >>> from clinagent_lab import data
    >>> "medmnist" in data.list_formats()
    True
"""

from __future__ import annotations

import importlib
from typing import Any

from .formats import FORMATS, _ensure_builtin_formats
from .synth import generate

__all__ = [
    "LoadedDataset",
    "DatasetFingerprint",
    "ColumnAssociation",
    "detect_format",
    "load_dataset",
    "list_formats",
    "check_table",
    "check_images",
    "check_labels",
    "validate_dataset",
    "assign_splits",
    "check_leakage",
    "remove_cross_split_duplicates",
    "split_table",
    "apply_split_table",
    "compute_fingerprint",
    "write_fingerprint",
    "read_fingerprint",
    "generate_synthetic",
    "build_transforms",
    "normalise_images",
    "build_sampler",
    "ImageDataModule",
]

_LAZY = {
    "LoadedDataset": ".base",
    "DatasetFingerprint": ".base",
    "ColumnAssociation": ".base",
    "detect_format": ".formats",
    "load_dataset": ".formats",
    "check_table": ".validate",
    "check_images": ".validate",
    "check_labels": ".validate",
    "validate_dataset": ".validate",
    "assign_splits": ".splits",
    "check_leakage": ".splits",
    "remove_cross_split_duplicates": ".splits",
    "split_table": ".splits",
    "apply_split_table": ".splits",
    "compute_fingerprint": ".fingerprint",
    "write_fingerprint": ".fingerprint",
    "read_fingerprint": ".fingerprint",
    "build_transforms": ".transforms",
    "normalise_images": ".transforms",
    "build_sampler": ".samplers",
    "ImageDataModule": ".datamodule",
}


def list_formats() -> list[str]:
    """Names of the registered dataset formats."""
    _ensure_builtin_formats()
    return FORMATS.names()


def generate_synthetic(kind: str, out_dir: Any, **options: Any) -> Any:
    """Write a synthetic dataset (see :mod:`clinagent_lab.data.synth`) and return its path."""
    return generate(kind, out_dir, **options)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
