"""EpochTimes: where each epoch's time goes (data wait, steps, validation, its metrics, the checkpoint) and the
note that names what took it."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from clinagent_lab.models import timing
from clinagent_lab.models.timing import EpochTimes
from tests.test_epoch_planner import Clock  # a clock that moves only when a step says so


@pytest.fixture(autouse=True)
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(timing, "time", c)
    return c


class Costly(L.LightningModule):
    """Training steps of ``step_s`` (the very first one ``first_step_s``), validation batches of ``val_s`` and
    epoch-end metrics of ``metrics_s``."""

    def __init__(self, step_s: float, first_step_s: float, val_s: float, metrics_s: float) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 2)
        self.costs = (step_s, first_step_s, val_s, metrics_s)
        self.steps = 0

    def training_step(self, batch, batch_idx):
        step_s, first_step_s, _, _ = self.costs
        timing.time.advance(first_step_s if self.steps == 0 else step_s)
        self.steps += 1
        x, y = batch
        return torch.nn.functional.cross_entropy(self.layer(x), y)

    def validation_step(self, batch, batch_idx):
        timing.time.advance(self.costs[2])

    def on_validation_epoch_end(self) -> None:
        timing.time.advance(self.costs[3])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def _fit(module: L.LightningModule, epochs: int, report=None) -> EpochTimes:
    times = EpochTimes(report)
    x = torch.randn(40, 4, generator=torch.Generator().manual_seed(0))
    data = DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=8)
    trainer = L.Trainer(max_epochs=epochs, callbacks=[times], logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, accelerator="cpu",
                        num_sanity_val_steps=0)
    trainer.fit(module, train_dataloaders=data, val_dataloaders=data)
    return times


def test_each_epoch_is_split_into_its_phases(capsys):
    got = []
    times = _fit(Costly(step_s=0.1, first_step_s=5.0, val_s=0.02, metrics_s=0.4), epochs=3,
                 report=lambda **kw: got.append(kw))
    first, second = times.epochs[0], times.epochs[1]
    assert len(times.epochs) == 3 and first["steps"] == 5
    assert first["train_steps_s"] == pytest.approx(5.4) and first["first_step_s"] == pytest.approx(5.0)
    assert second["train_steps_s"] == pytest.approx(0.5) and second["median_step_s"] == pytest.approx(0.1)
    assert second["val_batches_s"] == pytest.approx(0.1) and second["val_end_s"] == pytest.approx(0.4)
    assert second["total_s"] == pytest.approx(1.0)  # nothing else took (simulated) time
    summary = times.summary()
    assert summary["later_median"]["total_s"] == pytest.approx(1.0)
    note = times.note()
    # the one-off first step and the metrics that dominate a later epoch are both named
    assert "The first training step took 5.0 s, 50 x the median" in note
    assert "Validation metrics took 40% of a later epoch" in note
    assert got == [{"message": note, "timing": summary}] and note in capsys.readouterr().out


def test_an_even_run_names_nothing_in_particular():
    times = _fit(Costly(step_s=0.1, first_step_s=0.1, val_s=0.01, metrics_s=0.01), epochs=2)
    note = times.note()
    assert note.startswith("epoch 0: 0.6 s (data wait 0.0 s, training steps 0.5 s")
    assert "first training step" not in note and "took" not in note


class SlowCheckpoint(L.Callback):
    """Saving takes 0.3 s, at the training epoch's end, as Lightning's checkpoint does (called last)."""

    def on_train_epoch_end(self, trainer, pl_module):
        timing.time.advance(0.3)


def test_the_checkpoint_saved_after_the_epoch_counts_in_its_tail():
    times = EpochTimes()
    x = torch.randn(16, 4, generator=torch.Generator().manual_seed(0))
    data = DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=8)
    trainer = L.Trainer(max_epochs=2, callbacks=[times, SlowCheckpoint()], logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, accelerator="cpu",
                        num_sanity_val_steps=0)
    trainer.fit(Costly(step_s=0.1, first_step_s=0.1, val_s=0.0, metrics_s=0.0), train_dataloaders=data,
                val_dataloaders=data)
    assert [e["after_val_s"] for e in times.epochs] == pytest.approx([0.3, 0.3])
    assert [e["total_s"] for e in times.epochs] == pytest.approx([0.5, 0.5])
