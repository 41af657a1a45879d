"""A JupyterLab server restarted while a session's SLURM job runs: the stopping server leaves the job running,
the next one reattaches to it by its job id as it starts (no click, no second submission), decides it and goes
on with the loop. Skipped without a cluster."""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from clinagent_lab.execution import read_record, slurm_available
from clinagent_lab.records import Session

from .lab_fixtures import lab_api, running_lab

REASON = slurm_available()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(REASON is not None, reason=f"no SLURM cluster: {REASON}")]
TOKEN = "clinagent-slurm-token"
REQUEST = "flag a chest drain on chest x-rays"


def _api(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    return lab_api(url, TOKEN, path, body)


def _until(what: str, check: Any, timeout: float = 300.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = check()
        if got:
            return got
        time.sleep(0.5)  # a poll interval, not a guess at how long the work takes
    raise AssertionError(f"{what} did not happen in {timeout:.0f} s")


def test_a_restarted_server_collects_its_running_job_by_id(tmp_path: Path, monkeypatch):
    from clinagent_lab.data.synth import generate

    root = tmp_path / "root"
    generate("chest_drain", root / "data", n=60, image_size=16)
    config = tmp_path / "clinagent.toml"
    config.write_text('[execution]\nbackend = "slurm"\n[execution.slurm]\ncpus_per_job = 1\ntime_margin_s = 120\n')
    monkeypatch.setenv("CLINAGENT_CONFIG", str(config))
    args = ["--ClinagentApp.iteration_minutes=4", "--ClinagentApp.max_iterations=2"]
    (tmp_path / "first").mkdir()
    with running_lab(tmp_path / "first", root, token=TOKEN, log_name="slurm_server_first.log",
                     extra_args=args) as url:
        created = _api(url, "sessions", {"request": REQUEST, "data_path": "data"})["session"]
        sid, out = created["id"], Path(created["out_dir"])
        _api(url, f"sessions/{sid}/proposal", {"action": "edit", "changes": {"training.max_epochs": 2}})
        _api(url, f"sessions/{sid}/start", {})
        folder = out / "iterations" / "iter_01"
        submitted = _until("the first job's submission", lambda: (r := read_record(folder)) and r.job_id and r)
    # the first server has shut down: the job was left to run, the iteration is still recorded as running
    assert Session.load(out).iterations[0].status == "running"
    assert read_record(folder).scheduler_state != "CANCELLED"

    (tmp_path / "second").mkdir()
    with running_lab(tmp_path / "second", root, token=TOKEN, log_name="slurm_server_second.log",
                     extra_args=args) as url:
        got = _until("the reattached iteration's decision",
                     lambda: (s := _api(url, f"sessions/{sid}")["session"])["iterations"][0]["status"] != "running"
                     and s["proposal"] is not None and s)  # decided, and the loop went on to the next proposal
        assert got["iterations"][0]["status"] == "ok", got["iterations"][0]["error"]
        events = _api(url, f"sessions/{sid}/events")["events"]
    assert read_record(folder).job_id == submitted.job_id  # the job it reattached to, not a new one
    names = subprocess.run(["squeue", "-h", "-t", "all", "-n", f"clinagent-{submitted.token}", "-o", "%i"],
                           capture_output=True, text=True).stdout.split()
    assert names == [submitted.job_id]
    assert [a.kind for a in Session.load(out).audit].count("iteration_reattached") == 1
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))  # seq went on across the restart
    assert any(e["type"] == "iteration_finished" and e["iteration"] == 1 for e in events)
