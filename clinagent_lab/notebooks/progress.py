"""Progress events as versioned JSON lines, written by the iteration notebook and read by the executor, and the
callbacks that fit training to its time budget.

Each line is ``{"v": 1, "type": ..., "time": <unix seconds>, ...}``. Types written from the kernel:
``fit_started`` (max_epochs, steps_per_epoch), ``epoch`` (epoch, step, metrics), ``plan``, ``fit_finished``.

When several processes train (DDP), every callback here runs in each of them: events and files are written by
rank 0 only, and a decision that changes the loop (stop now, train this many epochs) is taken on rank 0's
measurements and broadcast, at the same step on every rank (:func:`agreed`). Ranks that decided on their own
clocks would disagree and deadlock in the next collective.
"""

from __future__ import annotations

import math
import statistics
import time
import warnings
from pathlib import Path
from typing import Any

import lightning as L

from ..runfolder import FitState, RunFolder
from .events import EVENT_VERSION, read_events, write_event

__all__ = ["EVENT_VERSION", "EpochPlanner", "FitRecord", "ProgressCallback", "TimeBudget", "agreed", "write_event",
           "read_events", "one_off_seconds", "ONE_OFF_FACTOR"]


def is_rank_zero(trainer: L.Trainer) -> bool:
    """Whether this process writes events and files: the only one, or rank 0 of several."""
    return bool(getattr(trainer, "is_global_zero", True))


def agreed(trainer: L.Trainer, value: Any) -> Any:
    """Rank 0's ``value`` on every rank (DDP), ``value`` itself in a single process.

    A collective: every rank must call it at the same point of the loop, whatever its own ``value``.
    """
    if int(getattr(trainer, "world_size", 1) or 1) <= 1:
        return value
    return trainer.strategy.broadcast(value, src=0)


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
        if not is_rank_zero(trainer):
            return
        write_event(self.events_path, "fit_started", max_epochs=trainer.max_epochs,
                    steps_per_epoch=trainer.num_training_batches if trainer.num_training_batches != float("inf")
                    else None)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after the module's on_validation_epoch_end, so this epoch's validation metrics are logged
        if trainer.sanity_checking or not is_rank_zero(trainer):
            return
        write_event(self.events_path, "epoch", epoch=trainer.current_epoch, step=trainer.global_step,
                    max_epochs=trainer.max_epochs, metrics=_scalar_metrics(trainer.callback_metrics))

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not is_rank_zero(trainer):
            return
        write_event(self.events_path, "fit_finished", epoch=trainer.current_epoch, step=trainer.global_step)


#: a batch longer than this many times the median batch of its loop carries one-off costs
ONE_OFF_FACTOR = 3.0


def one_off_seconds(durations: list[float], factor: float = ONE_OFF_FACTOR) -> float:
    """Seconds by which the batches longer than ``factor`` x the median exceed the median: the one-off costs of
    a loop (workers starting, kernels loading, first-shape plans), which its next run will not pay again.

    Example:
        >>> one_off_seconds([12.0, 0.1, 0.1, 0.12, 0.1])  # a first step of 12 s, then 0.1 s steps
        11.9
        >>> one_off_seconds([0.1, 0.12, 0.1])  # nothing stands out
        0.0
    """
    if len(durations) < 3:
        return 0.0
    median = statistics.median(durations)
    if median <= 0:
        return 0.0
    return round(float(sum(d - median for d in durations if d > factor * median)), 6)


