"""Subprocess entry point: hold one kernel, warm it, run one notebook in it with papermill, write a result file.

``python -m clinagent_lab.notebooks.worker STATE.json [--kernel NAME] [--idle-s S] [--preload MODULES]``

1. starts a kernel (``jupyter_client``) and writes ``{"state": "starting", "kernel_pid": ...}`` to STATE.json;
2. warms it: imports ``--preload`` (torch, Lightning and the notebook runtime by default), silently, so the
   notebook's execution counts and outputs are as in a fresh kernel, then writes ``{"state": "ready", ...}``;
3. reads one line from standard input: the path of a job file holding ``input``, ``output``, ``parameters``,
   ``cwd``, ``deadline``, ``env_set``, ``env_unset``, ``events_path`` and ``result_path``;
4. moves the kernel to the job's folder, brings its environment up to date (the variables that changed since it
   started, and the deadline ``CLINAGENT_DEADLINE``), runs the notebook with papermill on that kernel, writes
   the result file and shuts the kernel down.

A worker that gets no job within ``--idle-s`` seconds, or whose standard input closes (the parent went away),
shuts its kernel down and exits. Each kernel runs one notebook only: warm, never reused.

The executor starts this in its own process group and learns the kernel's pid from STATE.json, so a timeout or
a stop kills both the worker and the kernel (which runs in a session of its own).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from .events import DEADLINE_ENV, write_event
from .kernels import BACKGROUND_NICE, _renice, current_priority

__all__ = ["main", "run_job", "cell_hook", "error_of", "DEFAULT_PRELOAD"]

#: modules a warm kernel imports before it is handed a notebook (what the templates' first cell imports)
DEFAULT_PRELOAD = ("numpy", "pandas", "torch", "lightning", "clinagent_lab.notebooks.runtime",
                   "clinagent_lab.tasks.classification", "clinagent_lab.models.classifier")


def cell_hook(events_path: str | None, total: int):
    """nbclient's ``on_cell_start`` hook writing a ``cell`` event as each cell starts."""

    def on_cell_start(cell: Any, cell_index: int, **_: Any) -> None:
        write_event(events_path, "cell", index=cell_index, total=total,
                    tags=list(cell.get("metadata", {}).get("tags", [])))

    return on_cell_start


