"""Execute a notebook with papermill in a subprocess, under a time budget, streaming progress events.

States follow papermill's execution manager: the run ends ``ok``, ``crash`` (with the exception and the cell),
``timeout`` (killed on overrun) or ``stopped`` (killed on request).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .events import read_events

__all__ = ["ExecutionResult", "NotebookExecutor", "execute_notebook", "default_kernel_name", "DEADLINE_ENV"]

EventSink = Callable[[dict[str, Any]], None]

#: environment variable (unix time) the kernel inherits: training stops early enough to evaluate before it
DEADLINE_ENV = "CLINAGENT_DEADLINE"


@dataclass
class ExecutionResult:
    status: str
    output: Path
    wall_s: float
    error: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)


def default_kernel_name() -> str | None:
    """The kernel papermill should use: ``CLINAGENT_KERNEL`` or the kernel of this Python (``python3``)."""
    return os.environ.get("CLINAGENT_KERNEL") or "python3"


class NotebookExecutor:
    """Run one notebook at a time in a child process; ``stop()`` may be called from another thread."""

    def __init__(self, poll_s: float = 0.5) -> None:
        self.poll_s = poll_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._stopped = threading.Event()
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> bool:
        """Kill the running notebook (kernel included). Returns False when nothing runs."""
        with self._lock:
            if not self.running:
                return False
            self._stopped.set()
            _kill_group(self._proc)
            return True

    def execute(self, input_path: str | Path, output_path: str | Path, parameters: dict[str, Any], *,
                timeout_s: float, events_path: str | Path, cwd: str | Path | None = None,
                on_event: EventSink | None = None, kernel_name: str | None = None) -> ExecutionResult:
        output = Path(output_path)
        work = output.parent
        work.mkdir(parents=True, exist_ok=True)
        job = {"input": str(input_path), "output": str(output), "parameters": parameters,
               "kernel_name": kernel_name or default_kernel_name(), "cwd": str(cwd or work),
               "events_path": str(events_path), "result_path": str(work / ".execution_result.json")}
        job_path = work / ".execution_job.json"
        job_path.write_text(json.dumps(job, default=str), encoding="utf-8")
        Path(job["result_path"]).unlink(missing_ok=True)
        log = open(work / "execution.log", "wb")
        self._stopped.clear()
        start = time.monotonic()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "MPLBACKEND": "Agg",
               DEADLINE_ENV: f"{time.time() + timeout_s:.3f}"}
        with self._lock:
            self._proc = subprocess.Popen([sys.executable, "-m", "clinagent_lab.notebooks.worker", str(job_path)],
                                          stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        events: list[dict[str, Any]] = []
        offset = 0
        timed_out = False
        try:
            while True:
                done = self._proc.poll() is not None
                new, offset = read_events(events_path, offset)
                for event in new:
                    events.append(event)
                    if on_event:
                        on_event(event)
                if done:
                    break
                if time.monotonic() - start > timeout_s:
                    timed_out = True
                    _kill_group(self._proc)
                    self._proc.wait()
                    break
                time.sleep(self.poll_s)
        finally:
            log.close()
            with self._lock:
                proc, self._proc = self._proc, None
            if proc is not None and proc.poll() is None:
                _kill_group(proc)
                proc.wait()
        wall = time.monotonic() - start
        return self._result(job, output, wall, events, timed_out, timeout_s)

    def _result(self, job: dict[str, Any], output: Path, wall: float, events: list[dict[str, Any]],
                timed_out: bool, timeout_s: float) -> ExecutionResult:
        if timed_out:
            return ExecutionResult("timeout", output, wall, {"ename": "Timeout", "evalue":
                                   f"the iteration ran past its budget of {timeout_s:.0f} s and was stopped",
                                   "cell_index": _last_cell(events)}, events)
        if self._stopped.is_set():
            return ExecutionResult("stopped", output, wall, {"ename": "Stopped", "evalue": "stopped on request",
                                                             "cell_index": _last_cell(events)}, events)
        result_path = Path(job["result_path"])
        if not result_path.exists():
            log_tail = (output.parent / "execution.log").read_text(errors="replace")[-2000:]
            return ExecutionResult("crash", output, wall, {"ename": "WorkerDied", "evalue":
                                   "the notebook process ended without a result (killed or out of memory?)",
                                   "cell_index": _last_cell(events), "traceback": log_tail}, events)
        result = json.loads(result_path.read_text(encoding="utf-8"))
        return ExecutionResult(result["status"], output, wall, result.get("error"), events)


def _last_cell(events: list[dict[str, Any]]) -> int | None:
    cells = [e.get("index") for e in events if e.get("type") == "cell"]
    return cells[-1] if cells else None


def _kill_group(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is None or proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        proc.kill()


def execute_notebook(input_path: str | Path, output_path: str | Path, parameters: dict[str, Any], *,
                     timeout_s: float = 600, events_path: str | Path | None = None,
                     on_event: EventSink | None = None, kernel_name: str | None = None) -> ExecutionResult:
    """One-shot helper around :class:`NotebookExecutor`."""
    events = events_path or Path(output_path).parent / "events.jsonl"
    return NotebookExecutor().execute(input_path, output_path, parameters, timeout_s=timeout_s,
                                      events_path=events, on_event=on_event, kernel_name=kernel_name)