class TimeBudget(L.Callback):
    """Stop training at an epoch boundary when the next epoch would not fit in ``seconds``.

    The next epoch is taken to last 1.1 x the longest epoch so far, the first left out once a later one is
    measured: the first carries one-off costs (data-loader workers starting, caches filling, the next notebook's
    kernel warming up in the background; on a GPU, CUDA kernels loaded and cuDNN plans built at each new layer
    shape's first pass) that later epochs do not. While the first is the only one measured it counts without
    those costs: a batch that took more than :data:`ONE_OFF_FACTOR` x the median batch of its loop (training or
    validation) counts as a median one (:func:`one_off_seconds`). A detector's first epoch on a GPU can take ten
    times its later ones, nearly all of it in the first steps; taken at face value it would end a short budget
    after one epoch. Stopping between epochs (rather than mid-epoch, as ``max_time`` does) keeps a time-limited
    run reproducible: rerunning with ``max_epochs`` = the epochs completed gives the same weights.
    """

    def __init__(self, seconds: float | None) -> None:
        self.seconds = seconds
        self.start = 0.0
        self.epoch_start = 0.0
        self.first_epoch: float | None = None
        #: seconds of the first epoch spent on one-off costs (its outlying batches beyond the median)
        self.one_off_s = 0.0
        self.longest_later = 0.0
        self.stopped = False
        self._mark = self._val_mark = self._last_check = 0.0
        self._told = False
        self._train_batches: list[float] = []  # the first epoch's batch durations, data wait included
        self._val_batches: list[float] = []

    @property
    def longest_epoch(self) -> float:
        """The longest epoch after the first (the first less its one-off costs while it is the only one)."""
        if self.longest_later > 0:
            return self.longest_later
        return max(0.0, (self.first_epoch or 0.0) - self.one_off_s)

    def deduct(self, seconds: float) -> None:
        """Count ``seconds`` spent before this fit (a teacher's training, pseudo-labelling) against the budget."""
        if self.seconds is not None:
            self.seconds = max(1.0, self.seconds - max(0.0, seconds))

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.start = time.monotonic()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._mark = time.monotonic()
        # a later epoch runs from the previous check on, so that the previous epoch's tail (the module's
        # validation metrics, the checkpoint written after this callback's check) counts too
        self.epoch_start = self._last_check if trainer.current_epoch > 0 and self._last_check else self._mark

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if trainer.current_epoch == 0:
            self._train_batches.append(time.monotonic() - self._mark)
            self._mark = time.monotonic()

    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._val_mark = time.monotonic()

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        if trainer.current_epoch == 0 and not trainer.sanity_checking:
            self._val_batches.append(time.monotonic() - self._val_mark)
            self._val_mark = time.monotonic()

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self.seconds is None or trainer.sanity_checking:
            return
        now = time.monotonic()
        self._mark = now  # training resumes from here when validation runs within the epoch
        if trainer.current_epoch == 0:
            self.first_epoch = max(self.first_epoch or 0.0, now - self.epoch_start)
            self.one_off_s = one_off_seconds(self._train_batches) + one_off_seconds(self._val_batches)
            if self.one_off_s >= 0.25 * self.first_epoch and not self._told and is_rank_zero(trainer):
                self._told = True
                print(f"first epoch {self.first_epoch:.1f} s, {self.one_off_s:.1f} s of it one-off start-up in its "
                      f"slowest batches: the time budget counts {self.longest_epoch:.1f} s for the next epoch")
        else:
            self.longest_later = max(self.longest_later, now - self.epoch_start)
        last = trainer.max_epochs is not None and trainer.max_epochs > 0 and \
            trainer.current_epoch + 1 >= trainer.max_epochs
        self._last_check = now
        # the last epoch ends anyway; under DDP rank 0's clock decides for every rank
        if agreed(trainer, not last and now - self.start + 1.1 * self.longest_epoch > self.seconds):
            self.stopped = True
            trainer.should_stop = True


