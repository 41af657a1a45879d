"""A whole session on the SLURM backend (tiny synthetic data): every iteration and the once-only test run as
jobs the scheduler lists, the backend is written into the session, and a CLI killed while its job runs is
resumed by ``clinagent resume`` without a second submission or a lost result. Skipped without a cluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from clinagent_lab.agent.engine import Engine
from clinagent_lab.execution import SlurmBackend, read_record, slurm_available
from clinagent_lab.records import Session
from tests.conftest import FAST

REASON = slurm_available()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(REASON is not None, reason=f"no SLURM cluster: {REASON}")]
REQUEST = "pneumothorax on chest X-rays; don't let the model cheat by looking at chest drains"
SLURM = {"backend": "slurm", "slurm": {"cpus_per_job": 1, "time_margin_s": 120}}


def _scheduler_knows(job_id: str) -> bool:
    out = subprocess.run(["squeue", "-h", "-t", "all", "-j", job_id, "-o", "%i"], capture_output=True, text=True)
    return out.stdout.split() == [job_id]


def _job_span(folder: Path) -> tuple[float, float]:
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    times = {e["state"]: e["time"] for e in events if e["type"] == "job"}
    return times["running"], times["completed"]


def test_parallel_session_runs_rounds_of_jobs_and_its_test_once(drain_data, tmp_path, monkeypatch):
    monkeypatch.delenv("CLINAGENT_BACKEND", raising=False)
    engine = Engine.create(REQUEST, drain_data, tmp_path, max_iterations=3, iteration_minutes=4,
                           recipe_overrides=FAST, execution={**SLURM, "parallel": 2})
    assert isinstance(engine.executor, SlurmBackend) and engine.parallel == 2
    events: list[dict] = []
    s = engine.run(on_event=events.append)
    assert [it.status for it in s.iterations] == ["ok", "ok", "ok"], [it.error for it in s.iterations]
    # round 1: the baseline alone; round 2: two different candidates, run at the same time
    assert [it.round for it in s.iterations] == [1, 2, 2]
    assert s.iterations[1].idea != s.iterations[2].idea
    (start_a, end_a), (start_b, end_b) = (_job_span(Path(it.output_dir)) for it in s.iterations[1:])
    assert start_a < end_b and start_b < end_a
    # decided in order under the same rules: each against the best before it
    assert s.iterations[0].decision == "baseline"
    assert all(it.decision in ("kept", "discarded") for it in s.iterations[1:])
    folders = [Path(it.output_dir) for it in s.iterations] + [tmp_path / "final_test"]
    records = [read_record(f) for f in folders]
    assert all(r.backend == "slurm" and r.scheduler_state == "COMPLETED" for r in records)
    assert [it.job_id for it in s.iterations] == [r.job_id for r in records[:3]]
    assert len({r.job_id for r in records}) == 4 and all(_scheduler_knows(r.job_id) for r in records)
    assert s.test_reads == 1 and s.final_test is not None
    assert json.loads((tmp_path / "final_test" / "run_info.json").read_text())["test_reads"] == 1
    assert {e.get("state") for e in events if e["type"] == "job"} >= {"submitted", "running", "completed"}
    # written into the session: reopened (or rerun), it goes to the cluster again, K candidates a round
    assert Session.load(tmp_path).execution["backend"] == "slurm"
    reopened = Engine.open(tmp_path)
    assert isinstance(reopened.executor, SlurmBackend) and reopened.parallel == 2


def test_cli_killed_mid_iteration_is_resumed_without_a_second_submission(drain_data, tmp_path):
    env = {**os.environ, "CLINAGENT_BACKEND": "slurm", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "clinagent_lab.cli", "run", "--intent", REQUEST, "--data", str(drain_data),
           "--out", str(tmp_path), "--max-iterations", "2", "--iteration-minutes", "4", "--cpus-per-job", "1",
           *[a for k, v in FAST.items() for a in ("--set", f"{k}={v}")]]
    cli = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                           start_new_session=True)
    first = tmp_path / "iterations" / "iter_01"
    deadline = time.monotonic() + 120
    while read_record(first) is None or read_record(first).job_id is None:
        assert time.monotonic() < deadline and cli.poll() is None, "the first job was not submitted"
        time.sleep(0.2)
    os.killpg(cli.pid, signal.SIGKILL)  # the terminal closes while the job runs
    cli.wait()
    submitted = read_record(first)
    resumed = subprocess.run([sys.executable, "-m", "clinagent_lab.cli", "resume", str(tmp_path)], env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    s = Session.load(tmp_path)
    assert [it.status for it in s.iterations] == ["ok", "ok"], [it.error for it in s.iterations]
    assert read_record(first).job_id == submitted.job_id  # the job it reattached to, not a new one
    names = subprocess.run(["squeue", "-h", "-t", "all", "-n", f"clinagent-{submitted.token}", "-o", "%i"],
                           capture_output=True, text=True).stdout.split()
    assert names == [submitted.job_id]
    assert [a.kind for a in s.audit].count("iteration_reattached") == 1
    assert s.final_test is not None and s.test_reads == 1


def test_one_job_trains_in_two_processes_and_tests_once(drain_data, tmp_path, monkeypatch):
    """Several devices inside one job: a CPU job of 2 cores, one task, whose kernel forks the two DDP ranks
    (SLURM's own variables say 'one task' and must not number the ranks)."""
    from clinagent_lab.data.cache import usable_cores
    from clinagent_lab.runfolder import RunFolder

    if usable_cores() < 2:
        pytest.skip("two training processes need two cores")
    monkeypatch.delenv("CLINAGENT_BACKEND", raising=False)
    engine = Engine.create(REQUEST, drain_data, tmp_path, max_iterations=1, iteration_minutes=4,
                           recipe_overrides={**FAST, "training.max_epochs": 2, "training.devices": 2,
                                             "training.accelerator": "cpu"},
                           execution={"backend": "slurm", "slurm": {"cpus_per_job": 2, "time_margin_s": 120}})
    s = engine.run()
    (it,) = s.iterations
    assert it.status == "ok", it.error
    folder = Path(it.output_dir)
    assert "#SBATCH --cpus-per-task=2" in (folder / "job.sbatch").read_text()
    info = RunFolder.iteration(tmp_path, 1).read_run_info()
    assert (info.world_size, info.strategy) == (2, "ddp_notebook") and info.epochs_run == 2
    record = read_record(folder)
    assert record.scheduler_state == "COMPLETED" and _scheduler_knows(record.job_id)
    assert s.test_reads == 1 and read_record(tmp_path / "final_test").scheduler_state == "COMPLETED"
