"""Warm kernels: a notebook handed to a standby runs in the kernel that was started, and had torch imported,
before the notebook existed; it runs there alone (never a second notebook), in its own folder, with the current
environment and deadline; a timeout, a stop or Ctrl-C shuts it down promptly; a kernel that dies is a crash;
a standby started under other start-up variables is not used; an idle standby is shut down."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from clinagent_lab.notebooks.executor import DEADLINE_ENV, NotebookExecutor
from clinagent_lab.notebooks.kernels import KernelPool, WarmKernel, environment_changes, startup_variables
from clinagent_lab.notebooks.priority import current_priority

pytestmark = pytest.mark.slow

PROBE = """\
import json, os, sys
json.dump({"pid": os.getpid(), "cwd": os.getcwd(), "torch_loaded": "torch" in sys.modules,
           "user_names": sorted(k for k in globals() if not k.startswith("_") and k not in
                                ("In", "Out", "get_ipython", "exit", "quit", "open", "x", "json", "os", "sys")),
           "deadline": os.environ.get("CLINAGENT_DEADLINE"), "flag": os.environ.get("KERNEL_TEST_FLAG"),
           "threads": os.environ.get("OMP_NUM_THREADS"), "inputs": list(In)[1:],
           "nice": sorted({os.getpriority(os.PRIO_PROCESS, int(t)) for t in os.listdir("/proc/self/task")})},
          open("probe.json", "w"))
"""


def _notebook(folder: Path, *sources: str) -> Path:
    nb = new_notebook(cells=[new_code_cell("x = 0"), *[new_code_cell(s) for s in sources]])
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "in.ipynb"
    nbformat.write(nb, path)
    return path


def _standby(pool: KernelPool, timeout: float = 300) -> WarmKernel:
    """The pool's standby, once warm."""
    kernel = pool.standbys[0]
    assert kernel.wait_ready(timeout), kernel.error
    return kernel


def _run(ex: NotebookExecutor, folder: Path, *sources: str, timeout_s: float = 120, **kw):
    nb = _notebook(folder, *(sources or (PROBE,)))
    work = folder / "work"
    work.mkdir(parents=True, exist_ok=True)
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
        time.sleep(0.1)
    return False


@pytest.fixture
def pool():
    p = KernelPool(size=1, preload="torch")
    yield p
    p.close()


def test_warm_kernel_is_pre_started_imported_in_place_and_used_once(pool, tmp_path, monkeypatch):
    ex = NotebookExecutor(pool=pool)
    assert ex.prewarm() is True
    assert ex.prewarm() is False  # one standby is enough
    standby = _standby(pool)
    monkeypatch.setenv("KERNEL_TEST_FLAG", "set after the standby started")
    first, probe_a = _run(ex, tmp_path / "a", timeout_s=90, prewarm_next=False)
    assert first.status == "ok", first.error
    assert first.warm is True
    assert probe_a["pid"] == standby.pid  # the kernel started before the notebook existed ran it
    assert probe_a["torch_loaded"] is True  # imported before the notebook, which never imports it
    assert probe_a["user_names"] == []  # a clean namespace
    # the warm-up and the job prelude ran silently: only the notebook's own cells are in the history, in order
    last_lines = [s.strip().splitlines()[-1].strip() for s in probe_a["inputs"]]
    assert last_lines == ["x = 0", "x = 1", PROBE.strip().splitlines()[-1].strip()]
    out = nbformat.read(tmp_path / "a" / "out.ipynb", as_version=4)
    assert [c.get("execution_count") for c in out.cells] == [1, 2, 3]
    assert Path(probe_a["cwd"]) == (tmp_path / "a" / "work").resolve()
    assert probe_a["flag"] == "set after the standby started"
    assert probe_a["nice"] == [os.getpriority(os.PRIO_PROCESS, 0)]  # the notebook runs at the caller's priority
    assert 0 < float(probe_a["deadline"]) - time.time() <= 90
    assert _gone(probe_a["pid"])  # each kernel runs one notebook, then is shut down
    assert standby.closed and not pool.standbys  # and never goes back into the pool
    # the next notebook gets another pre-started kernel, never the first one again
    ex.prewarm()
    second_standby = _standby(pool)
    second, probe_b = _run(ex, tmp_path / "b", prewarm_next=False)
    assert second.status == "ok" and second.warm is True
    assert probe_b["pid"] == second_standby.pid != probe_a["pid"]


