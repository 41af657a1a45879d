"""Execute a notebook with papermill in a subprocess, under a time budget, streaming progress events.

States follow papermill's execution manager: the run ends ``ok``, ``crash`` (with the exception and the cell),
``timeout`` (killed on overrun) or ``stopped`` (killed on request).
"""

from __future__ import annotations

import json
import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .events import DEADLINE_ENV, read_events
from .kernels import (KernelPool, Standby, current_priority, default_pool, environment_changes,
                      worker_environment)

__all__ = ["ExecutionResult", "NotebookExecutor", "execute_notebook", "default_kernel_name", "DEADLINE_ENV"]

EventSink = Callable[[dict[str, Any]], None]


@dataclass
class ExecutionResult:
    status: str
    output: Path
    wall_s: float
    error: dict[str, Any] | None = None
    events: list[dict[str, Any]] = field(default_factory=list)
    warm: bool = False
    """True when the notebook ran in a kernel started (and warmed) before it was needed."""


def default_kernel_name() -> str | None:
    """The kernel papermill should use: ``CLINAGENT_KERNEL`` or the kernel of this Python (``python3``)."""
    return os.environ.get("CLINAGENT_KERNEL") or "python3"


class NotebookExecutor:
    """Run one notebook at a time in a child process; ``stop()`` may be called from another thread.

    Each notebook runs in a worker of its own (:mod:`clinagent_lab.notebooks.worker`). With ``pool`` (the
    process-wide :func:`~clinagent_lab.notebooks.kernels.default_pool` unless given), the worker is taken
    warm from the pool when one is ready, and the next one is started while this notebook trains, so the
    following notebook starts in a kernel that has torch and Lightning imported already.
    """

    def __init__(self, poll_s: float = 0.1, pool: KernelPool | None = None) -> None:
        self.poll_s = poll_s
        self.pool = pool
        self._standby: Standby | None = None
        self._stopped = threading.Event()
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._standby is not None and self._standby.alive

    def stop(self) -> bool:
        """Kill the running notebook (kernel included). Returns False when nothing runs."""
        with self._lock:
            if not self.running:
                return False
            self._stopped.set()
            self._standby.kill()
            return True

    def prewarm(self, kernel_name: str | None = None) -> bool:
        """Start a standby kernel for the next notebook now (no-op when one is ready or standbys are off)."""
        return self._pool().refill(kernel_name or default_kernel_name())

    def close(self) -> None:
        """Shut down the pool's standby kernels (a running notebook is not touched)."""
        self._pool().close()

    def _pool(self) -> KernelPool:
        return self.pool if self.pool is not None else default_pool()

    def execute(self, input_path: str | Path, output_path: str | Path, parameters: dict[str, Any], *,
                timeout_s: float, events_path: str | Path, cwd: str | Path | None = None,
                on_event: EventSink | None = None, kernel_name: str | None = None,
                prewarm_next: bool = True) -> ExecutionResult:
        """Run ``input_path`` with ``parameters`` into ``output_path`` under ``timeout_s`` seconds.

        ``prewarm_next``: start the next notebook's kernel once this one's training starts (or when it ends).
        """
        output = Path(output_path)
        work = output.parent
        work.mkdir(parents=True, exist_ok=True)
        kernel = kernel_name or default_kernel_name()
        start = time.monotonic()
        job = {"input": str(Path(input_path).resolve()), "output": str(output.resolve()),
               "parameters": parameters, "kernel_name": kernel, "cwd": str(Path(cwd or work).resolve()),
               "deadline": f"{time.time() + timeout_s:.3f}",
               "events_path": str(Path(events_path).resolve()),
               "result_path": str((work / ".execution_result.json").resolve())}
        self._stopped.clear()
        pool = self._pool()
        standby, warm = pool.take(kernel)
        job["env_set"], job["env_unset"] = environment_changes(standby.env, worker_environment())
        job["priority"] = current_priority() if standby.background else None
        job_path = work / ".execution_job.json"
        job_path.write_text(json.dumps(job, default=str), encoding="utf-8")
        Path(job["result_path"]).unlink(missing_ok=True)
        with self._lock:
            self._standby = standby
        standby.send(job_path.resolve())
        events: list[dict[str, Any]] = []
        offset = 0
        timed_out = False
        refilled = not prewarm_next
        try:
            while True:
                done = standby.proc.poll() is not None
                new, offset = read_events(events_path, offset)
                for event in new:
                    events.append(event)
                    if not refilled and event.get("type") == pool.refill_on:
                        refilled = True
                        pool.refill(kernel)
                    if on_event:
                        on_event(event)
                if done:
                    break
                if time.monotonic() - start > timeout_s:
                    timed_out = True
                    standby.kill()
                    break
                time.sleep(self.poll_s)
        finally:
            with self._lock:
                self._standby = None
            if standby.alive:
                standby.kill()
            (work / "execution.log").write_bytes(standby.log_text())
            standby.close()
        if not refilled:
            pool.refill(kernel)
        wall = time.monotonic() - start
        result = self._result(job, output, wall, events, timed_out, timeout_s)
        result.warm = warm
        return result

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


def execute_notebook(input_path: str | Path, output_path: str | Path, parameters: dict[str, Any], *,
                     timeout_s: float = 600, events_path: str | Path | None = None,
                     on_event: EventSink | None = None, kernel_name: str | None = None,
                     prewarm_next: bool = True) -> ExecutionResult:
    """One-shot helper around :class:`NotebookExecutor`."""
    events = events_path or Path(output_path).parent / "events.jsonl"
    return NotebookExecutor().execute(input_path, output_path, parameters, timeout_s=timeout_s,
                                      events_path=events, on_event=on_event, kernel_name=kernel_name,
                                      prewarm_next=prewarm_next)

