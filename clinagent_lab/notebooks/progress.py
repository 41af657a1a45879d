"""Progress events as versioned JSON lines, written by the iteration notebook and read by the executor.

Each line is ``{"v": 1, "type": ..., "time": <unix seconds>, ...}``. Types written from the kernel:
``fit_started`` (max_epochs, steps_per_epoch), ``epoch`` (epoch, step, metrics), ``fit_finished``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import lightning as L

from .events import EVENT_VERSION, read_events, write_event

__all__ = ["EVENT_VERSION", "ProgressCallback", "TimeBudget", "write_event", "read_events"]


def _scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        try:
            out[key] = round(float(value), 6)
        except (TypeError, ValueError):
            continue
    return out


class ProgressCallback(L.Callback):
    """Lightning callback that writes an ``epoch`` event after every validation epoch."""

    def __init__(self, events_path: str | Path | None) -> None:
        self.events_path = str(events_path) if events_path else None

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        write_event(self.events_path, "fit_started", max_epochs=trainer.max_epochs,
                    steps_per_epoch=trainer.num_training_batches if trainer.num_training_batches != float("inf")
                    else None)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after the module's on_validation_epoch_end, so this epoch's validation metrics are logged
        if trainer.sanity_checking:
            return
        write_event(self.events_path, "epoch", epoch=trainer.current_epoch, step=trainer.global_step,
                    max_epochs=trainer.max_epochs, metrics=_scalar_metrics(trainer.callback_metrics))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        write_event(self.events_path, "fit_finished", epoch=trainer.current_epoch, step=trainer.global_step)


class TimeBudget(L.Callback):
    """Stop training at an epoch boundary when the next epoch would not fit in ``seconds``.

    Stopping between epochs (rather than mid-epoch, as ``max_time`` does) keeps a time-limited run
    reproducible: rerunning with ``max_epochs`` = the epochs completed gives the same weights.
    """

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.start = 0.0
        self.epoch_start = 0.0
        self.longest_epoch = 0.0
        self.stopped = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.monotonic()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.epoch_start = time.monotonic()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.seconds is None or trainer.sanity_checking:
            return
        now = time.monotonic()
        self.longest_epoch = max(self.longest_epoch, now - self.epoch_start)
        if now - self.start + 1.1 * self.longest_epoch > self.seconds:
            self.stopped = True
            trainer.should_stop = True
