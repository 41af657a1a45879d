"""Classification losses, registered by name; every loss is called as ``loss(logits, target, group=None)``.

``group`` holds each sample's confounder code (``-1`` when unknown); only ``groupdro`` uses it.

Example:
    >>> import torch
    >>> from clinagent_lab.recipe import LossConfig
    >>> loss = make_loss(LossConfig(name="focal", focal_gamma=0.0), num_classes=2)
    >>> logits, y = torch.tensor([[2.0, 0.0]]), torch.tensor([0])
    >>> round(loss(logits, y).item(), 4)
    0.1269
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DataValidationError, RecipeError
from ..recipe import DebiasConfig, LossConfig
from ..registry import Registry

__all__ = [
    "LOSSES",
    "CrossEntropy",
    "FocalLoss",
    "GroupDROLoss",
    "group_cells",
    "make_loss",
]

#: A loss factory: (loss config, num_classes, class weights, n_groups, debias config) -> loss module.
LossFactory = Callable[
    [LossConfig, int, "Sequence[float] | None", "int | None", "DebiasConfig | None"], nn.Module
]
LOSSES: Registry[LossFactory] = Registry("loss")


def _weights_tensor(weights: Sequence[float] | None, num_classes: int) -> torch.Tensor | None:
    if weights is None:
        return None
    if len(weights) != num_classes or any(w < 0 for w in weights):
        raise RecipeError(f"class weights {list(weights)} do not fit {num_classes} classes",
                          where="field 'loss.class_weights'",
                          fix=f"give {num_classes} non-negative weights, one per class, or null")
    return torch.as_tensor(list(weights), dtype=torch.float32)


class CrossEntropy(nn.Module):
    """Cross-entropy with optional class weights and label smoothing (``F.cross_entropy``)."""

    def __init__(self, weight: torch.Tensor | None = None, label_smoothing: float = 0.0) -> None:
        super().__init__()
        self.register_buffer("weight", weight)
        self.label_smoothing = float(label_smoothing)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, group: torch.Tensor | None = None
                ) -> torch.Tensor:
        return F.cross_entropy(logits, target, weight=self.weight, label_smoothing=self.label_smoothing)


class FocalLoss(nn.Module):
    """Focal loss (Lin et al. 2017): ``-alpha_y (1 - p_y)^gamma log p_y``; cross-entropy when ``gamma=0``.

    With class weights ``alpha`` the mean is weighted like ``cross_entropy(weight=alpha)`` (divided by the sum
    of the sample weights), so ``gamma=0`` reproduces weighted cross-entropy exactly.
    """

    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.gamma = float(gamma)
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, group: torch.Tensor | None = None
                ) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=1).gather(1, target[:, None]).squeeze(1)
        # clamp away from 0: d/dp (1-p)^gamma is infinite at p=1 when gamma < 1
        loss = -((1.0 - log_p.exp()).clamp_min(1e-12) ** self.gamma) * log_p
        if self.weight is None:
            return loss.mean()
        w = self.weight[target]
        return (w * loss).sum() / w.sum().clamp_min(1e-12)


def group_cells(target: torch.Tensor, group: torch.Tensor | None, n_groups: int) -> torch.Tensor:
    """Cell index ``label * (n_groups + 1) + code`` where an unknown code (``-1``) takes slot ``n_groups``.

    With ``n_groups == 0`` (no confounder) the cells are the labels.
    """
    if n_groups <= 0 or group is None:
        return target
    if int(group.max()) >= n_groups or int(group.min()) < -1:
        raise DataValidationError(f"confounder codes must lie in [-1, {n_groups - 1}], got "
                                  f"[{int(group.min())}, {int(group.max())}]", where="batch['group']",
                                  fix="encode the confounder as 0..n_groups-1, with -1 for unknown")
    code = torch.where(group < 0, torch.full_like(group, n_groups), group)
    return target * (n_groups + 1) + code


class GroupDROLoss(nn.Module):
    """Online GroupDRO (Sagawa et al. 2020, Algorithm 1).

    Per-group average losses ``L_g``; group weights ``q_g <- q_g * exp(eta * L_g)``, renormalised, each
    training step; the loss is ``sum_g q_g L_g``. Groups are label x confounder cells
    (see :func:`group_cells`).
    ``q`` is a buffer: it is saved in checkpoints and only updated in training mode.

    Args:
        num_classes: number of labels.
        n_groups: number of confounder codes (0: groups are the labels alone).
        eta: step size of the exponentiated-gradient update on ``q``.
    """

    def __init__(self, num_classes: int, n_groups: int = 0, eta: float = 0.01) -> None:
        super().__init__()
        self.num_classes = int(num_classes)
        self.n_groups = int(n_groups or 0)
        self.eta = float(eta)
        n_cells = self.num_classes * (self.n_groups + 1) if self.n_groups > 0 else self.num_classes
        self.register_buffer("q", torch.full((n_cells,), 1.0 / n_cells))

    @property
    def n_cells(self) -> int:
        return int(self.q.numel())

    def group_losses(self, per_sample: torch.Tensor, cells: torch.Tensor
                     ) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean loss per cell (0 where a cell has no sample) and the per-cell counts."""
        sums = torch.zeros(self.n_cells, dtype=per_sample.dtype, device=per_sample.device)
        counts = torch.zeros(self.n_cells, dtype=per_sample.dtype, device=per_sample.device)
        sums = sums.index_add(0, cells, per_sample)
        counts = counts.index_add(0, cells, torch.ones_like(per_sample))
        return sums / counts.clamp_min(1.0), counts

    def robust_loss(self, group_losses: torch.Tensor) -> torch.Tensor:
        """Update ``q`` from ``group_losses`` (in training mode) and return ``q . group_losses``."""
        if self.training:
            q = self.q * torch.exp(self.eta * group_losses.detach().to(self.q.dtype))
            self.q.copy_(q / q.sum())
        return group_losses @ self.q.to(group_losses.dtype)

    def forward(self, logits: torch.Tensor, target: torch.Tensor, group: torch.Tensor | None = None
                ) -> torch.Tensor:
        per_sample = F.cross_entropy(logits.float(), target, reduction="none")
        cells = group_cells(target, group, self.n_groups)
        losses, _ = self.group_losses(per_sample, cells)
        return self.robust_loss(losses)


