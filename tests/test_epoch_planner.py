"""EpochPlanner: the epoch count fitted from the run's own first steps, the schedule built over exactly those
epochs, and a rerun with the planned epochs fixed that trains step for step as the original did."""

from __future__ import annotations

import time

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from clinagent_lab.notebooks.progress import EpochPlanner


class Tiny(L.LightningModule):
    """A linear model whose steps can be slowed down to a known duration; records every step's learning rate."""

    def __init__(self, step_s: float = 0.0) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 2)
        self.step_s = step_s
        self.lrs: list[float] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        if self.step_s:
            time.sleep(self.step_s)
        self.lrs.append(self.trainer.optimizers[0].param_groups[0]["lr"])
        return torch.nn.functional.cross_entropy(self.layer(x), y)

    def configure_optimizers(self):
        opt = torch.optim.AdamW(self.parameters(), lr=0.1)
        sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1,
                                                    total_steps=int(self.trainer.estimated_stepping_batches))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _onecycle(opt, total):
    return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=int(total))


def _loader(n=80, batch=8):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    y = (x[:, 0] > 0).long()
    return DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True, generator=torch.Generator().manual_seed(1))


def _fit(planner: EpochPlanner, max_epochs: int, step_s: float = 0.0) -> tuple[Tiny, L.Trainer]:
    L.seed_everything(0, verbose=False)
    model = Tiny(step_s)
    trainer = L.Trainer(max_epochs=max_epochs, callbacks=[planner], logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, accelerator="cpu",
                        num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(model, train_dataloaders=_loader())
    return model, trainer


def test_budget_cuts_the_epochs_and_the_schedule_spans_them(tmp_path):
    events = tmp_path / "events.jsonl"
    # 10 steps per epoch at ~20 ms: ~0.2 s per epoch; 0.9 s allowed fits about 4 of the recipe's 50 epochs
    planner = EpochPlanner(events, seconds=0.9, build_scheduler=_onecycle)
    model, trainer = _fit(planner, max_epochs=50, step_s=0.02)
    assert 1 <= planner.planned_epochs <= 8
    assert trainer.current_epoch == planner.planned_epochs
    total = planner.planned_epochs * 10
    assert len(model.lrs) == total
    # the held steps train at the schedule's starting rate, then the one-cycle schedule over the planned steps
    start = 0.1 / 25
    assert model.lrs[:4] == pytest.approx([start] * 4)
    opt = torch.optim.AdamW(torch.nn.Linear(1, 1).parameters(), lr=0.1)
    reference = _onecycle(opt, total)
    expected = []
    for _ in range(total):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        reference.step()
    assert model.lrs[4:] == pytest.approx(expected[4:])
    assert model.lrs[-1] < start / 100  # the cycle ends with the run: annealed far below its starting rate
    plan = [e for e in (__import__("json").loads(x) for x in events.read_text().splitlines()) if e["type"] == "plan"]
    assert plan and plan[0]["epochs"] == planner.planned_epochs and plan[0]["recipe_epochs"] == 50


def test_rerun_with_the_planned_epochs_fixed_trains_identically():
    original = EpochPlanner(None, seconds=0.9, build_scheduler=_onecycle)
    model_a, _ = _fit(original, max_epochs=50, step_s=0.02)
    replay = EpochPlanner(None, seconds=None, fixed_epochs=original.planned_epochs, build_scheduler=_onecycle)
    model_b, trainer_b = _fit(replay, max_epochs=50)  # no sleep: a faster machine replays the same plan
    assert trainer_b.current_epoch == original.planned_epochs
    assert model_b.lrs == model_a.lrs
    for a, b in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(a, b)


def test_no_deadline_keeps_the_recipe_epochs():
    planner = EpochPlanner(None, seconds=None, build_scheduler=_onecycle)
    model, trainer = _fit(planner, max_epochs=3)
    assert planner.planned_epochs == 3 and trainer.current_epoch == 3
    assert len(model.lrs) == 30


def test_one_step_epochs_plan_after_the_first_epoch():
    planner = EpochPlanner(None, seconds=None, fixed_epochs=2, build_scheduler=_onecycle, hold_steps=4)
    L.seed_everything(0, verbose=False)
    model = Tiny()
    trainer = L.Trainer(max_epochs=5, callbacks=[planner], logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, accelerator="cpu",
                        num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(model, train_dataloaders=_loader(n=8, batch=8))
    assert planner.planned_epochs == 2 and trainer.current_epoch == 2 and len(model.lrs) == 2
