"""Execute a notebook with papermill on a local kernel, under a time budget, streaming progress events.

States follow papermill's execution manager: the run ends ``ok``, ``crash`` (with the exception and the cell),
``timeout`` (kernel shut down on overrun) or ``stopped`` (shut down on request).
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .events import DEADLINE_ENV, read_events
from .kernels import KernelPool, WarmKernel, default_pool, environment_changes, kernel_environment
from .papermill_job import error_of

__all__ = ["ExecutionResult", "NotebookExecutor", "execute_notebook", "default_kernel_name", "DEADLINE_ENV"]

EventSink = Callable[[dict[str, Any]], None]

#: seconds to wait for papermill to return once the kernel was shut down (nbclient notices within a second)
_WIND_DOWN_S = 30.0


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
    """Run one notebook at a time on a kernel of a :class:`~.kernels.KernelPool`; ``stop()`` may be called from
    another thread.

    papermill runs in a thread of this process on a kernel taken from ``pool`` (the process-wide
    :func:`~clinagent_lab.notebooks.kernels.default_pool` unless given): warm when a standby was ready, else
    started now. The calling thread relays the notebook's events, starts the next standby (at the pool's
    ``refill_on`` event) and enforces the time budget by shutting the kernel down.
    """

    def __init__(self, poll_s: float = 0.1, pool: KernelPool | None = None) -> None:
        self.poll_s = poll_s
        self.pool = pool
        self._kernel: WarmKernel | None = None
        self._stopped = threading.Event()
        self._lock = threading.Lock()

    @property
    def running(self) -> bool:
        return self._kernel is not None

    def stop(self) -> bool:
        """Shut the running notebook's kernel down. Returns False when nothing runs."""
        with self._lock:
            kernel = self._kernel
            if kernel is None:
                return False
            self._stopped.set()
        kernel.close()
        return True

    def prewarm(self, kernel_name: str | None = None) -> bool:
        """Start a standby kernel for the next notebook now; a no-op when one is ready or standbys are off.

        It warms up at the lowest priority, like every standby, and gets this process's when it is handed its
        notebook: before the first notebook the host checks the data and then measures this machine's training
        speed for the first recipe (``plan.hardware.measure_throughput``), and a kernel importing torch beside
        that measurement at the same priority made it three to four times too slow (4 epochs planned where 19
        fit).
        """
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
        """Run ``input_path`` with ``parameters`` (injected by papermill) into ``output_path`` under
        ``timeout_s`` seconds.

        ``prewarm_next``: start the next notebook's kernel while this one runs.
        """
        output = Path(output_path)
        work = output.parent
        work.mkdir(parents=True, exist_ok=True)
        kernel_name = kernel_name or default_kernel_name()
        start = time.monotonic()
        job = {"input": str(Path(input_path).resolve()), "output": str(output.resolve()),
               "parameters": parameters, "kernel_name": kernel_name, "cwd": str(Path(cwd or work).resolve()),
               "deadline": f"{time.time() + timeout_s:.3f}", "events_path": str(Path(events_path).resolve())}
        self._stopped.clear()
        pool = self._pool()
        kernel, warm = pool.take(kernel_name)
        job["env_set"], job["env_unset"] = environment_changes(kernel.env, kernel_environment())
        box: dict[str, Any] = {"done": threading.Event()}
        thread = threading.Thread(target=_run, args=(kernel, job, box), name=f"clinagent-notebook-{work.name}",
                                  daemon=True)
        with self._lock:
            self._kernel = kernel
        thread.start()
        events: list[dict[str, Any]] = []
        offset, timed_out, refilled = 0, False, not prewarm_next
        try:
            while True:
                done = box["done"].wait(self.poll_s)
                new, offset = read_events(events_path, offset)
                for event in new:
                    events.append(event)
                    if on_event:
                        on_event(event)
                kinds = {e.get("type") for e in new}
                if not refilled and (pool.refill_on == "started" or pool.refill_on in kinds):
                    refilled = pool.refill(kernel_name) or True
                if "fit_finished" in kinds:
                    pool.promote()
                if done:
                    break
                if time.monotonic() - start > timeout_s:
                    timed_out = True
                    break
        finally:
            with self._lock:
                self._kernel = None
            if not box["done"].is_set():  # past its budget, or Ctrl-C: the kernel goes, papermill returns
                kernel.close()
                box["done"].wait(_WIND_DOWN_S)
            (work / "execution.log").write_text(box.get("log") or kernel.log_text(), encoding="utf-8")
        if not refilled:
            pool.refill(kernel_name)
        wall = time.monotonic() - start
        result = self._result(box.get("result"), output, wall, events, timed_out, timeout_s)
        result.warm = warm
        return result

    def _result(self, result: dict[str, Any] | None, output: Path, wall: float, events: list[dict[str, Any]],
                timed_out: bool, timeout_s: float) -> ExecutionResult:
        if timed_out:
            return ExecutionResult("timeout", output, wall, {"ename": "Timeout", "evalue":
                                   f"the iteration ran past its budget of {timeout_s:.0f} s and was stopped",
                                   "cell_index": _last_cell(events)}, events)
        if self._stopped.is_set():
            return ExecutionResult("stopped", output, wall, {"ename": "Stopped", "evalue": "stopped on request",
                                                             "cell_index": _last_cell(events)}, events)
        if result is None:
            result = {"status": "crash", "error": {"ename": "NoResult", "evalue": "papermill did not return after "
                                                   "the kernel was shut down", "cell_index": _last_cell(events)}}
        error = result.get("error")
        if error is not None and error.get("ename") == "DeadKernelError":  # what the kernel said as it died
            error = {**error, "evalue": "the kernel died (killed, or out of memory?)",
                     "cell_index": _last_cell(events),
                     "traceback": (output.parent / "execution.log").read_text(errors="replace")[-2000:]}
        return ExecutionResult(result["status"], output, wall, error, events)


def _run(kernel: WarmKernel, job: dict[str, Any], box: dict[str, Any]) -> None:
    """The notebook thread: papermill on ``kernel``; the kernel is shut down once the result is in."""
    try:
        box["result"] = kernel.run(job)
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a recorded status
        box["result"] = {"status": "crash", "error": error_of(exc)}
    finally:
        box["log"] = kernel.log_text()
        box["done"].set()
        kernel.close()


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