class EpochPlanner(L.Callback):
    """Fit the epoch count to the time left, measured on the run's own training (no probe run).

    The first ``hold_steps`` optimizer steps train at the schedule's starting learning rate while their
    duration is measured; then the epoch count is fixed (as many epochs as fit in ``seconds`` at the measured
    speed, at most the recipe's) and the learning-rate schedule is built over exactly those epochs, continuing
    from the step it is at. At the end of the second epoch, whose time includes validation and whatever else
    an epoch costs (a head refit, a slower data pipeline) but not the first epoch's one-off costs, the count is
    checked again against what :class:`TimeBudget` will allow: when the planned epochs would overrun the time
    left it is lowered, when clearly more fit (10 %, at least one epoch) it is raised, at most to the recipe's,
    and the schedule is rebuilt over the new total. The run then ends with its annealed learning rate instead of
    being stopped part-way, or with time left unused.

    Until the first plan the trainer runs with the recipe's epochs, in an original run and in a rerun alike. The
    plan history (:attr:`plan`: the count after the first steps, then the revised one if any) is what a rerun
    passes back as ``fixed_epochs``; it then switches at the same steps and trains step for step as the
    original did, on any machine speed. Under DDP every rank plans at the same step and trains rank 0's count.

    Args:
        events_path: where the ``plan`` events go.
        seconds: training time allowed (None: no deadline, keep the recipe's epochs).
        fixed_epochs: the plan to replay regardless of speed: an epoch count, or the plan history (a rerun).
        build_scheduler: ``(optimizer, total_steps) -> scheduler or None`` for the schedule over the planned
            steps (None: leave the configured schedule alone).
        hold_steps: steps measured before the plan (at most one epoch).
        val_cost: validation cost per validation batch, as a fraction of a training step (first plan only).
    """

    def __init__(self, events_path: str | Path | None, seconds: float | None, *,
                 fixed_epochs: int | list[int] | None = None, build_scheduler: Any = None, hold_steps: int = 4,
                 val_cost: float = 0.35) -> None:
        self.events_path = str(events_path) if events_path else None
        self.seconds = seconds
        fixed = [fixed_epochs] if isinstance(fixed_epochs, int) else fixed_epochs
        self.fixed_plan: list[int] | None = None if fixed is None else [int(e) for e in fixed]
        if self.fixed_plan is not None and (not self.fixed_plan or min(self.fixed_plan) < 1):
            raise ValueError(f"fixed_epochs must be positive epoch counts, got {fixed_epochs!r}")
        self.build_scheduler = build_scheduler
        self.hold_steps = hold_steps
        self.val_cost = val_cost
        #: the epoch counts planned so far: after the first steps, then after the second epoch if it was revised
        self.plan: list[int] = []
        self._marks: list[float] = []
        self._k = hold_steps
        self.recipe_epochs: int | None = None  # the trainer's epochs when the first plan was made
        self._epoch_start = 0.0

    @property
    def planned_epochs(self) -> int | None:
        """The epochs the run trains: the last count planned (or the plan to replay, before it is applied)."""
        if self.plan:
            return self.plan[-1]
        return self.fixed_plan[-1] if self.fixed_plan else None

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:

        spe = trainer.num_training_batches
        spe = int(spe) if isinstance(spe, (int, float)) and math.isfinite(spe) and spe > 0 else 1
        self._k = max(1, min(self.hold_steps, spe))
        self._marks = [time.perf_counter()]
        if self.build_scheduler is not None and trainer.lr_scheduler_configs:
            import torch  # the training stack takes seconds to import

            config = trainer.lr_scheduler_configs[0]
            config.scheduler = torch.optim.lr_scheduler.LambdaLR(config.scheduler.optimizer, lambda _: 1.0)

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._epoch_start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self.plan:
            return
        self._marks.append(time.perf_counter())
        if trainer.global_step >= self._k:
            self._plan(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after validation (Lightning runs it before this hook), so the epoch's time includes it
        if not self.plan:  # an epoch shorter than the hold (accumulated gradients, limited batches)
            self._plan(trainer)
        if trainer.current_epoch == 1:
            self._replan(trainer)

    def _plan(self, trainer: L.Trainer) -> None:

        steps = [b - a for a, b in zip(self._marks, self._marks[1:])]
        per_step = statistics.median(steps[1:] or steps) if steps else 0.1
        self.recipe_epochs = recipe_epochs = int(trainer.max_epochs or 1)
        spe = trainer.num_training_batches
        n_val = sum(trainer.num_val_batches) if isinstance(trainer.num_val_batches, list) else 0
        epoch_s = per_step * (float(spe) + self.val_cost * float(n_val))
        if self.fixed_plan is not None:
            epochs = self.fixed_plan[0]
        elif self.seconds is None:
            epochs = recipe_epochs
        else:
            epochs = min(recipe_epochs, max(1, int(0.9 * self.seconds / max(epoch_s, 1e-3))))
        epochs = agreed(trainer, epochs)
        self._apply(trainer, epochs)
        if not is_rank_zero(trainer):
            return
        write_event(self.events_path, "plan", stage="first_steps", epochs=epochs, recipe_epochs=recipe_epochs,
                    seconds_per_epoch=round(epoch_s, 3), measured_steps=len(steps),
                    seconds_allowed=None if self.seconds is None else round(self.seconds, 1))
        if epochs < recipe_epochs and self.fixed_plan is None:
            print(f"{recipe_epochs} epochs do not fit the {self.seconds:.0f} s left (~{epoch_s:.1f} s/epoch "
                  f"measured): training {epochs} epochs, with the schedule fitted to them")

    def _replan(self, trainer: L.Trainer) -> None:
        """At the end of the second epoch: fit the count to the time left at that epoch's measured speed."""
        planned = self.plan[-1]
        now = time.perf_counter()
        elapsed = now - self._marks[0]
        epoch_s = max(now - self._epoch_start, 1e-3)  # the second epoch, its validation included
        epochs, note = self._revision(planned, elapsed, epoch_s)
        epochs = agreed(trainer, epochs)  # every rank asks, so that all train rank 0's count
        if epochs is None:
            return
        self._apply(trainer, epochs)
        if not is_rank_zero(trainer):
            return
        if note:
            print(note)
        write_event(self.events_path, "plan", stage="second_epoch", epochs=epochs, previous_epochs=planned,
                    seconds_per_epoch=round(epoch_s, 3), elapsed_s=round(elapsed, 3),
                    seconds_allowed=None if self.seconds is None else round(self.seconds, 1))

    def _revision(self, planned: int, elapsed: float, epoch_s: float) -> tuple[int | None, str]:
        """The revised epoch count (None: keep the plan) and what to tell the reader about it."""
        if self.fixed_plan is not None:
            return (self.fixed_plan[1] if len(self.fixed_plan) > 1 else None), ""
        if self.seconds is None or planned <= 2:  # no deadline, or the run ends with this epoch anyway
            return None, ""
        # TimeBudget starts an epoch only while 1.1 x the longest epoch after the first still fits: the last
        # planned epoch must pass that check at the end of the one before it; later epochs may run 5 % slower
        # than this one
        room = self.seconds - elapsed - 1.1 * epoch_s
        fits = 2 if room < 0 else 3 + int(room / (1.05 * epoch_s))
        epochs = min(self.recipe_epochs or planned, fits)
        if epochs >= planned and (epochs - planned) < max(1.0, 0.1 * planned):
            return None, ""  # the plan fits; not worth changing the schedule for less than 10 % more epochs
        if epochs < planned:
            return epochs, (f"at {epoch_s:.1f} s per epoch the {planned} planned epochs would overrun the "
                            f"{self.seconds:.0f} s allowed: training {epochs}, with the schedule fitted to them")
        return epochs, (f"at {epoch_s:.1f} s per epoch {epochs} epochs fit the {self.seconds:.0f} s allowed "
                        f"({planned} planned): training {epochs}, with the schedule fitted to them")

    def _apply(self, trainer: L.Trainer, epochs: int) -> None:
        """Train ``epochs`` epochs in all, with the schedule built over them and moved to the current step."""

        self.plan.append(int(epochs))
        trainer.fit_loop.max_epochs = int(epochs)
        if self.build_scheduler is not None and trainer.lr_scheduler_configs:
            config = trainer.lr_scheduler_configs[0]
            scheduler = self.build_scheduler(config.scheduler.optimizer, trainer.estimated_stepping_batches)
            if scheduler is not None:
                with warnings.catch_warnings():  # stepping to the current step, not training
                    warnings.simplefilter("ignore")
                    for _ in range(trainer.global_step):
                        scheduler.step()
                config.scheduler = scheduler


class FitRecord(L.Callback):
    """Write how the training loop ended (:class:`~clinagent_lab.runfolder.FitState`) into the run folder.

    Under DDP the loop runs in forked processes and the notebook's ``Trainer`` gets back only the weights and
    the best checkpoint's path; the notebook reads the epochs, steps and epoch plan from this file instead. Rank
    0 writes it at the end of ``fit``, in a single process too.
    """

    def __init__(self, run: RunFolder, time_budget: TimeBudget | None = None, planner: EpochPlanner | None = None,
                 strategy: str = "") -> None:
        self.run = run
        self.time_budget = time_budget
        self.planner = planner
        self.strategy = strategy

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not is_rank_zero(trainer):
            return
        planner = self.planner
        self.run.write_fit_state(FitState(
            epochs_run=trainer.current_epoch, global_step=trainer.global_step,
            max_epochs=planner.planned_epochs if planner is not None else None,
            epoch_plan=list(planner.plan) if planner is not None else [],
            stopped_by_time=bool(self.time_budget is not None and self.time_budget.stopped),
            world_size=int(trainer.world_size), strategy=self.strategy or type(trainer.strategy).__name__))
