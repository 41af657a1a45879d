"""Models: backbones, losses, gradient reversal, the classification LightningModule and mitigations.

Importing this package is light (no torch): :mod:`.mitigations` is loaded eagerly, everything else on
first attribute access.
"""

from __future__ import annotations

import importlib
from typing import Any

from .mitigations import MITIGATION_ORDER, MITIGATIONS, Mitigation

__all__ = [
    "MITIGATIONS",
    "MITIGATION_ORDER",
    "Mitigation",
    "MODELS",
    "Backbone",
    "create_backbone",
    "LOSSES",
    "make_loss",
    "GroupDROLoss",
    "FocalLoss",
    "GradientReversal",
    "GradientReversalLayer",
    "dann_lambda",
    "ImageClassifier",
]

_LAZY = {
    "MODELS": "backbones",
    "Backbone": "backbones",
    "create_backbone": "backbones",
    "LOSSES": "losses",
    "make_loss": "losses",
    "GroupDROLoss": "losses",
    "FocalLoss": "losses",
    "GradientReversal": "grl",
    "GradientReversalLayer": "grl",
    "dann_lambda": "grl",
    "ImageClassifier": "classifier",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
