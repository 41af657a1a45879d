"""Training samplers chosen by ``recipe.data.sampler``: random, class-balanced, group-balanced.

- ``class_balanced``: each image weighted by the inverse frequency of its class, so every class is drawn
  equally often in expectation (imbalanced data).
- ``group_balanced``: each image weighted by the inverse frequency of its (label, group) cell, where group is
  the confounder's value code; every cell present gets equal expected mass, so the shortcut (e.g. drain among
  positives) no longer pays off in the training stream.

Both draw with replacement, ``len(labels)`` samples an epoch, from a seeded generator.

Example:
    >>> import numpy as np
    >>> w = sample_weights("class_balanced", np.array([0, 0, 0, 1]))
    >>> [round(float(x), 3) for x in w]
    [0.167, 0.167, 0.167, 0.5]
"""

from __future__ import annotations

import warnings
from typing import Callable

import numpy as np

from ..registry import Registry

__all__ = ["SAMPLER_WEIGHTS", "sample_weights", "build_sampler"]

SAMPLER_WEIGHTS: Registry[Callable[[np.ndarray, np.ndarray | None], np.ndarray | None]] = Registry("sampler")


def _cell_weights(keys: np.ndarray) -> np.ndarray:
    """Weight 1 / (cells x count of the row's cell): each cell sums to 1 / cells."""
    _, inverse, counts = np.unique(keys, axis=0, return_inverse=True, return_counts=True)
    inverse = np.asarray(inverse).reshape(-1)
    return 1.0 / (len(counts) * counts[inverse])


@SAMPLER_WEIGHTS.register("random")
def _random(labels: np.ndarray, groups: np.ndarray | None) -> None:
    return None


@SAMPLER_WEIGHTS.register("class_balanced")
def _class_balanced(labels: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    return _cell_weights(np.asarray(labels).reshape(-1, 1))


@SAMPLER_WEIGHTS.register("group_balanced")
def _group_balanced(labels: np.ndarray, groups: np.ndarray | None) -> np.ndarray:
    if groups is None or np.all(np.asarray(groups) < 0):
        warnings.warn("group_balanced sampler without a group column: balancing classes only", stacklevel=3)
        return _class_balanced(labels, None)
    return _cell_weights(np.column_stack([np.asarray(labels), np.asarray(groups)]))


def sample_weights(kind: str, labels: np.ndarray, groups: np.ndarray | None = None) -> np.ndarray | None:
    """Per-sample weights for ``kind`` (summing to 1), or None for plain shuffling."""
    return SAMPLER_WEIGHTS.get(kind)(np.asarray(labels), None if groups is None else np.asarray(groups))


def build_sampler(kind: str, labels: np.ndarray, groups: np.ndarray | None = None, seed: int = 0,
                  num_samples: int | None = None):
    """A seeded ``WeightedRandomSampler`` for ``kind``, or None for ``random`` (the loader shuffles)."""
    import torch  # the training stack takes seconds to import
    from torch.utils.data import WeightedRandomSampler  # the training stack takes seconds to import

    weights = sample_weights(kind, labels, groups)
    if weights is None:
        return None
    generator = torch.Generator().manual_seed(int(seed))
    return WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double),
                                 num_samples=int(num_samples or len(weights)), replacement=True,
                                 generator=generator)
