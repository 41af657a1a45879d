"""Where each epoch's time goes, and a one-paragraph note of what took it.

:class:`EpochTimes` is a Lightning callback that splits every training epoch into the time spent waiting for
training batches, in training steps (forward, backward, optimizer), waiting for validation batches, in
validation batches, at the validation epoch's end (the module's metrics: for detection, mAP, FROC and AUROC
over the epoch's boxes) and after validation (the checkpoint, progress events). :meth:`EpochTimes.note` turns
that into what a reader needs: which part dominates, and how much of the first epoch was one-off start-up (on a
GPU the first steps load CUDA kernels and build cuDNN plans for every layer shape; they are not repeated).

Example:
    >>> times = EpochTimes()
    >>> times.epochs = [{"epoch": 0, "total_s": 17.6, "data_wait_s": 0.3, "train_steps_s": 15.9,
    ...                  "first_step_s": 12.4, "steps": 31, "val_wait_s": 0.2, "val_batches_s": 1.0,
    ...                  "val_end_s": 0.1, "after_val_s": 0.1, "median_step_s": 0.116}]
    >>> print(times.note())  # doctest: +NORMALIZE_WHITESPACE
    epoch 0: 17.6 s (data wait 0.3 s, training steps 15.9 s, validation 1.2 s, validation metrics 0.1 s,
    checkpoint and callbacks 0.1 s). The first training step took 12.4 s, 107 x the median of the others:
    one-off start-up (on a GPU: CUDA kernels loaded, cuDNN plans built for each layer shape), not repeated.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

import lightning as L

__all__ = ["EpochTimes", "PHASES"]

#: phase key -> what the note calls it
PHASES = {"data_wait_s": "data wait", "train_steps_s": "training steps", "val_s": "validation",
          "val_end_s": "validation metrics", "after_val_s": "checkpoint and callbacks"}

#: a phase that takes at least this share of a (later) epoch is named as what takes the time
DOMINANT_SHARE = 0.4


class EpochTimes(L.Callback):
    """Record where each training epoch's time goes (:attr:`epochs`, one dict per epoch); at the end of
    ``fit`` (rank 0) print :meth:`note` and call ``report(message=note, timing=summary)`` (e.g. to write an
    event).

    An epoch's tail runs until the next epoch starts (or training ends), so that the checkpoint, which Lightning
    saves at the training epoch's end after every other callback, counts as after validation.
    """

    def __init__(self, report: Callable[..., None] | None = None) -> None:
        self.report = report
        self.epochs: list[dict[str, Any]] = []
        self._rec: dict[str, Any] = {}
        self._step_times: list[float] = []
        self._t0 = self._last = self._batch = self._vlast = self._vbatch = self._after = 0.0
        self._ended = False

    # --- training ---------------------------------------------------------------------------------------
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close()
        self._t0 = self._last = time.perf_counter()
        self._step_times = []
        self._rec = {"epoch": int(trainer.current_epoch), "data_wait_s": 0.0, "train_steps_s": 0.0,
                     "first_step_s": None, "steps": 0, "val_wait_s": 0.0, "val_batches_s": 0.0, "val_end_s": 0.0,
                     "after_val_s": 0.0}

    def on_train_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        self._batch = time.perf_counter()
        self._rec["data_wait_s"] += self._batch - self._last

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        self._last = time.perf_counter()
        step = self._last - self._batch
        self._rec["train_steps_s"] += step
        self._rec["steps"] += 1
        self._step_times.append(step)
        if self._rec["first_step_s"] is None:
            self._rec["first_step_s"] = step

    # --- validation -------------------------------------------------------------------------------------
    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._vlast = time.perf_counter()

    def on_validation_batch_start(self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any,
                                  batch_idx: int, dataloader_idx: int = 0) -> None:
        self._vbatch = time.perf_counter()
        if self._rec and not trainer.sanity_checking:
            self._rec["val_wait_s"] += self._vbatch - self._vlast

    def on_validation_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, outputs: Any, batch: Any,
                                batch_idx: int, dataloader_idx: int = 0) -> None:
        self._vlast = time.perf_counter()
        if self._rec and not trainer.sanity_checking:
            self._rec["val_batches_s"] += self._vlast - self._vbatch

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # after every validation_epoch_end hook (the module's metrics); the checkpoint callbacks come after this
        self._after = time.perf_counter()
        if self._rec and not trainer.sanity_checking:
            self._rec["val_end_s"] += self._after - self._vlast
        self._last = self._after  # training resumes from here when validation runs within the epoch

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if self._rec and not (self._rec["val_batches_s"] or self._rec["val_end_s"]):
            self._after = time.perf_counter()  # no validation this epoch: what follows is the epoch's tail
        self._ended = bool(self._rec)

    def _close(self) -> None:
        """Finish the epoch that ended: its tail runs until the next epoch starts or training ends (the
        checkpoint callbacks, which Lightning calls last, save at the training epoch's end)."""
        if not self._ended:
            return
        now = time.perf_counter()
        self._rec["after_val_s"] += now - self._after
        self._rec["total_s"] = now - self._t0
        if len(self._step_times) > 1:
            self._rec["median_step_s"] = statistics.median(self._step_times[1:])
        self.epochs.append({k: round(v, 4) if isinstance(v, float) else v for k, v in self._rec.items()})
        self._rec, self._ended = {}, False

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._close()

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not self.epochs or not bool(getattr(trainer, "is_global_zero", True)):
            return
        note = self.note()
        print(note)
        if self.report is not None:
            self.report(message=note, timing=self.summary())

    # --- reading ----------------------------------------------------------------------------------------
    @staticmethod
    def _phases(epoch: dict[str, Any]) -> dict[str, float]:
        return {"data_wait_s": epoch["data_wait_s"], "train_steps_s": epoch["train_steps_s"],
                "val_s": epoch["val_wait_s"] + epoch["val_batches_s"], "val_end_s": epoch["val_end_s"],
                "after_val_s": epoch["after_val_s"]}

    def summary(self) -> dict[str, Any]:
        """First epoch's phases, the later epochs' median phases (seconds) and the epoch count."""
        out: dict[str, Any] = {"epochs": len(self.epochs)}
        if not self.epochs:
            return out
        first = self.epochs[0]
        out["first"] = {"total_s": first["total_s"], **self._phases(first), "first_step_s": first["first_step_s"]}
        later = self.epochs[1:]
        if later:
            phases = [self._phases(e) for e in later]
            out["later_median"] = {"total_s": round(statistics.median(e["total_s"] for e in later), 4),
                                   **{k: round(statistics.median(p[k] for p in phases), 4) for k in PHASES}}
        return out

    def note(self) -> str:
        """What took the time, in a few sentences (empty before the first epoch ends)."""
        if not self.epochs:
            return ""
        s = self.summary()

        def parts(phases: dict[str, float]) -> str:
            return ", ".join(f"{PHASES[k]} {phases[k]:.1f} s" for k in PHASES)

        first = s["first"]
        text = [f"epoch 0: {first['total_s']:.1f} s ({parts(first)})."]
        typical = s.get("later_median")
        if typical:
            text[0] = text[0][:-1] + f"; later epochs {typical['total_s']:.1f} s median ({parts(typical)})."
        epoch0 = self.epochs[0]
        median_step = epoch0.get("median_step_s")
        if epoch0["first_step_s"] and median_step and epoch0["first_step_s"] > 3 * median_step \
                and epoch0["first_step_s"] > 0.1 * first["total_s"]:
            text.append(f"The first training step took {epoch0['first_step_s']:.1f} s, "
                        f"{epoch0['first_step_s'] / median_step:.0f} x the median of the others: one-off start-up "
                        f"(on a GPU: CUDA kernels loaded, cuDNN plans built for each layer shape), not repeated.")
        base = typical or first
        total = base["total_s"]
        if total > 0:
            for key in ("data_wait_s", "val_s", "val_end_s", "after_val_s"):
                if base[key] >= DOMINANT_SHARE * total:
                    which = "a later" if typical else "the"
                    text.append(f"{PHASES[key].capitalize()} took {base[key] / total:.0%} of {which} epoch.")
        return " ".join(text)
