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

    def __init__(self, step_s: float = 0.0, val_s: float = 0.0, first_steps_s: float | None = None) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 2)
        self.step_s = step_s
        self.val_s = val_s
        self.first_steps_s = first_steps_s  # the first 4 steps' duration, when they are slower than the rest
        self.lrs: list[float] = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        slow = self.first_steps_s is not None and len(self.lrs) < 4
        progress.time.advance(self.first_steps_s if slow else self.step_s)
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
    assert model.lrs[4:] == pytest.approx(_onecycle_lrs(total)[4:])
    assert model.lrs[-1] < start / 100  # the cycle ends with the run: annealed far below its starting rate
    plan = _plans(events)
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
def test_one_step_epochs_plan_after_the_first_epoch(fixed):  # and a revised plan applies after the second
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
                         val_s: float = 0.0, first_steps_s: float | None = None) -> tuple[Tiny, L.Trainer]:
    L.seed_everything(0, verbose=False)
    model = Tiny(step_s, val_s, first_steps_s)
    callbacks = [planner] + ([budget] if budget is not None else [])
    trainer = L.Trainer(max_epochs=max_epochs, callbacks=callbacks, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, accelerator="cpu",
                        num_sanity_val_steps=0)
    trainer.fit(model, train_dataloaders=_loader(), val_dataloaders=_loader(n=40))
    return model, trainer


def _onecycle_lrs(total: int) -> list[float]:
    opt = torch.optim.AdamW(torch.nn.Linear(1, 1).parameters(), lr=0.1)
    reference = _onecycle(opt, total)
    out = []
    for _ in range(total):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        reference.step()
    return out


def _plans(events) -> list[dict]:
    return [e for e in (json.loads(x) for x in events.read_text().splitlines()) if e["type"] == "plan"]


def test_slow_epochs_lower_the_plan_so_the_schedule_still_ends(tmp_path):
    # the first steps foretell 0.35 s per epoch (10 x 30 ms of training plus the usual validation share);
    # validation really takes 5 x 100 ms, so an epoch takes 0.8 s: the first plan (13 epochs) would overrun the
    # 5.2 s and the time guard would stop the run part-way through its schedule, still at a high learning rate
    events = tmp_path / "events.jsonl"
    planner = EpochPlanner(events, seconds=5.2, build_scheduler=_onecycle)
    budget = TimeBudget(5.2)
    model, trainer = _fit_with_validation(planner, budget, max_epochs=50, step_s=0.03, val_s=0.1)
    # after 2 epochs (1.6 s) 4 more fit, the time guard's 1.1 x 0.8 s allowed for on the last but one
    assert planner.plan == [13, 6]
    assert not budget.stopped  # the revised plan fits: the time guard had nothing to cut
    assert trainer.current_epoch == 6 and len(model.lrs) == 60
    assert model.lrs[-1] < 0.1 / 25 / 100  # the rebuilt cycle ends with the run, annealed
    # from the third epoch on the schedule is the one-cycle over the new total, continued from step 20
    assert model.lrs[20:] == pytest.approx(_onecycle_lrs(60)[20:])
    plans = _plans(events)
    assert [p["stage"] for p in plans] == ["first_steps", "second_epoch"]
    assert plans[1]["previous_epochs"] == 13 and plans[1]["epochs"] == 6
    assert plans[1]["seconds_per_epoch"] == pytest.approx(0.8)  # measured with the validation in it


def test_a_slow_start_raises_the_plan_and_the_time_is_used(tmp_path):
    # the first 4 steps take 100 ms each (a busy start), the rest 20 ms: the first plan (4 epochs of a
    # foretold 1.2 s) would leave most of the 6 s unused; the second epoch (0.2 s) shows 27 fit
    events = tmp_path / "events.jsonl"
    planner = EpochPlanner(events, seconds=6.0, build_scheduler=_onecycle)
    budget = TimeBudget(6.0)
    model, trainer = _fit_with_validation(planner, budget, max_epochs=50, step_s=0.02, first_steps_s=0.1)
    assert planner.plan == [4, 27]
    # the time guard judges by the second epoch too: with the slow first epoch (0.52 s) it would stop at 26
    assert not budget.stopped and trainer.current_epoch == 27
    assert model.lrs[20:] == pytest.approx(_onecycle_lrs(270)[20:])


