"""Training in several processes (DDP over gloo on CPU), from the callbacks' agreement to a whole session.

- The time-budget and epoch-plan callbacks take rank 0's decisions on every rank: each rank's steps advance a
  simulated clock of its own (rank 1's five times slower), so each would decide differently on its own.
- ``clinagent run --accelerator cpu --devices 2`` trains an iteration in two processes through papermill; the
  frozen evaluation sees every validation image once and the test split is read once.
- A rank that dies makes the cell fail: the iteration is recorded ``crash`` and the loop goes on.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import lightning as L
import pandas as pd
import pytest
import torch
from lightning.pytorch.strategies import DDPStrategy
from torch.utils.data import DataLoader, TensorDataset

from clinagent_lab.data.cache import usable_cores
from clinagent_lab.notebooks import progress
from clinagent_lab.notebooks.progress import EpochPlanner, FitRecord, TimeBudget
from clinagent_lab.runfolder import RunFolder
from tests.test_epoch_planner import Clock  # each forked rank gets its own copy, advanced by its own steps

pytestmark = [
    pytest.mark.slow, pytest.mark.timeout(600),
    pytest.mark.skipif(usable_cores() < 2, reason="two training processes need two cores"),
]

TINY = ["--max-iterations", "1", "--iteration-minutes", "3", "--yes", "--set", "training.max_epochs=2",
        "--set", "data.image_size=16", "--set", "data.batch_size=16"]
RANK1_FAILS = (
    "import torch.distributed as dist\n"
    "import torch.nn.functional as F\n\n"
    "def custom_loss(logits, labels):\n"
    "    if dist.is_initialized() and dist.get_rank() == 1:\n"
    "        raise RuntimeError('rank 1 lost its data')\n"
    "    return F.cross_entropy(logits, labels)\n"
)


class Uneven(L.LightningModule):
    """Training steps take 20 ms on rank 0 and 100 ms on rank 1, validation steps 10 and 50 ms (simulated)."""

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(4, 2)

    def _slowness(self) -> float:
        return 1.0 + 4.0 * self.global_rank

    def training_step(self, batch, batch_idx):
        progress.time.advance(0.02 * self._slowness())
        x, y = batch
        return torch.nn.functional.cross_entropy(self.layer(x), y)

    def validation_step(self, batch, batch_idx):
        progress.time.advance(0.01 * self._slowness())

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class Report(L.Callback):
    """Each rank writes what it trained."""

    def __init__(self, folder: Path, planner: EpochPlanner, budget: TimeBudget) -> None:
        self.folder, self.planner, self.budget = folder, planner, budget

    def on_fit_end(self, trainer, pl_module) -> None:
        (self.folder / f"rank{trainer.global_rank}.json").write_text(json.dumps({
            "plan": self.planner.plan, "epochs": trainer.current_epoch, "steps": trainer.global_step,
            "stopped": self.budget.stopped, "world_size": trainer.world_size}))


def _loader(n: int) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 4, generator=g)
    return DataLoader(TensorDataset(x, (x[:, 0] > 0).long()), batch_size=8)


def test_every_rank_trains_rank_zeros_plan_and_stops_with_it(tmp_path, monkeypatch):
    # per rank: 5 training steps (40 of 80 images) and 3 validation batches an epoch. Rank 0's clock foretells
    # 0.12 s an epoch: 8 epochs fit 90 % of the 1.2 s, its second epoch confirms them, and its time guard never
    # stops. Rank 1's clock (0.6 s an epoch) would plan 1 epoch, revise to 2 and stop after the first: on its
    # own it would leave rank 0 waiting in the next all-reduce.
    monkeypatch.setattr(progress, "time", Clock())
    events = tmp_path / "events.jsonl"
    planner = EpochPlanner(events, seconds=1.2)
    budget = TimeBudget(1.2)
    run = RunFolder(tmp_path)
    trainer = L.Trainer(
        max_epochs=20, accelerator="cpu", devices=2, logger=False, enable_progress_bar=False,
        enable_model_summary=False, enable_checkpointing=False, num_sanity_val_steps=0,
        strategy=DDPStrategy(start_method="fork", timeout=timedelta(seconds=60)),
        callbacks=[planner, budget, FitRecord(run, budget, planner, strategy="ddp_notebook"),
                   Report(tmp_path, planner, budget)])
    trainer.fit(Uneven(), train_dataloaders=_loader(80), val_dataloaders=_loader(48))
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0] == ranks[1] == {"plan": [8], "epochs": 8, "steps": 40, "stopped": False, "world_size": 2}
    lines = [json.loads(line) for line in events.read_text().splitlines()]
    plans = [e for e in lines if e["type"] == "plan"]  # written by rank 0 alone, measured on its clock
    assert len(plans) == 1 and plans[0]["epochs"] == 8 and plans[0]["seconds_per_epoch"] == pytest.approx(0.121)
    state = run.read_fit_state()  # what the kernel reads back after fit
    assert (state.epochs_run, state.global_step, state.epoch_plan, state.max_epochs) == (8, 40, [8], 8)
    assert (state.world_size, state.strategy, state.stopped_by_time) == (2, "ddp_notebook", False)
    assert trainer.current_epoch == 0  # the launching process does not see the loop: hence the file


def _read_notebook_text(path: Path) -> str:
    nb = json.loads(path.read_text())
    out = []
    for cell in nb["cells"]:
        for output in cell.get("outputs", []):
            out.append("".join(output.get("text", "")))
    return "\n".join(out)


def test_cli_trains_an_iteration_in_two_processes(tmp_path, capsys):
    from clinagent_lab.cli import main
    from clinagent_lab.data.synth import generate

    data = generate("chest_drain", tmp_path / "data", seed=0, n=120, image_size=16, correlation=0.7)
    out = tmp_path / "run"
    code = main(["run", "--intent", "pneumothorax on chest X-rays", "--data", str(data), "--out", str(out),
                 "--accelerator", "cpu", "--devices", "2", *TINY])
    assert code == 0, capsys.readouterr().err
    session = json.loads((out / "session.json").read_text())
    (it,) = session["iterations"]
    assert it["status"] == "ok", it.get("error")
    assert it["recipe"]["training"]["devices"] == 2
    assert "ddp_notebook" in it["recipe"]["reasons"]["training.devices"]
    folder = RunFolder.iteration(out, 1)
    info = folder.read_run_info()
    assert (info.world_size, info.strategy) == (2, "ddp_notebook")  # written by rank 0 of the two processes
    assert info.epochs_run == 2 and info.epoch_plan == [2] and info.global_step > 0
    assert "trained in 2 processes (ddp_notebook)" in _read_notebook_text(folder.notebook)
    # validation: the metrics during fit came from every rank, the frozen evaluation saw each image once
    assert 0.0 <= it["val_metrics"]["auroc"] <= 1.0
    assert any(e["type"] == "epoch" and "val_auroc" in e["metrics"]
               for e in map(json.loads, folder.events.read_text().splitlines()))
    splits = pd.read_csv(out / "splits.csv", dtype={"image_id": str})
    val = pd.read_csv(folder.path / "val_predictions.csv", dtype={"image_id": str})
    val_ids = splits.loc[splits["split"] == "val", "image_id"]
    assert len(val) == len(val_ids) and set(val["image_id"]) == set(val_ids)
    # the test split once, from the model the two processes trained
    assert session["test_reads"] == 1 and session["final_test"]["iteration"] == 1
    test_info = RunFolder.final_test(out).read_run_info()
    test_ids = splits.loc[splits["split"] == "test", "image_id"]
    assert test_info.test_reads == 1 and test_info.n_samples == len(test_ids)
    test = pd.read_csv(out / "test_predictions.csv", dtype={"image_id": str})
    assert len(test) == len(test_ids) and set(test["image_id"]) == set(test_ids)


def test_a_rank_that_dies_crashes_the_iteration_and_the_loop_goes_on(tmp_path):
    from clinagent_lab.agent.engine import Engine
    from clinagent_lab.data.synth import generate

    data = generate("chest_drain", tmp_path / "data", seed=0, n=120, image_size=16, correlation=0.7)
    fast = {"training.max_epochs": 1, "data.image_size": 16, "data.batch_size": 16, "training.accelerator": "cpu",
            "training.devices": 2}
    engine = Engine.create("pneumothorax on chest X-rays", data, tmp_path / "run", max_iterations=2,
                           iteration_minutes=3, recipe_overrides=fast)
    try:
        proposal = engine.propose()
        broken = proposal.model_copy(update={
            "recipe": proposal.recipe.model_copy(update={"custom_code": {"loss": RANK1_FAILS}}),
            "idea": "custom_loss"})
        crashed = engine.run_iteration(broken)
        assert crashed.status == "crash"
        assert "rank 1 lost its data" in json.dumps(crashed.error)
        assert RunFolder.iteration(engine.out, 1).read_fit_state() is None  # fit never ended
        engine.run(finish=False)  # the loop goes on
    finally:
        engine.close()
    statuses = [it.status for it in engine.session.iterations]
    assert statuses == ["crash", "ok"]
    assert RunFolder.iteration(engine.out, 2).read_run_info().world_size == 2


def test_ranks_started_by_slurm_are_joined_not_forked(monkeypatch):
    from clinagent_lab.notebooks.ddp import ddp_strategy, threads_per_rank
    from clinagent_lab.recipe import Recipe

    recipe = Recipe(task_type="binary_classification", classes=["a", "b"], training={"devices": 2})
    for name in ("SLURM_NTASKS", "SLURM_JOB_NAME"):
        monkeypatch.delenv(name, raising=False)
    strategy, name = ddp_strategy(recipe)
    assert (name, strategy._start_method, strategy._process_group_backend) == ("ddp_notebook", "fork", "gloo")
    monkeypatch.setenv("SLURM_NTASKS", "2")  # srun started one task per device, each running the notebook
    monkeypatch.setenv("SLURM_JOB_NAME", "clinagent-abc")
    strategy, name = ddp_strategy(recipe)
    assert (name, strategy._start_method) == ("ddp", "popen")
    assert strategy.cluster_environment is None  # Lightning's SLURM environment joins the ranks srun started
    # one task holding several devices (a CPU job with --cpus-per-job 4 --devices 2): the kernel forks the
    # ranks and numbers them itself, not from SLURM's variables (which would make every rank 0 of 1)
    monkeypatch.setenv("SLURM_NTASKS", "1")
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "1")
    strategy, name = ddp_strategy(recipe)
    assert (name, strategy._start_method) == ("ddp_notebook", "fork")
    assert type(strategy.cluster_environment).__name__ == "LightningEnvironment"
    assert threads_per_rank(2, cores=2) == 1 and threads_per_rank(3, cores=16) == 5 and threads_per_rank(4, 2) == 1
