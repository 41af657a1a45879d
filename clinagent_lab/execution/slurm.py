"""SLURM backend: each notebook is one batch job running papermill in this Python environment, on a shared
filesystem (the run folder is read and written by both sides).

It drives the scheduler's own commands (``sbatch``, ``squeue``, ``scontrol``, ``sacct``, ``scancel``) rather
than submitit: the job is a readable batch script in the run folder (``job.sbatch``, rerunnable by hand), the
notebook is the unit of work (nothing pickled), and job states must also be read on clusters without the
accounting daemon ``sacct`` needs (``scontrol`` keeps finished jobs for ``MinJobAge``).

Resources come from :class:`SlurmOptions`: partition, account, CPUs, memory, GPUs (several GPUs run one task
per GPU under ``srun``, which Lightning's SLURM environment turns into DDP), extra ``#SBATCH`` lines, and
``--time`` = the iteration's budget plus a margin (kernel start, evaluation, saving). The job id is written to
the run folder's record before anything waits on it; the submission itself is named after a token recorded
just before ``sbatch``, so a process killed between the two finds its job by name and never submits twice.
"""

from __future__ import annotations

import json
import math
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import ClinagentError
from ..notebooks.events import write_event
from ..notebooks.executor import ExecutionResult
from .base import (RECORD_NAME, RESULT_NAME, ExecutionBackend, JobHandle, JobRecord, JobStatus, NotebookJob, read_record,
                   write_record)

__all__ = ["SlurmBackend", "SlurmOptions", "SlurmError", "slurm_available", "job_time_limit"]

#: states after which a job will not run again (squeue/scontrol/sacct spelling)
FINAL_STATES = {"COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "PREEMPTED", "NODE_FAIL",
                "BOOT_FAIL", "DEADLINE", "REVOKED", "SPECIAL_EXIT"}
#: what each final state means for the iteration when the notebook left no verdict of its own
STATE_ERRORS = {
    "TIMEOUT": ("timeout", "Timeout", "the scheduler stopped the job at its time limit"),
    "OUT_OF_MEMORY": ("crash", "OutOfMemory", "the job ran out of memory (raise --mem)"),
    "PREEMPTED": ("crash", "Preempted", "the scheduler preempted the job for a higher-priority one"),
    "NODE_FAIL": ("crash", "NodeFail", "the node running the job failed"),
    "BOOT_FAIL": ("crash", "NodeFail", "the node could not boot for the job"),
    "DEADLINE": ("crash", "Deadline", "the job reached its deadline before it could run"),
    "CANCELLED": ("crash", "Cancelled", "the job was cancelled outside clinagent (scancel or an administrator)"),
    "FAILED": ("crash", "JobFailed", "the job ended without the notebook's result"),
    "COMPLETED": ("crash", "JobFailed", "the job ended without the notebook's result"),
}
SCRIPT_NAME = "job.sbatch"
LOG_NAME = "job.log"


class SlurmError(ClinagentError):
    """The scheduler refused a request or cannot be reached."""


class SlurmOptions(BaseModel):
    """Job resources and placement (CLI ``--partition`` ... ``--sbatch``, a config file's ``[execution.slurm]``,
    or the server's traitlets)."""

    model_config = ConfigDict(extra="forbid")

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    cpus_per_job: int = Field(default=4, ge=1)
    gpus_per_job: int = Field(default=0, ge=0)
    mem: str | None = Field(default=None, description="memory per job, sbatch spelling (16G)")
    time_margin_s: float = Field(default=300.0, ge=0, description="added to the iteration budget for --time")
    sbatch: list[str] = Field(default_factory=list, description="extra #SBATCH lines (--constraint=a100 ...)")
    #: the interpreter the job runs (this one: the same environment on the shared filesystem)
    python: str = Field(default_factory=lambda: sys.executable)


def slurm_available() -> str | None:
    """Why no SLURM cluster is reachable from here, or None when one answers."""
    if shutil.which("sbatch") is None or shutil.which("squeue") is None:
        return "the SLURM client commands (sbatch, squeue) are not installed"
    try:
        proc = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"sinfo failed: {exc}"
    if proc.returncode != 0:
        return f"no SLURM controller answers: {proc.stderr.strip()[:200]}"
    if not any(s.strip("*~#") in ("idle", "mixed", "allocated", "completing") for s in proc.stdout.split()):
        return f"no usable node (sinfo says: {' '.join(proc.stdout.split()) or 'nothing'})"
    return None


