"""The SLURM backend against a real cluster (``tools/slurm_local.sh start``; skipped with the reason when none
answers): a notebook submitted as a job comes back through its run folder; a job that raises, one cancelled
from outside, one past its time limit are recorded with the scheduler's reason; a process killed while its job
runs is replaced by one that reattaches by job id and never submits again."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from clinagent_lab.execution import NotebookJob, SlurmBackend, SlurmOptions, read_record, slurm_available
from clinagent_lab.execution.base import write_record

REASON = slurm_available()
pytestmark = [pytest.mark.slow, pytest.mark.skipif(REASON is not None, reason=f"no SLURM cluster: {REASON}")]


def _notebook(folder: Path, *sources: str) -> Path:
    nb = new_notebook(cells=[new_code_cell("x = 0"), *[new_code_cell(s) for s in sources]])
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / "input.ipynb")
    return folder / "input.ipynb"


def _backend(**kw) -> SlurmBackend:
    backend = SlurmBackend(SlurmOptions(cpus_per_job=1, time_margin_s=60, **kw))
    backend.poll_s = 0.3
    return backend


def _run(backend: SlurmBackend, folder: Path, params=None, timeout_s=60, on_event=None):
    return backend.execute(folder / "input.ipynb", folder / "iteration.ipynb", params or {}, timeout_s=timeout_s,
                           events_path=folder / "events.jsonl", on_event=on_event)


def _jobs_named(token: str) -> list[str]:
    out = subprocess.run(["squeue", "-h", "-t", "all", "-n", f"clinagent-{token}", "-o", "%i"],
                         capture_output=True, text=True).stdout
    return out.split()


def test_notebook_runs_as_a_job_and_comes_back_through_its_folder(tmp_path):
    folder = tmp_path / "iter_01"
    _notebook(folder, "import os\nopen('artefact.txt', 'w').write(f\"{x} {os.environ['SLURM_JOB_ID']} "
                      "{os.environ['CLINAGENT_DEADLINE']} {os.environ['OMP_NUM_THREADS']}\")")
    seen: list[dict] = []
    queued: list[str] = []

    def on_event(event):
        seen.append(event)
        if event["type"] == "job" and event["state"] == "submitted":  # visible to the scheduler
            queued.extend(subprocess.run(["squeue", "-h", "-j", event["job_id"], "-o", "%i"],
                                         capture_output=True, text=True).stdout.split())

    result = _run(_backend(), folder, {"x": 7}, on_event=on_event)
    assert result.status == "ok", result.error
    record = read_record(folder)
    assert record.state == "done" and record.scheduler_state == "COMPLETED" and record.job_id
    assert queued == [record.job_id]
    x, job_id, deadline, threads = (folder / "artefact.txt").read_text().split()
    assert (x, job_id, threads) == ("7", record.job_id, "1")
    assert 0 < float(deadline) - time.time() <= 60
    kinds = [(e["type"], e.get("state")) for e in seen]
    assert kinds[:2] == [("job", "submitted"), ("job", "running")] and kinds[-1] == ("job", "completed")
    assert [e["index"] for e in seen if e["type"] == "cell"] == [0, 1, 2]
    out = nbformat.read(folder / "iteration.ipynb", as_version=4)
    assert [c.get("execution_count") for c in out.cells] == [1, 2, 3]
    assert "--cpus-per-task=1" in (folder / "job.sbatch").read_text()


def test_a_job_that_raises_is_a_crash_with_its_cell(tmp_path):
    _notebook(tmp_path, "raise ValueError('bad recipe')")
    result = _run(_backend(), tmp_path)
    assert result.status == "crash"
    assert result.error["ename"] == "ValueError" and result.error["evalue"] == "bad recipe"
    assert result.error["cell_index"] == 1  # no parameters given: no injected cell
    assert read_record(tmp_path).scheduler_state == "FAILED"


def test_scancel_from_outside_and_stop_are_told_apart(tmp_path):
    outside, stopped = tmp_path / "outside", tmp_path / "stopped"
    backend = _backend()
    handles = []
    for folder in (outside, stopped):
        _notebook(folder, "import time\ntime.sleep(120)")
        handles.append(backend.submit(NotebookJob(input=str(folder / "input.ipynb"),
                                                  output=str(folder / "iteration.ipynb"), cwd=str(folder),
                                                  events_path=str(folder / "events.jsonl"), timeout_s=120)))
    deadline = time.monotonic() + 60
    while any(backend.poll(h).state != "running" for h in handles):  # both run at once (one CPU each)
        assert time.monotonic() < deadline, "the jobs did not start"
        time.sleep(0.3)
    subprocess.run(["scancel", handles[0].job_id], check=True)
    assert backend.cancel(handles[1]) is True
    first, second = backend.wait(handles[0]), backend.wait(handles[1])
    assert first.status == "crash" and first.error["ename"] == "Cancelled"
    assert handles[0].job_id in first.error["evalue"] and "CANCELLED" in first.error["evalue"]
    assert second.status == "stopped"


def test_a_job_past_its_time_limit_is_a_timeout(tmp_path):
    _notebook(tmp_path, "import time\ntime.sleep(600)")
    backend = SlurmBackend(SlurmOptions(cpus_per_job=1, time_margin_s=0))
    result = _run(backend, tmp_path, timeout_s=1)  # --time=1: SLURM counts whole minutes
    assert result.status == "timeout"
    assert "TIMEOUT" in result.error["evalue"]
    assert read_record(tmp_path).scheduler_state == "TIMEOUT"


WAITER = """
import sys
from clinagent_lab.execution import SlurmBackend, SlurmOptions
folder = sys.argv[1]
SlurmBackend(SlurmOptions(cpus_per_job=1, time_margin_s=60)).execute(
    folder + "/input.ipynb", folder + "/iteration.ipynb", {}, timeout_s=60, events_path=folder + "/events.jsonl")
