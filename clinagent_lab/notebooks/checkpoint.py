"""The checkpoint an iteration keeps: the best epoch by its monitored metric, ties broken by a second one.

Lightning's :class:`~lightning.pytorch.callbacks.ModelCheckpoint` replaces its best model only on a strictly
better value, so a metric that saturates keeps the *first* epoch that reached it: an AUROC of 1.0 from the first
epoch on easy data, or a detector's mAP still 0.0 while it warms up. That epoch's model is the least trained
one, and its probabilities are squeezed together (on a synthetic SIIM run on a GPU: validation AUROC 1.0 from
epoch 0, the kept epoch-0 model gave every test image a probability between 0.59 and 0.72, expected calibration
error 0.38, where epoch 43's validation loss was 3,500 times lower). :class:`BestCheckpoint` keeps an epoch
that ties the best value when a tie-breaker improves: the validation loss (lower), else the image-level AUROC
(higher); with none logged, the later epoch.

Kernel side: imported by the iteration runtime when it builds the ``Trainer``.
"""

from __future__ import annotations

import math
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

__all__ = ["BestCheckpoint", "TIE_BREAKERS"]

#: the metrics that break a tie on the monitored one, in order of preference, with the better direction
TIE_BREAKERS: tuple[tuple[str, str], ...] = (("val_loss", "min"), ("val_image_auroc", "max"))


def _value(metrics: dict[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


class BestCheckpoint(ModelCheckpoint):
    """``ModelCheckpoint`` (``mode="max"``, the single best epoch) whose ties go to the better tie-breaker.

    Example:
        >>> cb = BestCheckpoint(dirpath="/tmp/run", filename="model", monitor="val_auroc")
        >>> cb.save_top_k, cb.mode, cb.tie_breaker
        (1, 'max', None)
    """

    def __init__(self, *args: Any, tie_breakers: tuple[tuple[str, str], ...] = TIE_BREAKERS,
                 **kwargs: Any) -> None:
        kwargs.setdefault("mode", "max")
        kwargs.setdefault("save_top_k", 1)
        super().__init__(*args, **kwargs)
        self.tie_breakers = tie_breakers
        #: the tie-breaker in use (the first one the module logs) and its value at the kept epoch
        self.tie_breaker: str | None = None
        self.kept_tie_value: float | None = None

    def _tie(self, metrics: dict[str, Any]) -> tuple[str | None, str, float | None]:
        for name, mode in self.tie_breakers:
            value = _value(metrics, name)
            if value is not None:
                return name, mode, value
        return None, "max", None

    def check_monitor_top_k(self, trainer: L.Trainer, current: Any = None) -> bool:
        better = super().check_monitor_top_k(trainer, current)
        name, mode, value = self._tie(trainer.callback_metrics)
        if not better and current is not None and self.best_k_models and self.save_top_k == 1:
            best = self.best_k_models[self.kth_best_model_path]
            tie = float(current) == float(best)
            if tie and name is None:  # nothing to tell them apart: the later, longer-trained epoch
                better = True
            elif tie and name == self.tie_breaker and value is not None and self.kept_tie_value is not None:
                better = value < self.kept_tie_value if mode == "min" else value > self.kept_tie_value
            # every rank reached this branch (the conditions are agreed or synced metrics): decide together
            better = trainer.strategy.reduce_boolean_decision(bool(better))
        if better:
            self.tie_breaker, self.kept_tie_value = name, value
        return better

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "tie_breaker": self.tie_breaker, "kept_tie_value": self.kept_tie_value}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.tie_breaker = state_dict.get("tie_breaker")
        self.kept_tie_value = state_dict.get("kept_tie_value")