def test_next_kernel_starts_while_the_notebook_runs(pool, tmp_path):
    pool.refill_on = "started"
    ex = NotebookExecutor(pool=pool)
    result, probe = _run(ex, tmp_path, PROBE + "import time\ntime.sleep(1)")
    assert result.status == "ok" and result.warm is False  # nothing was warm: started on demand
    [standby] = pool.standbys  # started while the notebook ran, not after it
    if pool.background:  # warming up at the lowest priority (no fit_finished event raised it)
        end = time.monotonic() + 120
        while not (standby.pid and os.getpriority(os.PRIO_PROCESS, standby.pid) == 19):
            assert time.monotonic() < end and not standby.dead, "the standby was not lowered"
            time.sleep(0.05)
        pool.promote()  # no need to wait for a starved warm-up here
    assert standby.wait_ready(300) and standby.pid != probe["pid"] and not standby.taken


def test_a_standby_still_warming_when_training_ends_gets_the_callers_priority(pool):
    # the executor promotes standbys at fit_finished: on a machine loaded by others, nice 19 would starve them
    if not pool.background:
        pytest.skip("standbys are not lowered on this machine (no CAP_SYS_NICE)")
    pool.refill("python3")
    pool.promote()  # before its kernel (and so its pid) exists, or just after: either way it ends at ours
    # (the executor does this at fit_finished)
    standby = pool.standbys[0]
    assert standby.wait_ready(300), standby.error
    assert os.getpriority(os.PRIO_PROCESS, standby.pid) == os.getpriority(os.PRIO_PROCESS, 0)
    assert not standby.taken  # still a standby, for the next notebook


def test_standby_with_other_startup_variables_is_not_used(pool, tmp_path, monkeypatch):
    ex = NotebookExecutor(pool=pool)
    ex.prewarm()
    stale = _standby(pool)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    result, probe = _run(ex, tmp_path, prewarm_next=False)
    assert result.status == "ok" and result.warm is False
    assert probe["threads"] == "1" and probe["pid"] != stale.pid
    assert stale.closed and not pool.standbys


def test_timeout_shuts_the_kernel_down(pool, tmp_path):
    ex = NotebookExecutor(pool=pool)
    ex.prewarm()
    _standby(pool)
    t = time.monotonic()
    result, _ = _run(ex, tmp_path, "import os, time\nopen('pid', 'w').write(str(os.getpid()))\ntime.sleep(300)",
                     timeout_s=6, prewarm_next=False)
    assert result.status == "timeout" and result.warm is True
    assert time.monotonic() - t < 30
    assert result.error["cell_index"] == 2  # after the parameters papermill injected
    assert _gone(int((tmp_path / "work" / "pid").read_text()))
    assert not ex.running


def test_stop_from_another_thread_ends_the_notebook_promptly(pool, tmp_path):
    ex = NotebookExecutor(pool=pool)
    pid_file = tmp_path / "work" / "pid"

    def stop_when_running() -> None:
        while not pid_file.exists():
            time.sleep(0.05)
        ex.stop()  # the server's Stop button, from its own thread

    threading.Thread(target=stop_when_running, daemon=True).start()
    t = time.monotonic()
    result, _ = _run(ex, tmp_path, "import os, time\nopen('pid', 'w').write(str(os.getpid()))\ntime.sleep(300)",
                     timeout_s=280, prewarm_next=False)
    assert result.status == "stopped" and result.error["ename"] == "Stopped"
    assert time.monotonic() - t < 120
    assert _gone(int(pid_file.read_text()))
    assert ex.stop() is False  # nothing runs any more


def test_stop_while_the_kernel_starts_is_a_stop(tmp_path):
    pool = KernelPool(size=0, preload="torch")  # a kernel started on demand, stopped before it is warm
    ex = NotebookExecutor(pool=pool)

    def stop_once_running() -> None:
        while not ex.running:
            time.sleep(0.01)
        ex.stop()  # the kernel is still starting (importing torch takes seconds)

    threading.Thread(target=stop_once_running, daemon=True).start()
    t = time.monotonic()
    result, probe = _run(ex, tmp_path, "import time\ntime.sleep(300)", timeout_s=280, prewarm_next=False)
    assert result.status == "stopped" and probe is None
    assert time.monotonic() - t < 120


