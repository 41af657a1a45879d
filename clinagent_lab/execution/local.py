"""The default backend: notebooks run on this machine, each in a warm kernel of the process-wide pool
(:mod:`clinagent_lab.notebooks.kernels`), under the executor's time budget."""

from __future__ import annotations

import os
import threading
import uuid
from pathlib import Path
from typing import Any

from ..notebooks.executor import ExecutionResult, NotebookExecutor
from .base import EventSink, ExecutionBackend, JobHandle, JobRecord, JobStatus, NotebookJob, write_record

__all__ = ["LocalBackend"]


class LocalBackend(ExecutionBackend):
    """Notebooks in local kernels, ``max_parallel`` at a time (default 1: one training run uses every core of
    a workstation, so ``--parallel`` candidates queue here unless the machine has room for more).

    A local job ends with the process that started it, so :meth:`reattach` finds nothing to reattach to; the
    engine marks such an iteration interrupted instead.
    """

    name = "local"

    def __init__(self, max_parallel: int = 1) -> None:
        super().__init__()
        self.max_parallel = max(1, int(max_parallel))
        self._slots = threading.Semaphore(self.max_parallel)
        self._executor = NotebookExecutor()  # the sequential path (and its prewarm), exactly as before
        self._running: set[NotebookExecutor] = set()

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "max_parallel": self.max_parallel}

    # --- the sequential path: one notebook, warm kernel handed over, next one warmed while it trains -----
    def execute(self, input_path: str | Path, output_path: str | Path, parameters: dict[str, Any], *,
                timeout_s: float, events_path: str | Path, cwd: str | Path | None = None,
                on_event: EventSink | None = None, kernel_name: str | None = None,
                prewarm_next: bool = True) -> ExecutionResult:
        # one slot: the shared executor (its warm kernel handed on); more: an executor per notebook
        executor = self._executor if self.max_parallel == 1 else NotebookExecutor()
        with self._slots:
            with self._lock:
                self._running.add(executor)
            try:
                return executor.execute(input_path, output_path, parameters, timeout_s=timeout_s,
                                        events_path=events_path, cwd=cwd, on_event=on_event,
                                        kernel_name=kernel_name, prewarm_next=prewarm_next and self.max_parallel == 1)
            finally:
                with self._lock:
                    self._running.discard(executor)

    @property
    def running(self) -> bool:
        with self._lock:
            executors = list(self._running)
        return any(e.running for e in executors) or super().running

    def stop(self) -> bool:
        with self._lock:
            executors = list(self._running)
        stopped = [e.stop() for e in executors]
        return super().stop() or any(stopped)

    def prewarm(self, kernel_name: str | None = None) -> bool:
        return self._executor.prewarm(kernel_name)

    def close(self) -> None:
        self._executor.close()

    # --- the interface: a thread per job, at most max_parallel notebooks at once -----------------------------
    def submit(self, job: NotebookJob) -> JobHandle:
        record = JobRecord(backend=self.name, token=uuid.uuid4().hex[:12], job=job, state="pending",
                           job_id=f"local-{os.getpid()}-{uuid.uuid4().hex[:6]}")
        write_record(record)
        executor = NotebookExecutor()
        handle = JobHandle(record, private={"executor": executor, "result": None})

        def run() -> None:
            with self._slots:
                if handle.cancelled:
                    handle.private["result"] = ExecutionResult(
                        "stopped", Path(job.output), 0.0, {"ename": "Stopped", "evalue": "stopped before it started"})
                    return
                record.state = "running"
                write_record(record)
                handle.private["result"] = executor.execute(
                    job.input, job.output, job.parameters, timeout_s=job.timeout_s, events_path=job.events_path,
                    cwd=job.cwd, kernel_name=job.kernel_name, prewarm_next=self.max_parallel == 1)
            record.state = "done"
            write_record(record)

        thread = threading.Thread(target=run, name=f"clinagent-{job.name}", daemon=True)
        handle.private["thread"] = thread
        thread.start()
        return handle

    def poll(self, handle: JobHandle) -> JobStatus:
        thread: threading.Thread = handle.private["thread"]
        if thread.is_alive():
            return JobStatus("running" if handle.private["executor"].running else "pending")
        result = handle.private["result"] or ExecutionResult(
            "crash", Path(handle.job.output), 0.0, {"ename": "WorkerDied", "evalue": "the job thread ended early"})
        return JobStatus("done", result)

    def cancel(self, handle: JobHandle) -> bool:
        if handle.private is None or not handle.private["thread"].is_alive():
            return False
        handle.cancelled = True
        handle.private["executor"].stop()
        return True

    def reattach(self, folder: str | Path) -> JobHandle | None:
        return None