def cells_to_run(input_path: str, parameters: dict[str, Any] | None) -> int:
    """How many cells papermill will run: the notebook's, plus the parameters cell it injects (it replaces one
    injected before, as in a rerun of an executed notebook)."""
    import nbformat  # deferred: its schema validation takes seconds to import

    nb = nbformat.read(input_path, as_version=4)
    injected = any("injected-parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells)
    return len(nb.cells) + (1 if parameters and not injected else 0)


def error_of(exc: BaseException) -> dict[str, Any]:
    from papermill.exceptions import PapermillExecutionError  # deferred: papermill runs in the worker only

    if isinstance(exc, PapermillExecutionError):
        return {"ename": exc.ename, "evalue": exc.evalue, "cell_index": exc.cell_index,
                "exec_count": exc.exec_count, "traceback": _strip_ansi("\n".join(exc.traceback))[-8000:]}
    return {"ename": type(exc).__name__, "evalue": str(exc), "cell_index": None,
            "traceback": traceback.format_exc()[-8000:]}


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


def _write_state(path: Path, **state: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({**state, "time": time.time(), "worker_pid": os.getpid()}), encoding="utf-8")
    os.replace(tmp, path)


class KernelHolder:
    """One kernel started by this worker, driven by silent requests before papermill takes it over."""

    def __init__(self, kernel_name: str) -> None:
        # deferred: jupyter_client and its zmq start-up are needed by the worker process only
        from jupyter_client.manager import AsyncKernelManager
        from jupyter_core.utils import run_sync  # deferred with jupyter_client

        self._run_sync = run_sync
        self.km = AsyncKernelManager(kernel_name=kernel_name)
        self._kc: Any = None
        run_sync(self.km.start_kernel)()

    @property
    def pid(self) -> int | None:
        provisioner = getattr(self.km, "provisioner", None)
        pid = getattr(provisioner, "pid", None)
        return int(pid) if pid else None

    def run_silently(self, code: str, timeout_s: float = 300.0) -> dict[str, Any]:
        """Execute ``code`` without history, outputs or an execution count; returns the reply's content."""
        if self._kc is None:
            self._kc = self.km.blocking_client()
            self._kc.start_channels()
            self._kc.wait_for_ready(timeout=timeout_s)
        msg_id = self._kc.execute(code, silent=True, store_history=False)
        deadline = time.monotonic() + timeout_s
        while True:
            reply = self._kc.get_shell_msg(timeout=max(0.1, deadline - time.monotonic()))
            if reply["parent_header"].get("msg_id") == msg_id:
                return reply["content"]

    def release_client(self) -> None:
        """Close this worker's own channels before papermill opens its client."""
        if self._kc is not None:
            self._kc.stop_channels()
            self._kc = None

    def shutdown(self) -> None:
        try:
            self._run_sync(self.km.shutdown_kernel)(now=True)
        except Exception:  # noqa: BLE001 - the kernel may already be gone (killed, crashed)
            pass


def _preload_code(modules: list[str]) -> str:
    lines = ["import importlib as _clinagent_importlib"]
    for name in modules:
        lines.append(f"try:\n    _clinagent_importlib.import_module({name!r})\nexcept Exception:\n    pass")
    lines.append("del _clinagent_importlib")
    return "\n".join(lines)


def _job_prelude(job: dict[str, Any]) -> str:
    lines = ["import os as _clinagent_os", f"_clinagent_os.chdir({str(job['cwd'])!r})"]
    if job.get("env_set"):
        lines.append(f"_clinagent_os.environ.update({dict(job['env_set'])!r})")
    for name in job.get("env_unset") or []:
        lines.append(f"_clinagent_os.environ.pop({name!r}, None)")
    if job.get("deadline"):
        lines.append(f"_clinagent_os.environ[{DEADLINE_ENV!r}] = {str(job['deadline'])!r}")
    else:
        lines.append(f"_clinagent_os.environ.pop({DEADLINE_ENV!r}, None)")
    lines.append("del _clinagent_os")
    return "\n".join(lines)


def _wait_for_job(idle_s: float) -> str | None:
    """The job path from standard input, or None on end of input or after ``idle_s`` seconds."""
    ready, _, _ = select.select([sys.stdin], [], [], idle_s)
    if not ready:
        return None
    line = sys.stdin.readline().strip()
    return line or None


def run_job(job: dict[str, Any], kernel: KernelHolder | None) -> dict[str, Any]:
    """Run one notebook with papermill on ``kernel`` (or, without one, in a kernel papermill starts with this
    process's environment, as a cluster job does); returns ``{"status", "error"}``."""
    try:
        import papermill as pm  # deferred: notebook execution happens in the worker only

        if kernel is not None:
            prelude = kernel.run_silently(_job_prelude(job))
            if prelude.get("status") != "ok":
                raise RuntimeError(f"could not prepare the kernel for {job['cwd']}: {prelude.get('evalue')}")
            kernel.release_client()
        hook = cell_hook(job.get("events_path"), cells_to_run(job["input"], job.get("parameters")))
        pm.execute_notebook(job["input"], job["output"], parameters=job.get("parameters") or {},
                            kernel_name=job.get("kernel_name") or None, cwd=job.get("cwd"),
                            on_cell_start=hook, progress_bar=False, log_output=False,
                            request_save_on_cell_execute=True, km=kernel.km if kernel else None)
        return {"status": "ok", "error": None}
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a recorded status
        return {"status": "crash", "error": error_of(exc)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clinagent_lab.notebooks.worker")
    parser.add_argument("state", help="JSON file this worker writes its state to")
    parser.add_argument("--kernel", default="python3")
    parser.add_argument("--idle-s", type=float, default=600.0, help="exit when no job comes in this long")
    parser.add_argument("--background", action="store_true",
                        help="warm up at the lowest CPU priority, the kernel's session included")
    parser.add_argument("--preload", default=",".join(DEFAULT_PRELOAD),
                        help="comma-separated modules the kernel imports before its notebook ('' = none)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    state = Path(args.state)
    _write_state(state, state="starting", kernel_pid=None)
    try:
        kernel = KernelHolder(args.kernel)
    except BaseException as exc:  # noqa: BLE001 - an unknown kernel name, a broken environment
        _write_state(state, state="failed", kernel_pid=None, error=error_of(exc))
        line = _wait_for_job(args.idle_s)
        if line:
            job = json.loads(Path(line).read_text(encoding="utf-8"))
            Path(job["result_path"]).write_text(json.dumps({"status": "crash", "error": error_of(exc)}))
        return 1
    try:
        _write_state(state, state="warming", kernel_pid=kernel.pid)  # from now on the host can renice it
        if args.background and kernel.pid:  # the kernel runs in a session (scheduler autogroup) of its own
            _renice(kernel.pid, BACKGROUND_NICE, BACKGROUND_NICE)
            # a job handed over while the kernel started (its pid not yet known to the host) gave this worker
            # its priority back: the kernel gets it too, instead of warming up starved on a loaded machine
            nice, group = current_priority()
            if nice < BACKGROUND_NICE:
                _renice(kernel.pid, nice, group)
        modules = [m for m in args.preload.split(",") if m.strip()]
        warm = kernel.run_silently(_preload_code(modules)) if modules else {"status": "ok"}
        import papermill  # noqa: F401 - imported while waiting, not once the notebook is due
        _write_state(state, state="ready", kernel_pid=kernel.pid, preload=modules, warm_status=warm.get("status"))
        line = _wait_for_job(args.idle_s)
        if line is None:
            return 0
        job = json.loads(Path(line).read_text(encoding="utf-8"))
        if job.get("priority") is not None:  # warmed up in the background: run at the caller's priority
            nice, group = job["priority"]
            for pid in (os.getpid(), kernel.pid):
                if pid:
                    _renice(pid, int(nice), group)
        _write_state(state, state="running", kernel_pid=kernel.pid, job=line)
        t0 = time.monotonic()
        result = run_job(job, kernel)
        print(f"[clinagent worker] notebook {result['status']} in {time.monotonic() - t0:.2f} s", flush=True)
        Path(job["result_path"]).write_text(json.dumps(result), encoding="utf-8")
        return 0 if result["status"] == "ok" else 1
    finally:
        kernel.shutdown()


if __name__ == "__main__":
    raise SystemExit(main())
