"""EpochPlanner: the epoch count fitted from the run's own first steps, checked again after the first epoch,
the schedule built over exactly those epochs, and a rerun with the plan fixed that trains step for step as the
original did.

Training and validation steps advance a simulated clock (the one the callbacks read) by a set duration instead
of sleeping, so the measured speeds, and with them the plans, are exact on any machine."""

from __future__ import annotations

import json

import lightning as L
import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from clinagent_lab.notebooks import progress
from clinagent_lab.notebooks.progress import EpochPlanner, TimeBudget


class Clock:
    """Stands in for the ``time`` module in :mod:`clinagent_lab.notebooks.progress`: time passes only when a
    step says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def perf_counter(self) -> float:
        return self.now

    monotonic = perf_counter


@pytest.fixture(autouse=True)
def clock(monkeypatch) -> Clock:
    c = Clock()
    monkeypatch.setattr(progress, "time", c)
    return c


class Tiny(L.LightningModule):
    """A linear model whose steps take a known (simulated) duration; records every step's learning rate."""

    def __init__(self, step_s: float = 0.0, val_s: float = 0.0) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 2)
        self.step_s = step_s
        self.val_s = val_s
        self.lrs: list[float] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        progress.time.advance(self.step_s)
        self.lrs.append(self.trainer.optimizers[0].param_groups[0]["lr"])
        return torch.nn.functional.cross_entropy(self.layer(x), y)

    def validation_step(self, batch, batch_idx):
        progress.time.advance(self.val_s)
        x, y = batch
        self.log("val_loss", torch.nn.functional.cross_entropy(self.layer(x), y))

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
    # 10 steps per epoch at 20 ms: 0.2 s per epoch; 0.9 s allowed fits 4 (90 %) of the recipe's 50 epochs
    planner = EpochPlanner(events, seconds=0.9, build_scheduler=_onecycle)
    model, trainer = _fit(planner, max_epochs=50, step_s=0.02)
    assert planner.planned_epochs == 4
    assert len(planner.plan) == 1  # the first epoch took what the first steps foretold: the plan stands
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
    plan = [e for e in (json.loads(x) for x in events.read_text().splitlines()) if e["type"] == "plan"]
    assert len(plan) == 1 and plan[0]["epochs"] == planner.planned_epochs and plan[0]["recipe_epochs"] == 50


def test_rerun_with_the_planned_epochs_fixed_trains_identically():
    original = EpochPlanner(None, seconds=0.9, build_scheduler=_onecycle)
    model_a, _ = _fit(original, max_epochs=50, step_s=0.02)
    replay = EpochPlanner(None, seconds=None, fixed_epochs=original.planned_epochs, build_scheduler=_onecycle)
    model_b, trainer_b = _fit(replay, max_epochs=50)  # steps take no time: a faster machine, the same plan
    assert trainer_b.current_epoch == original.planned_epochs
    assert model_b.lrs == model_a.lrs
    for a, b in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(a, b)


def test_no_deadline_keeps_the_recipe_epochs():
    planner = EpochPlanner(None, seconds=None, build_scheduler=_onecycle)
    model, trainer = _fit(planner, max_epochs=3)
    assert planner.planned_epochs == 3 and trainer.current_epoch == 3
    assert len(model.lrs) == 30


@pytest.mark.parametrize("fixed", [2, [3, 2]])
def test_one_step_epochs_plan_after_the_first_epoch(fixed):
    planner = EpochPlanner(None, seconds=None, fixed_epochs=fixed, build_scheduler=_onecycle, hold_steps=4)
    L.seed_everything(0, verbose=False)
    model = Tiny()
    trainer = L.Trainer(max_epochs=5, callbacks=[planner], logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, accelerator="cpu",
                        num_sanity_val_steps=0, limit_val_batches=0)
    trainer.fit(model, train_dataloaders=_loader(n=8, batch=8))
    assert planner.planned_epochs == 2 and trainer.current_epoch == 2 and len(model.lrs) == 2
    assert planner.plan == ([2] if fixed == 2 else [3, 2])


def _fit_with_validation(planner: EpochPlanner, budget: TimeBudget | None, max_epochs: int, step_s: float = 0.0,
                         val_s: float = 0.0) -> tuple[Tiny, L.Trainer]:
    L.seed_everything(0, verbose=False)
    model = Tiny(step_s, val_s)
    callbacks = [planner] + ([budget] if budget is not None else [])
    trainer = L.Trainer(max_epochs=max_epochs, callbacks=callbacks, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, accelerator="cpu",
                        num_sanity_val_steps=0)
    trainer.fit(model, train_dataloaders=_loader(), val_dataloaders=_loader(n=40))
    return model, trainer


