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

__all__ = ["EVENT_VERSION", "EpochPlanner", "ProgressCallback", "TimeBudget", "write_event", "read_events"]


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


class EpochPlanner(L.Callback):
    """Fit the epoch count to the time left, measured on the run's own first training steps (no probe run).

    The first ``hold_steps`` optimizer steps train at the schedule's starting learning rate while their
    duration is measured; then the epoch count is fixed (``fixed_epochs`` when given, as in a rerun, else as
    many epochs as fit in ``seconds`` at the measured speed, at most the recipe's) and the learning-rate schedule
    is built over exactly those epochs, continuing from the step it is at. Until that moment the trainer runs
    with the recipe's epochs, in an original run and in a rerun alike, so a rerun with the planned epochs fixed
    trains step for step as the original did.

    Args:
        events_path: where the ``plan`` event goes.
        seconds: training time allowed (None: no deadline, keep the recipe's epochs).
        fixed_epochs: epochs to train regardless of speed (a rerun replaying a plan).
        build_scheduler: ``(optimizer, total_steps) -> scheduler or None`` for the schedule over the planned
            steps (None: leave the configured schedule alone).
        hold_steps: steps measured before the plan (at most one epoch).
        val_cost: validation cost per validation batch, as a fraction of a training step.
    """

    def __init__(self, events_path: str | Path | None, seconds: float | None, *, fixed_epochs: int | None = None,
                 build_scheduler: Any = None, hold_steps: int = 4, val_cost: float = 0.35) -> None:
        self.events_path = str(events_path) if events_path else None
        self.seconds = seconds
        self.fixed_epochs = fixed_epochs
        self.build_scheduler = build_scheduler
        self.hold_steps = hold_steps
        self.val_cost = val_cost
        self.planned_epochs: int | None = fixed_epochs
        self._marks: list[float] = []
        self._k = hold_steps
        self._done = False

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        import math

        spe = trainer.num_training_batches
        spe = int(spe) if isinstance(spe, (int, float)) and math.isfinite(spe) and spe > 0 else 1
        self._k = max(1, min(self.hold_steps, spe))
        self._marks = [time.perf_counter()]
        if self.build_scheduler is not None and trainer.lr_scheduler_configs:
            import torch

            config = trainer.lr_scheduler_configs[0]
            config.scheduler = torch.optim.lr_scheduler.LambdaLR(config.scheduler.optimizer, lambda _: 1.0)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self._done:
            return
        self._marks.append(time.perf_counter())
        if trainer.global_step >= self._k:
            self._plan(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self._done:  # an epoch shorter than the hold (accumulated gradients, limited batches)
            self._plan(trainer)

    def _plan(self, trainer: L.Trainer) -> None:
        import statistics
        import warnings

        self._done = True
        steps = [b - a for a, b in zip(self._marks, self._marks[1:])]
        per_step = statistics.median(steps[1:] or steps) if steps else 0.1
        recipe_epochs = int(trainer.max_epochs or 1)
        spe = trainer.num_training_batches
        n_val = sum(trainer.num_val_batches) if isinstance(trainer.num_val_batches, list) else 0
        epoch_s = per_step * (float(spe) + self.val_cost * float(n_val))
        if self.fixed_epochs is not None:
            epochs = int(self.fixed_epochs)
        elif self.seconds is None:
            epochs = recipe_epochs
        else:
            epochs = min(recipe_epochs, max(1, int(0.9 * self.seconds / max(epoch_s, 1e-3))))
        self.planned_epochs = epochs
        trainer.fit_loop.max_epochs = epochs
        if self.build_scheduler is not None and trainer.lr_scheduler_configs:
            config = trainer.lr_scheduler_configs[0]
            scheduler = self.build_scheduler(config.scheduler.optimizer, trainer.estimated_stepping_batches)
            if scheduler is not None:
                with warnings.catch_warnings():  # stepping to the current step, not training
                    warnings.simplefilter("ignore")
                    for _ in range(trainer.global_step):
                        scheduler.step()
                config.scheduler = scheduler
        write_event(self.events_path, "plan", epochs=epochs, recipe_epochs=recipe_epochs,
                    seconds_per_epoch=round(epoch_s, 3), measured_steps=len(steps),
                    seconds_allowed=None if self.seconds is None else round(self.seconds, 1))
        if epochs < recipe_epochs and self.fixed_epochs is None:
            print(f"{recipe_epochs} epochs do not fit the {self.seconds:.0f} s left (~{epoch_s:.1f} s/epoch "
                  f"measured): training {epochs} epochs, with the schedule fitted to them")
