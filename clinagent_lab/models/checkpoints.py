"""Loading saved weights into a module that already has the right architecture."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

__all__ = ["load_weights"]


def load_weights(module: Any, path: str | Path) -> None:
    """Load a Lightning checkpoint (its ``state_dict``) or a bare state dict from ``path`` into ``module``."""
    state = torch.load(str(path), map_location="cpu", weights_only=False)
    module.load_state_dict(state["state_dict"] if "state_dict" in state else state)
