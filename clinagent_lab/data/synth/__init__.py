"""Synthetic datasets written in real on-disk formats, for demos, tests and benchmarks.

Each generator is registered by name in :data:`SYNTH_KINDS` and has the signature
``generate(out_dir: Path, *, seed: int = 0, n: int | None = None, **options) -> Path`` returning the path to
pass as ``--data``. ``clinagent synth KIND --out DIR`` calls it.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any, Callable

from ...registry import Registry

__all__ = ["SYNTH_KINDS", "register_synth", "generate"]

SYNTH_KINDS: Registry[Callable[..., Path]] = Registry("synthetic dataset kind")


def register_synth(name: str):
    return SYNTH_KINDS.register(name)


def _ensure_builtin() -> None:
    for module in ("classification", "seed_formats"):
        try:
            importlib.import_module(f"{__name__}.{module}")
        except ModuleNotFoundError as exc:  # pragma: no cover - partially installed checkout
            if exc.name != f"{__name__}.{module}":
                raise


def generate(kind: str, out_dir: str | Path, **options: Any) -> Path:
    _ensure_builtin()
    return SYNTH_KINDS.get(kind)(Path(out_dir), **options)
