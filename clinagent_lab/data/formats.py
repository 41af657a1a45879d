"""Registry of dataset formats and auto-detection.

An adapter is registered with :func:`register_format` and provides two callables:

- ``detect(path) -> bool``: cheap check of the on-disk layout (file names, keys, headers; no pixel reads);
- ``load(path, **options) -> LoadedDataset``: read the table (and lazily the pixels).

``expected`` is a one-line description of the layout, shown when nothing matches.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ..errors import DataFormatError
from ..registry import Registry
from .base import LoadedDataset

__all__ = ["DatasetFormat", "FORMATS", "register_format", "detect_format", "load_dataset"]


@dataclass(frozen=True)
class DatasetFormat:
    name: str
    detect: Callable[[Path], bool]
    load: Callable[..., LoadedDataset]
    expected: str
    priority: int = 0
    """Higher is tried first (specific layouts before generic ones such as a CSV manifest)."""


FORMATS: Registry[DatasetFormat] = Registry("dataset format")


def register_format(fmt: DatasetFormat) -> DatasetFormat:
    FORMATS.register(fmt.name, fmt)
    return fmt


def _ensure_builtin_formats() -> None:
    """Load the built-in adapters, which register themselves (plugin discovery by module name: they import this
    module to register, so this module cannot import them at its top)."""
    importlib.import_module(f"{__package__}.adapters")


def detect_format(path: str | Path) -> str:
    """Return the name of the first registered format whose layout matches ``path``."""
    _ensure_builtin_formats()
    p = Path(path)
    if not p.exists():
        raise DataFormatError(f"data path does not exist: {p}", fix="check the path (relative paths are "
                              "resolved from the current folder)")
    ordered = sorted((FORMATS.get(n) for n in FORMATS.names()), key=lambda f: -f.priority)
    for fmt in ordered:
        if fmt.detect(p):
            return fmt.name
    expected = "; ".join(f"{f.name}: {f.expected}" for f in ordered)
    raise DataFormatError(f"no known dataset format matches {p}", where=str(p),
                          fix=f"arrange the data in one of the known layouts ({expected}) or pass --format")


def load_dataset(path: str | Path, format: str | None = None, **options: Any) -> LoadedDataset:
    """Load ``path`` with the named format, or the auto-detected one."""
    _ensure_builtin_formats()
    p = Path(path)
    if not p.exists():
        raise DataFormatError(f"data path does not exist: {p}", fix="check the path")
    name = format or detect_format(p)
    return FORMATS.get(name).load(p, **options)