"""


def test_a_restarted_process_reattaches_and_never_submits_twice(tmp_path):
    _notebook(tmp_path, "import time\ntime.sleep(6)\nopen('done.txt', 'w').write('1')")
    waiter = subprocess.Popen([sys.executable, "-c", WAITER, str(tmp_path)])
    deadline = time.monotonic() + 60
    while (read_record(tmp_path) or None) is None or read_record(tmp_path).job_id is None:
        assert time.monotonic() < deadline and waiter.poll() is None
        time.sleep(0.2)
    waiter.kill()  # the CLI dies while its job runs
    waiter.wait()
    record = read_record(tmp_path)
    result = _run(_backend(), tmp_path)
    assert result.status == "ok", result.error
    assert _jobs_named(record.token) == [record.job_id]  # one job, the first one
    assert read_record(tmp_path).job_id == record.job_id and (tmp_path / "done.txt").exists()
    states = [json.loads(line).get("state") for line in (tmp_path / "events.jsonl").read_text().splitlines()]
    assert states.count("submitted") == 1 and states.count("completed") == 1


def test_a_job_submitted_just_before_a_crash_is_found_by_name(tmp_path):
    # the process died after sbatch answered but before the job id reached the record
    _notebook(tmp_path, "pass")
    backend = _backend()
    handle = backend.submit(NotebookJob(input=str(tmp_path / "input.ipynb"), output=str(tmp_path / "iteration.ipynb"),
                                        cwd=str(tmp_path), events_path=str(tmp_path / "events.jsonl"), timeout_s=60))
    job_id = handle.job_id
    handle.record.job_id, handle.record.state = None, "submitting"
    write_record(handle.record)
    result = _run(_backend(), tmp_path)
    assert result.status == "ok"
    assert read_record(tmp_path).job_id == job_id and _jobs_named(handle.record.token) == [job_id]