def test_ctrl_c_shuts_the_kernel_down(pool, tmp_path):
    ex = NotebookExecutor(pool=pool)
    pid_file = tmp_path / "work" / "pid"

    def interrupt_when_running() -> None:
        while not pid_file.exists():
            time.sleep(0.05)
        signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    threading.Thread(target=interrupt_when_running, daemon=True).start()
    with pytest.raises(KeyboardInterrupt):
        _run(ex, tmp_path, "import os, time\nopen('pid', 'w').write(str(os.getpid()))\ntime.sleep(300)",
             timeout_s=280, prewarm_next=False)
    assert _gone(int(pid_file.read_text()))
    assert not ex.running


def test_a_kernel_that_dies_is_a_crash_and_the_next_notebook_runs(pool, tmp_path):
    ex = NotebookExecutor(pool=pool)
    result, _ = _run(ex, tmp_path / "a", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", timeout_s=120)
    assert result.status == "crash"
    assert result.error["ename"] == "DeadKernelError" and result.error["cell_index"] == 2
    second, probe = _run(ex, tmp_path / "b", prewarm_next=False)
    assert second.status == "ok" and probe["torch_loaded"] is True


def test_idle_standby_is_shut_down(tmp_path):
    pool = KernelPool(size=1, preload="", idle_s=1.0)
    try:
        pool.refill("python3")
        standby = pool.standbys[0]
        assert standby.wait_ready(300), standby.error
        assert _gone(standby.pid, within_s=30)
        assert standby.closed and not pool.standbys
    finally:
        pool.close()


def test_pool_off_and_environment_helpers(monkeypatch):
    monkeypatch.setenv("CLINAGENT_WARM_KERNELS", "0")
    assert KernelPool().size == 0 and KernelPool().refill("python3") is False
    assert startup_variables({"PATH": "/bin", "CUDA_MODULE_LOADING": "LAZY", "CLINAGENT_X": "1"}) == \
        {"PATH": "/bin", "CLINAGENT_X": "1"}
    assert environment_changes({"A": "1", "B": "2"}, {"A": "1", "B": "3", "C": "4"}) == ({"B": "3", "C": "4"}, [])
    assert environment_changes({"A": "1", DEADLINE_ENV: "5"}, {"A": "1"}) == ({}, [DEADLINE_ENV])
    assert len(current_priority()) == 2


def test_opencv_library_path_does_not_discard_the_standby():
    # importing OpenCV (the image cache does, in this process) adds its bundled libraries to LD_LIBRARY_PATH;
    # a kernel adds them again on its own import, so a standby started before that is still usable
    import sysconfig

    site = sysconfig.get_paths()["purelib"]
    assert startup_variables({"LD_LIBRARY_PATH": f"{site}/cv2/../../lib64"}) == {}
    assert startup_variables({"LD_LIBRARY_PATH": f"/opt/cuda/lib64:{site}/cv2/../../lib64"}) == \
        {"LD_LIBRARY_PATH": "/opt/cuda/lib64"}


def test_prewarm_leaves_the_host_its_cpu_until_the_kernel_is_handed_over(pool, tmp_path):
    # before the first notebook the host measures the machine's training speed: the standby must not compete
    if not pool.background:
        pytest.skip("standbys are not lowered on this machine (no CAP_SYS_NICE)")
    ex = NotebookExecutor(pool=pool)
    assert ex.prewarm() is True
    standby = pool.standbys[0]
    end = time.monotonic() + 120
    while not (standby.pid and os.getpriority(os.PRIO_PROCESS, standby.pid) == 19):  # lowered once launched
        assert time.monotonic() < end and not standby.dead, "the standby was not lowered"
        time.sleep(0.05)
    assert not standby.taken and os.getpriority(os.PRIO_PROCESS, standby.pid) == 19
    result, probe = _run(ex, tmp_path, prewarm_next=False)
    assert result.status == "ok" and result.warm is True and probe["pid"] == standby.pid
    assert probe["nice"] == [os.getpriority(os.PRIO_PROCESS, 0)]  # handed over: the caller's priority
