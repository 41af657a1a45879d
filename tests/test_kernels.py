"""Warm kernels: a notebook handed to a standby kernel starts with the training stack imported, in a clean
interpreter of its own, in its own folder, with the current environment and deadline; a timeout kills it; a
standby started under other start-up variables is not used; an idle standby shuts itself down."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from clinagent_lab.notebooks.executor import DEADLINE_ENV, NotebookExecutor
from clinagent_lab.notebooks import kernels
from clinagent_lab.notebooks.kernels import (DEFAULT_GROUP_NICE, KernelPool, Standby, autogroup_nice,
                                             current_priority, environment_changes, startup_variables)

pytestmark = pytest.mark.slow

PROBE = """\
import json, os, sys
json.dump({"pid": os.getpid(), "cwd": os.getcwd(), "torch_loaded": "torch" in sys.modules,
           "user_names": sorted(k for k in globals() if not k.startswith("_") and k not in
                                ("In", "Out", "get_ipython", "exit", "quit", "open", "x", "json", "os", "sys")),
           "deadline": os.environ.get("CLINAGENT_DEADLINE"), "flag": os.environ.get("KERNEL_TEST_FLAG"),
           "threads": os.environ.get("OMP_NUM_THREADS"), "count": get_ipython().execution_count,
           "inputs": list(In)[1:-1],
           "nice": sorted({os.getpriority(os.PRIO_PROCESS, int(t)) for t in os.listdir("/proc/self/task")}),
           "group": (open("/proc/self/autogroup").read().split() or [None])[-1] if os.path.exists("/proc/self/autogroup") else None},
          open("probe.json", "w"))