def job_time_limit(timeout_s: float, margin_s: float) -> str:
    """``--time`` in whole minutes (SLURM's granularity), never below one."""
    return str(max(1, math.ceil((timeout_s + margin_s) / 60.0)))


def _run(cmd: list[str], *, check: bool = True, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise SlurmError(f"'{cmd[0]}' could not run: {exc}", where=" ".join(cmd[:3]),
                         fix="install the SLURM client commands and check that the controller answers (sinfo)")
    if check and proc.returncode != 0:
        raise SlurmError(f"'{' '.join(cmd[:2])}' failed: {proc.stderr.strip()[:500]}", where=" ".join(cmd),
                         fix="check the partition, account and resources (sinfo, sacctmgr show assoc)")
    return proc


class SlurmBackend(ExecutionBackend):
    """Notebooks as SLURM batch jobs; as many at once as the scheduler grants."""

    name = "slurm"
    poll_s = 1.0
    outlives_process = True

    def __init__(self, options: SlurmOptions | None = None, *, max_parallel: int = 64) -> None:
        super().__init__()
        self.options = options or SlurmOptions()
        self.max_parallel = max_parallel

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "slurm": self.options.model_dump(exclude={"python"})}

    # --- submission -----------------------------------------------------------------------------------
    def script(self, record: JobRecord) -> str:
        """The batch script of one job (written to the run folder as ``job.sbatch``)."""
        o, job = self.options, record.job
        folder = job.folder
        lines = ["#!/bin/bash", f"#SBATCH --job-name=clinagent-{record.token}",
                 f"#SBATCH --output={folder / LOG_NAME}", f"#SBATCH --chdir={job.cwd}",
                 f"#SBATCH --time={job_time_limit(job.timeout_s, o.time_margin_s)}",
                 "#SBATCH --nodes=1", "#SBATCH --export=ALL"]
        tasks = max(1, o.gpus_per_job)
        lines.append(f"#SBATCH --ntasks-per-node={tasks}")
        lines.append(f"#SBATCH --cpus-per-task={max(1, o.cpus_per_job // tasks)}")
        if o.gpus_per_job:
            lines.append(f"#SBATCH --gpus-per-node={o.gpus_per_job}")
        for flag, value in (("partition", o.partition), ("account", o.account), ("qos", o.qos), ("mem", o.mem)):
            if value:
                lines.append(f"#SBATCH --{flag}={value}")
        for extra in o.sbatch:
            extra = extra.strip()
            lines.append(extra if extra.startswith("#SBATCH") else f"#SBATCH {extra}")
        run = f"{shlex.quote(o.python)} -m clinagent_lab.execution.job {shlex.quote(str(folder / RECORD_NAME))}"
        threads = max(1, o.cpus_per_job // tasks)
        lines += ["", "# the job's threads follow its allocation, not the node's core count",
                  f"export OMP_NUM_THREADS={threads} MKL_NUM_THREADS={threads}",
                  "unset CLINAGENT_DEADLINE  # set when the job starts: queueing is not the notebook's time",
                  f"{'srun ' if tasks > 1 else 'exec '}{run}", ""]
        return "\n".join(lines)

    def submit(self, job: NotebookJob) -> JobHandle:
        record = JobRecord(backend=self.name, token=uuid.uuid4().hex[:12], job=job,
                           resources=self.options.model_dump(exclude={"python"}))
        folder = job.folder
        folder.mkdir(parents=True, exist_ok=True)
        for stale in (RESULT_NAME, LOG_NAME):
            (folder / stale).unlink(missing_ok=True)
        (folder / SCRIPT_NAME).write_text(self.script(record), encoding="utf-8")
        write_record(record)  # the token first: a restart between sbatch and the next line finds the job by name
        proc = _run(["sbatch", "--parsable", str(folder / SCRIPT_NAME)])
        record.job_id = proc.stdout.strip().split(";")[0]
        record.state = "pending"
        write_record(record)
        write_event(job.events_path, "job", state="submitted", backend=self.name, job_id=record.job_id)
        return JobHandle(record)

    # --- state ----------------------------------------------------------------------------------------
    def scheduler_state(self, job_id: str) -> tuple[str, str | None] | None:
        """``(state, reason)`` from squeue, then scontrol, then sacct; None when none knows the job."""
        proc = _run(["squeue", "-h", "-j", job_id, "-o", "%T|%r"], check=False)
        line = proc.stdout.strip().splitlines()[0] if proc.returncode == 0 and proc.stdout.strip() else ""
        if line:
            state, _, reason = line.partition("|")
            return state, (reason if reason not in ("None", "") else None)
        proc = _run(["scontrol", "show", "job", "-o", job_id], check=False)
        if proc.returncode == 0 and "JobState=" in proc.stdout:
            fields = dict(f.split("=", 1) for f in proc.stdout.split() if "=" in f)
            reason = fields.get("Reason")
            return fields["JobState"], (reason if reason not in ("None", "") else None)
        proc = _run(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State,Reason"], check=False)
        if proc.returncode == 0 and proc.stdout.strip():
            state, _, reason = proc.stdout.strip().splitlines()[0].partition("|")
            return state, (reason if reason not in ("None", "") else None)
        return None

    def poll(self, handle: JobHandle) -> JobStatus:
        record = handle.record
        if record.job_id is None:
            raise SlurmError("the job has no id", where=str(record.job.folder), fix="submit it again")
        seen = self.scheduler_state(record.job_id)
        result_file = record.job.folder / RESULT_NAME
        if seen is None:  # forgotten by every command (past MinJobAge, no accounting): the folder decides
            state, reason = ("COMPLETED" if result_file.exists() else "UNKNOWN"), "no longer known to the scheduler"
        else:
            state, reason = seen
            state = state.split()[0]  # "CANCELLED by 0"
        if state not in FINAL_STATES and state != "UNKNOWN":
            mapped = "pending" if state in ("PENDING", "CONFIGURING", "REQUEUED", "RESIZING", "SUSPENDED") else "running"
            if mapped != record.state:
                record.state = mapped
                write_record(record)
            return JobStatus(mapped, detail=reason)
        return JobStatus("done", self._result(handle, state, reason))

    def _result(self, handle: JobHandle, state: str, reason: str | None) -> ExecutionResult:
        record, job = handle.record, handle.record.job
        output, wall = Path(job.output), time.monotonic() - handle.started
        result_file = job.folder / RESULT_NAME
        verdict = None
        if result_file.exists():
            verdict = json.loads(result_file.read_text(encoding="utf-8"))
        if handle.cancelled and state in ("CANCELLED", "COMPLETED", "FAILED"):
            result = ExecutionResult("stopped", output, wall, {"ename": "Stopped", "evalue": "stopped on request"})
        elif verdict is not None and state not in ("TIMEOUT", "OUT_OF_MEMORY", "PREEMPTED", "NODE_FAIL"):
            result = ExecutionResult(verdict["status"], output, wall, verdict.get("error"))
        else:
            status, ename, text = STATE_ERRORS.get(state, ("crash", "JobLost", f"the job ended in state {state}"))
            result = ExecutionResult(status, output, wall, {
                "ename": ename, "evalue": f"{text} (job {record.job_id}: {state}"
                                          f"{', ' + reason if reason else ''})",
                "cell_index": None, "traceback": _tail(job.folder / LOG_NAME)})
        record.state, record.scheduler_state, record.reason = "done", state, reason
        write_record(record)
        write_event(job.events_path, "job", state=state.lower(), backend=self.name, job_id=record.job_id,
                    reason=reason)
        return result

    # --- control --------------------------------------------------------------------------------------
    def cancel(self, handle: JobHandle) -> bool:
        if handle.job_id is None or handle.record.state == "done":
            return False
        handle.cancelled = True
        _run(["scancel", handle.job_id], check=False)
        return True

    def reattach(self, folder: str | Path) -> JobHandle | None:
        record = read_record(folder)
        if record is None or record.backend != self.name or record.state == "done":
            return None
        if record.job_id is None:  # killed between sbatch and writing its answer: look the job up by name
            proc = _run(["squeue", "-h", "-t", "all", "-n", f"clinagent-{record.token}", "-o", "%i"], check=False)
            ids = proc.stdout.split()
            if not ids:
                return None  # never reached the scheduler: submitting it is safe
            record.job_id = ids[0]
            write_record(record)
        return JobHandle(record)


def _tail(path: Path, n: int = 4000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""

