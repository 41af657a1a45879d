"""A cluster job's entry point: run one notebook with papermill in a fresh kernel on the compute node.

``python -m clinagent_lab.execution.job RECORD.json [--rank-output]``

It reads the job record the backend wrote (:mod:`.base`), marks the start with a ``job`` event (so the host
sees it running, and how long the queue took), sets the deadline ``CLINAGENT_DEADLINE`` from the moment the
job *starts* (time spent queueing is not the notebook's), runs the notebook with papermill's nbclient engine
writing a ``cell`` event as each cell starts, and writes ``job_result.json`` beside the record. Under ``srun``
with several tasks (one per GPU, Lightning's SLURM environment), rank 0 writes the notebook, events and result;
the other ranks execute the same notebook into ``ranks/``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from pathlib import Path

from ..fileio import atomic_write_text
from ..notebooks.events import DEADLINE_ENV, write_event
from ..notebooks.papermill_job import run_papermill
from .base import RESULT_NAME, JobRecord

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clinagent_lab.execution.job")
    parser.add_argument("record", help="the job record (execution.json) in the run folder")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    record = JobRecord.model_validate_json(Path(args.record).read_text(encoding="utf-8"))
    job = record.job
    rank = int(os.environ.get("SLURM_PROCID", "0"))
    output, events = job.output, job.events_path
    if rank:
        ranks = job.folder / "ranks"
        ranks.mkdir(exist_ok=True)
        output, events = str(ranks / f"rank{rank}_{Path(job.output).name}"), None
    os.environ[DEADLINE_ENV] = f"{time.time() + job.timeout_s:.3f}"
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ["PYTHONUNBUFFERED"] = "1"
    write_event(events, "job", state="running", backend=record.backend,
                job_id=os.environ.get("SLURM_JOB_ID", record.job_id), node=socket.gethostname())
    t0 = time.monotonic()
    result = run_papermill({"input": job.input, "output": output, "parameters": job.parameters, "cwd": job.cwd,
                           "kernel_name": job.kernel_name, "events_path": events})
    print(f"[clinagent job] notebook {result['status']} in {time.monotonic() - t0:.2f} s", flush=True)
    if not rank:
        atomic_write_text(job.folder / RESULT_NAME, json.dumps(result))
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