# ------------------------------------------------------------------------------------------------ factories
def _ce(cfg: LossConfig, num_classes: int, class_weights: Sequence[float] | None, n_groups: int | None,
        debias: DebiasConfig | None) -> nn.Module:
    return CrossEntropy(None, cfg.label_smoothing)


def _resolve_weights(cfg: LossConfig, num_classes: int, class_weights: Sequence[float] | None
                     ) -> torch.Tensor | None:
    """The recipe's explicit ``loss.class_weights`` win over weights computed from the data."""
    return _weights_tensor(cfg.class_weights if cfg.class_weights is not None else class_weights, num_classes)


def _weighted_ce(cfg: LossConfig, num_classes: int, class_weights: Sequence[float] | None,
                 n_groups: int | None, debias: DebiasConfig | None) -> nn.Module:
    weight = _resolve_weights(cfg, num_classes, class_weights)
    if weight is None:
        raise RecipeError("loss 'weighted_ce' needs class weights", where="field 'loss.class_weights'",
                          fix="set loss.class_weights, or pass class_weights computed from the training "
                          "labels")
    return CrossEntropy(weight, cfg.label_smoothing)


def _focal(cfg: LossConfig, num_classes: int, class_weights: Sequence[float] | None, n_groups: int | None,
           debias: DebiasConfig | None) -> nn.Module:
    return FocalLoss(cfg.focal_gamma, _weights_tensor(cfg.class_weights, num_classes))


def _groupdro(cfg: LossConfig, num_classes: int, class_weights: Sequence[float] | None, n_groups: int | None,
              debias: DebiasConfig | None) -> nn.Module:
    eta = debias.groupdro_eta if debias is not None else DebiasConfig().groupdro_eta
    return GroupDROLoss(num_classes, n_groups or 0, eta)


def make_loss(loss_cfg: LossConfig, num_classes: int, class_weights: Sequence[float] | None = None,
              n_groups: int | None = None, debias_cfg: DebiasConfig | None = None) -> nn.Module:
    """Build the loss named by ``loss_cfg.name``.

    Args:
        loss_cfg: the recipe's loss section.
        num_classes: number of classes.
        class_weights: weights computed from the data (used by ``weighted_ce`` when the recipe gives none).
        n_groups: number of confounder codes (``groupdro``; cells are label x code).
        debias_cfg: the recipe's debias section (``groupdro_eta``).
    """
    return LOSSES.get(loss_cfg.name)(loss_cfg, num_classes, class_weights, n_groups, debias_cfg)


LOSSES.register("ce", _ce)
LOSSES.register("weighted_ce", _weighted_ce)
LOSSES.register("focal", _focal)
LOSSES.register("groupdro", _groupdro)