def test_slow_first_epoch_lowers_the_plan_so_the_schedule_still_ends(tmp_path):
    # the first steps foretell 0.35 s per epoch (10 x 30 ms of training plus the usual validation share);
    # validation really takes 5 x 100 ms, so an epoch takes 0.8 s: the first plan (12 epochs) would overrun the
    # 5 s and the time guard would stop the run part-way through its schedule, still at a high learning rate
    events = tmp_path / "events.jsonl"
    planner = EpochPlanner(events, seconds=5.0, build_scheduler=_onecycle)
    budget = TimeBudget(5.0)
    model, trainer = _fit_with_validation(planner, budget, max_epochs=50, step_s=0.03, val_s=0.1)
    # 0.8 s spent; 5 x 0.8 s fit with the time guard's 10 % on the last epoch but one (3.2 + 0.88 <= 5)
    assert planner.plan == [12, 5]
    assert not budget.stopped  # the lowered plan fits: the time guard had nothing to cut
    assert trainer.current_epoch == planner.planned_epochs
    total = planner.planned_epochs * 10
    assert len(model.lrs) == total
    assert model.lrs[-1] < 0.1 / 25 / 100  # the rebuilt cycle ends with the run, annealed
    # after the first epoch the schedule is the one-cycle over the new total, continued from step 10
    opt = torch.optim.AdamW(torch.nn.Linear(1, 1).parameters(), lr=0.1)
    reference = _onecycle(opt, total)
    expected = []
    for _ in range(total):
        expected.append(opt.param_groups[0]["lr"])
        opt.step()
        reference.step()
    assert model.lrs[10:] == pytest.approx(expected[10:])
    plans = [e for e in (json.loads(x) for x in events.read_text().splitlines()) if e["type"] == "plan"]
    assert [p["stage"] for p in plans] == ["first_steps", "first_epoch"]
    assert plans[1]["previous_epochs"] == planner.plan[0] and plans[1]["epochs"] == planner.plan[1]
    assert plans[1]["seconds_per_epoch"] == pytest.approx(0.8)  # measured with the validation in it


def test_rerun_replays_a_revised_plan_step_for_step():
    original = EpochPlanner(None, seconds=5.0, build_scheduler=_onecycle)
    model_a, _ = _fit_with_validation(original, TimeBudget(5.0), max_epochs=50, step_s=0.03, val_s=0.1)
    assert len(original.plan) == 2
    replay = EpochPlanner(None, seconds=None, fixed_epochs=list(original.plan), build_scheduler=_onecycle)
    model_b, trainer_b = _fit_with_validation(replay, None, max_epochs=50)  # fast: the plan is replayed
    assert replay.plan == original.plan and trainer_b.current_epoch == original.plan[-1]
    assert model_b.lrs == model_a.lrs
    for a, b in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(a, b)
    # the final count alone is not enough: its schedule would differ from the first steps on
    alone = EpochPlanner(None, seconds=None, fixed_epochs=original.plan[-1], build_scheduler=_onecycle)
    model_c, _ = _fit_with_validation(alone, None, max_epochs=50)
    assert model_c.lrs != model_a.lrs


def test_fixed_plan_must_be_epoch_counts():
    with pytest.raises(ValueError, match="positive epoch counts"):
        EpochPlanner(None, seconds=None, fixed_epochs=[])
    with pytest.raises(ValueError, match="positive epoch counts"):
        EpochPlanner(None, seconds=None, fixed_epochs=[4, 0])


@pytest.mark.parametrize("max_epochs, stopped, epochs_run", [(1, False, 1), (4, True, 1)])
def test_time_budget_stops_only_when_epochs_remain(max_epochs, stopped, epochs_run):
    # each epoch (0.8 s) is longer than the 0.5 s allowed: a one-epoch run simply ends (and is not reported as
    # stopped by time); a longer one is stopped after its first epoch
    budget = TimeBudget(0.5)
    planner = EpochPlanner(None, seconds=None, fixed_epochs=max_epochs)
    _, trainer = _fit_with_validation(planner, budget, max_epochs=max_epochs, step_s=0.03, val_s=0.1)
    assert budget.stopped is stopped and trainer.current_epoch == epochs_run