leftover = 1
"""


def _notebook(folder: Path, *sources: str) -> Path:
    nb = new_notebook(cells=[new_code_cell("x = 0"), *[new_code_cell(s) for s in sources]])
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "in.ipynb"
    nbformat.write(nb, path)
    return path


def _wait_ready(pool: KernelPool, timeout: float = 120) -> Standby:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        ready = [s for s in pool.standbys if s.ready]
        if ready:
            return ready[0]
        time.sleep(0.2)
    raise AssertionError(f"no standby became ready: {[s.state() for s in pool.standbys]}")


def _run(ex: NotebookExecutor, folder: Path, timeout_s: float = 120, **kw):
    nb = _notebook(folder, PROBE)
    work = folder / "work"
    result = ex.execute(nb, folder / "out.ipynb", {"x": 1}, timeout_s=timeout_s, events_path=folder / "ev.jsonl",
                        cwd=work, **kw)
    probe = json.loads((work / "probe.json").read_text()) if (work / "probe.json").exists() else None
    return result, probe


def _gone(pid: int, within_s: float = 10) -> bool:
    end = time.monotonic() + within_s
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.2)
    return False


@pytest.fixture
def pool():
    p = KernelPool(size=1, preload="torch")
    yield p
    p.close()


def test_warm_kernel_is_fresh_imported_in_place_and_used_once(pool, tmp_path, monkeypatch):
    (tmp_path / "a" / "work").mkdir(parents=True)
    (tmp_path / "b" / "work").mkdir(parents=True)
    ex = NotebookExecutor(pool=pool)
    assert ex.prewarm() is True
    assert ex.prewarm() is False  # one standby is enough
    standby = _wait_ready(pool)
    kernel_pid = int(standby.state()["kernel_pid"])
    if pool.background:  # warming up at the lowest priority, its session's scheduler group included
        assert os.getpriority(os.PRIO_PROCESS, kernel_pid) == 19
        assert autogroup_nice(kernel_pid) in (19, None)
    monkeypatch.setenv("KERNEL_TEST_FLAG", "set after the standby started")
    first, probe_a = _run(ex, tmp_path / "a", timeout_s=90)
    assert first.status == "ok", first.error
    assert first.warm is True
    assert probe_a["torch_loaded"] is True  # imported before the notebook asked for it
    assert probe_a["user_names"] == []  # a clean namespace
    # cells count from 1: only the notebook's own cells ran with history (the warm-up and the job prelude ran
    # silently); a stray execution would show here with its source
    assert [s.strip().splitlines()[-1] for s in probe_a["inputs"]] == ["x = 0", "x = 1"], probe_a["inputs"]
    assert probe_a["count"] == 3
    assert Path(probe_a["cwd"]) == (tmp_path / "a" / "work").resolve()
    assert probe_a["flag"] == "set after the standby started"
    assert probe_a["nice"] == [os.getpriority(os.PRIO_PROCESS, 0)]  # the notebook runs at the caller's priority
    if probe_a["group"] is not None:  # back at this process's group niceness (neutral when it has no group)
        assert int(probe_a["group"]) == current_priority()[1]
    assert 0 < float(probe_a["deadline"]) - time.time() <= 90
    # while the first notebook ran, the next kernel was started; it is a different process
    _wait_ready(pool)
    second, probe_b = _run(ex, tmp_path / "b")
    assert second.status == "ok" and second.warm is True
    assert probe_b["pid"] != probe_a["pid"]
    assert _gone(probe_a["pid"])  # each kernel runs one notebook, then shuts down
    out = nbformat.read(tmp_path / "b" / "out.ipynb", as_version=4)
    assert [c.get("execution_count") for c in out.cells] == [1, 2, 3]


def test_caller_without_an_autogroup_gives_the_kernel_a_neutral_group(pool, tmp_path, monkeypatch):
    # a caller in the root scheduler group (a container whose first process never started a session) reads an
    # empty /proc/self/autogroup; the kernel, in a session of its own, must not keep the standby's nice 19 group
    real = kernels.autogroup_nice
    monkeypatch.setattr(kernels, "autogroup_nice", lambda pid="self": None if pid == "self" else real(pid))
    assert current_priority() == [os.getpriority(os.PRIO_PROCESS, 0), DEFAULT_GROUP_NICE]
    (tmp_path / "work").mkdir()
    ex = NotebookExecutor(pool=pool)
    ex.prewarm()
    standby = _wait_ready(pool)
    if not pool.background or real(int(standby.state()["kernel_pid"])) is None:
        pytest.skip("standbys are not lowered on this machine (no CAP_SYS_NICE, or no autogroups)")
    assert real(int(standby.state()["kernel_pid"])) == 19
    result, probe = _run(ex, tmp_path, prewarm_next=False)
    assert result.status == "ok" and result.warm is True, result.error
    assert int(probe["group"]) == DEFAULT_GROUP_NICE
    assert probe["nice"] == [os.getpriority(os.PRIO_PROCESS, 0)]


def test_a_job_handed_over_while_the_kernel_starts_warms_it_at_the_callers_priority(pool):
    # the host gives a standby its priority back when it hands over a job; before the kernel's pid is known
    # only the worker can be reniced, and the kernel must not then warm up at nice 19 (starved when loaded)
    NotebookExecutor(pool=pool).prewarm()
    standby = pool.standbys[0]
    if not pool.background:
        pytest.skip("standbys are not lowered on this machine (no CAP_SYS_NICE)")
    if standby.state().get("kernel_pid") is not None:
        pytest.skip("the kernel started before the job could be handed over")
    standby.restore_priority()  # what send() does first
    ready = _wait_ready(pool)
    assert os.getpriority(os.PRIO_PROCESS, int(ready.state()["kernel_pid"])) == os.getpriority(os.PRIO_PROCESS, 0)


def test_standby_with_other_startup_variables_is_not_used(pool, tmp_path, monkeypatch):
    (tmp_path / "work").mkdir()
    ex = NotebookExecutor(pool=pool)
    ex.prewarm()
    stale = _wait_ready(pool)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    result, probe = _run(ex, tmp_path, prewarm_next=False)
    assert result.status == "ok" and result.warm is False
    assert probe["threads"] == "1"
    assert not stale.alive and not pool.standbys


def test_timeout_kills_the_warm_kernel(pool, tmp_path):
    ex = NotebookExecutor(pool=pool)
    ex.prewarm()
    _wait_ready(pool)
    nb = _notebook(tmp_path, "import os, time\nopen('pid', 'w').write(str(os.getpid()))\ntime.sleep(300)")
    result = ex.execute(nb, tmp_path / "out.ipynb", {}, timeout_s=6, events_path=tmp_path / "ev.jsonl",
                        cwd=tmp_path, prewarm_next=False)
    assert result.status == "timeout" and result.warm is True
    assert _gone(int((tmp_path / "pid").read_text()))
    assert not ex.running


def test_idle_standby_shuts_down_by_itself(tmp_path):
    pool = KernelPool(size=1, preload="", idle_s=1.0)
    try:
        pool.refill("python3")
        standby = pool.standbys[0]
        standby.proc.wait(timeout=120)
        assert standby.state()["state"] == "ready"
        assert _gone(int(standby.state()["kernel_pid"]))
        assert pool.take("python3")[1] is False  # the exited standby is not handed out
    finally:
        pool.close()


def test_pool_off_and_environment_helpers(monkeypatch):
    monkeypatch.setenv("CLINAGENT_WARM_KERNELS", "0")
    assert KernelPool().size == 0 and KernelPool().refill("python3") is False
    assert startup_variables({"PATH": "/bin", "CUDA_MODULE_LOADING": "LAZY", "CLINAGENT_X": "1"}) == \
        {"PATH": "/bin", "CLINAGENT_X": "1"}
    assert environment_changes({"A": "1", "B": "2"}, {"A": "1", "B": "3", "C": "4"}) == ({"B": "3", "C": "4"}, [])
    assert environment_changes({"A": "1", DEADLINE_ENV: "5"}, {"A": "1"}) == ({}, [DEADLINE_ENV])