def test_a_plan_that_fits_is_left_alone(tmp_path):
    events = tmp_path / "events.jsonl"
    planner = EpochPlanner(events, seconds=5.2, build_scheduler=_onecycle, val_cost=20.0)  # foretold: 0.8 s
    _fit_with_validation(planner, TimeBudget(5.2), max_epochs=50, step_s=0.03, val_s=0.1)
    assert len(planner.plan) == 1 and [p["stage"] for p in _plans(events)] == ["first_steps"]


def test_rerun_replays_a_revised_plan_step_for_step():
    original = EpochPlanner(None, seconds=5.2, build_scheduler=_onecycle)
    model_a, _ = _fit_with_validation(original, TimeBudget(5.2), max_epochs=50, step_s=0.03, val_s=0.1)
    assert original.plan == [13, 6]
    replay = EpochPlanner(None, seconds=None, fixed_epochs=list(original.plan), build_scheduler=_onecycle)
    model_b, trainer_b = _fit_with_validation(replay, None, max_epochs=50)  # steps take no time
    assert replay.plan == original.plan and trainer_b.current_epoch == 6
    assert model_b.lrs == model_a.lrs
    for a, b in zip(model_a.parameters(), model_b.parameters()):
        assert torch.equal(a, b)
    # the final count alone is not enough: its schedule would differ from the first steps on
    alone = EpochPlanner(None, seconds=None, fixed_epochs=6, build_scheduler=_onecycle)
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


def test_one_off_seconds_counts_only_the_outlying_batches():
    assert progress.one_off_seconds([5.0, 0.1, 0.1, 0.1, 0.1, 0.1]) == pytest.approx(4.9)
    assert progress.one_off_seconds([0.1, 0.25, 0.1, 0.1]) == 0.0  # slower, not an outlier (< 3 x median)
    assert progress.one_off_seconds([5.0, 0.1]) == 0.0  # too few batches to tell
    assert progress.one_off_seconds([0.0, 0.0, 0.3]) == 0.0  # no median to compare with


def test_a_first_epoch_slowed_by_one_off_costs_does_not_end_the_run(clock):
    # the first 4 steps take 0.5 s each (CUDA kernels loading, cuDNN plans built on a GPU), the rest 20 ms:
    # the first epoch takes 2.12 s; taken at face value the next would not fit the 3 s (2.12 + 1.1 x 2.12),
    # and a detector stopped after one epoch learns nothing. Less its one-off 1.92 s the epoch costs 0.2 s
    budget = TimeBudget(3.0)
    planner = EpochPlanner(None, seconds=None, fixed_epochs=50)
    _, trainer = _fit_with_validation(planner, budget, max_epochs=50, step_s=0.02, first_steps_s=0.5)
    assert budget.first_epoch == pytest.approx(2.12)
    assert budget.one_off_s == pytest.approx(4 * 0.48)
    # later epochs (0.2 s, measured) run while 1.1 x 0.2 s still fits: 2.12 + 3 x 0.2 + 0.22 <= 3 < + 0.2
    assert budget.stopped and trainer.current_epoch == 5
    assert clock.now - 1000.0 <= 3.0


class MetricsCost(Tiny):
    """Tiny whose validation epoch end takes ``end_s`` (box metrics over the epoch's predictions)."""

    def __init__(self, end_s: float, **kwargs) -> None:
        super().__init__(**kwargs)
        self.end_s = end_s

    def on_validation_epoch_end(self) -> None:
        progress.time.advance(self.end_s)


def test_the_epoch_end_work_after_the_check_counts_in_the_next_epoch(clock):
    # 0.2 s of training steps, then 0.3 s of validation metrics in the module's epoch-end hook, which Lightning
    # calls after the callbacks' hook: an epoch costs 0.5 s. Measured from the epoch's start to the check it
    # would seem to cost 0.2 s and the run would overrun the 2 s by 0.5 s
    L.seed_everything(0, verbose=False)
    budget = TimeBudget(2.0)
    model = MetricsCost(0.3, step_s=0.02)
    trainer = L.Trainer(max_epochs=50, callbacks=[budget], logger=False, enable_progress_bar=False,
                        enable_model_summary=False, enable_checkpointing=False, accelerator="cpu",
                        num_sanity_val_steps=0)
    trainer.fit(model, train_dataloaders=_loader(), val_dataloaders=_loader(n=40))
    assert budget.longest_later == pytest.approx(0.5)
    assert budget.stopped and trainer.current_epoch == 4
    assert clock.now - 1000.0 <= 2.0 + 1e-9
