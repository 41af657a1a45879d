"""Where a notebook runs: one small interface, :class:`ExecutionBackend`, with ``submit`` / ``poll`` / ``cancel``
/ ``reattach``, and the job record every backend writes into the run folder before it waits.

The engine, the CLI, the server and reruns hold a backend and call :meth:`ExecutionBackend.execute` (render
first, then run one notebook and relay its events) or, for several candidates at once, :meth:`submit` each and
:meth:`wait` on each. Nothing else knows whether the notebook ran in a warm local kernel or as a cluster job:
events, the executed notebook and the artefacts come back through the run folder either way.

The record (``execution.json``) is written before anything is waited on: a process restarted while a job runs
finds the job id there and :meth:`reattach` es to it instead of submitting the notebook again.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ClinagentError, ExecutionError
from ..fileio import atomic_write_text, now_iso
from ..notebooks.events import read_events
from ..notebooks.executor import ExecutionResult, default_kernel_name

__all__ = ["ExecutionBackend", "JobDetached", "JobHandle", "JobRecord", "JobStatus", "NotebookJob", "RECORD_NAME", "RESULT_NAME",
           "read_record", "write_record", "EventSink"]

EventSink = Callable[[dict[str, Any]], None]

#: the job record's file name in the run folder
RECORD_NAME = "execution.json"
#: a cluster job's own verdict, beside the record: {"status": "ok" | "crash", "error": ...}
RESULT_NAME = "job_result.json"

JobState = Literal["submitting", "pending", "running", "done"]


class NotebookJob(BaseModel):
    """One notebook to run: what papermill needs, the time budget and where events go."""

    model_config = ConfigDict(extra="forbid")

    input: str
    output: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    cwd: str
    events_path: str
    timeout_s: float
    kernel_name: str = Field(default_factory=lambda: default_kernel_name() or "python3")
    #: a short label for the scheduler's queue (``clinagent-iter_03``)
    name: str = "notebook"

    @property
    def folder(self) -> Path:
        return Path(self.output).parent


class JobRecord(BaseModel):
    """What a backend wrote down about one job, in ``<run folder>/execution.json``."""

    model_config = ConfigDict(extra="forbid")

    backend: str
    token: str
    job_id: str | None = None
    state: JobState = "submitting"
    submitted_at: str = Field(default_factory=now_iso)
    job: NotebookJob
    #: the scheduler's final state and reason (``TIMEOUT``, ``OUT_OF_MEMORY``, ``CANCELLED by 0``, ...)
    scheduler_state: str | None = None
    reason: str | None = None
    resources: dict[str, Any] = Field(default_factory=dict)


def write_record(record: JobRecord) -> None:
    atomic_write_text(record.job.folder / RECORD_NAME, record.model_dump_json(indent=1))


def read_record(folder: str | Path) -> JobRecord | None:
    path = Path(folder) / RECORD_NAME
    if not path.exists():
        return None
    try:
        return JobRecord.model_validate_json(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ClinagentError(f"the job record is unreadable: {exc}", where=str(path),
                             fix="remove it to run the notebook again") from None


class JobDetached(ExecutionError):
    """This process stopped waiting on a job that goes on without it (:meth:`ExecutionBackend.detach`)."""

    http_status = 503


@dataclass
class JobStatus:
    """One look at a job: still ``pending``/``running``, or ``done`` with its result."""

    state: JobState
    result: ExecutionResult | None = None
    detail: str | None = None


@dataclass
class JobHandle:
    record: JobRecord
    started: float = field(default_factory=time.monotonic)
    #: the backend's own state for this job (a thread, an executor)
    private: Any = None
    cancelled: bool = False

    @property
    def job(self) -> NotebookJob:
        return self.record.job

    @property
    def job_id(self) -> str | None:
        return self.record.job_id


class ExecutionBackend(ABC):
    """Where notebooks run. Subclasses implement :meth:`submit`, :meth:`poll`, :meth:`cancel` and
    :meth:`reattach`; :meth:`wait`, :meth:`execute` and :meth:`stop` are shared."""

    name: ClassVar[str]
    #: jobs this backend runs at the same time (``--parallel`` candidates beyond this wait their turn)
    max_parallel: int = 1
    poll_s: float = 0.5
    #: whether a job goes on after the process that submitted it ends (a cluster job), so it can be reattached
    outlives_process: bool = False

    def __init__(self) -> None:
        self._active: dict[str, JobHandle] = {}
        self._lock = threading.Lock()
        self._detached = threading.Event()

    # --- the interface ----------------------------------------------------------------------------------
    @abstractmethod
    def submit(self, job: NotebookJob) -> JobHandle:
        """Start ``job`` (or queue it); its record, with the job id, is in its folder when this returns."""

    @abstractmethod
    def poll(self, handle: JobHandle) -> JobStatus:
        """The job's state now; ``done`` comes with the result."""

    @abstractmethod
    def cancel(self, handle: JobHandle) -> bool:
        """Stop the job (its result becomes ``stopped``). False when it had already ended."""

    @abstractmethod
    def reattach(self, folder: str | Path) -> JobHandle | None:
        """A handle on the job recorded in ``folder`` that still runs (or ended unseen), or None."""

    # --- shared -----------------------------------------------------------------------------------------
    @property
    def running(self) -> bool:
        with self._lock:
            return bool(self._active)

    def describe(self) -> dict[str, Any]:
        """What a session records so a rerun goes to the same place (see :mod:`.config`)."""
        return {"backend": self.name}

    def wait(self, handle: JobHandle, on_event: EventSink | None = None) -> ExecutionResult:
        """Relay the job's events from its run folder until it ends; its result."""
        key = handle.job_id or handle.record.token
        with self._lock:
            self._active[key] = handle
        offset = 0
        events: list[dict[str, Any]] = []
        try:
            while True:
                if self._detached.is_set():
                    raise JobDetached(f"stopped waiting on job {key}; it goes on and is reattached to later",
                                      where=str(handle.job.folder), fix="reopen the session (or restart the "
                                      "server) to collect it")
                status = self.poll(handle)
                new, offset = read_events(handle.job.events_path, offset)
                for event in new:
                    events.append(event)
                    if on_event:
                        on_event(event)
                if status.state == "done":
                    assert status.result is not None
                    status.result.events = events + [e for e in status.result.events if e not in events]
                    return status.result
                time.sleep(self.poll_s)
        finally:
            with self._lock:
                self._active.pop(key, None)

    def execute(self, input_path: str | Path, output_path: str | Path, parameters: dict[str, Any], *,
                timeout_s: float, events_path: str | Path, cwd: str | Path | None = None,
                on_event: EventSink | None = None, kernel_name: str | None = None,
                prewarm_next: bool = True) -> ExecutionResult:
        """Run one notebook and wait for it (the signature of the local executor's ``execute``); a job already
        recorded in the run folder and still known to the backend is waited on, never submitted again."""
        output = Path(output_path)
        handle = self.reattach(output.parent)
        if handle is None:
            job = NotebookJob(input=str(Path(input_path).resolve()), output=str(output.resolve()),
                              parameters=parameters, cwd=str(Path(cwd or output.parent).resolve()),
                              events_path=str(Path(events_path).resolve()), timeout_s=float(timeout_s),
                              kernel_name=kernel_name or default_kernel_name() or "python3",
                              name=output.parent.name)
            handle = self.submit(job)
        return self.wait(handle, on_event)

    def detach(self) -> bool:
        """Stop waiting on this process's jobs without cancelling them (a server shutting down): :meth:`wait`
        raises :class:`JobDetached` and the jobs, still recorded as running, are reattached to by the next
        process. False, and nothing changes, when jobs end with this process (:attr:`outlives_process`)."""
        if not self.outlives_process:
            return False
        self._detached.set()
        return True

    @property
    def detached(self) -> bool:
        return self._detached.is_set()

    def stop(self) -> bool:
        """Cancel every job this process is waiting on (the Stop button). False when none runs."""
        with self._lock:
            handles = list(self._active.values())
        return any([self.cancel(h) for h in handles])

    def prewarm(self, kernel_name: str | None = None) -> bool:
        """Prepare for the next notebook (a local kernel); nothing to do elsewhere."""
        return False

    def close(self) -> None:
        """Release what the backend holds (not the jobs: a cluster job outlives this process)."""
