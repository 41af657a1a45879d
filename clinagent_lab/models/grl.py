"""Gradient reversal (Ganin & Lempitsky 2015, DANN): identity forward, ``-lambda * grad`` backward.

Put :class:`GradientReversalLayer` between a feature extractor and an adversary that predicts a confounder;
minimising the adversary's loss then pushes the features to carry *less* information about the confounder.

Example:
    >>> import torch
    >>> x = torch.ones(2, requires_grad=True)
    >>> grad_reverse(x, 0.5).sum().backward()
    >>> x.grad.tolist()
    [-0.5, -0.5]
    >>> round(dann_lambda(0.5), 4)
    0.9866
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import nn

__all__ = ["GradientReversal", "GradientReversalLayer", "grad_reverse", "dann_lambda"]


class GradientReversal(torch.autograd.Function):
    """Identity in the forward pass; multiplies the incoming gradient by ``-lambda`` in the backward pass."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, lambda_: float) -> torch.Tensor:
        ctx.lambda_ = float(lambda_)
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.lambda_ * grad_output, None


def grad_reverse(x: torch.Tensor, lambda_: float = 1.0) -> torch.Tensor:
    """Functional form of :class:`GradientReversal`."""
    return GradientReversal.apply(x, lambda_)


class GradientReversalLayer(nn.Module):
    """Module wrapper; set ``lambda_`` between steps (e.g. from :func:`dann_lambda`)."""

    def __init__(self, lambda_: float = 1.0) -> None:
        super().__init__()
        self.lambda_ = float(lambda_)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return grad_reverse(x, self.lambda_)

    def extra_repr(self) -> str:
        return f"lambda_={self.lambda_}"


def dann_lambda(progress: float, gamma: float = 10.0) -> float:
    """DANN schedule ``2 / (1 + exp(-gamma * p)) - 1``: 0 at the start, close to 1 at the end.

    Args:
        progress: training progress in [0, 1] (clipped).
        gamma: steepness (10 in the DANN paper).
    """
    p = min(max(float(progress), 0.0), 1.0)
    return 2.0 / (1.0 + math.exp(-gamma * p)) - 1.0
