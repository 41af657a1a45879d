"""Candidates in parallel on a SLURM cluster, and the scheduler's overhead per iteration.

4 candidate notebooks (each a fixed amount of single-threaded torch work, ~``--work`` seconds on one core) run
through the SLURM backend (1 CPU per job) two at a time (``--parallel 2``: a round submits both candidates and
waits for both) and one after another; the wall ratio is parallel / sequential (target <= 0.6).

Overhead per iteration: from the call that starts a notebook to its first cell starting, on the SLURM backend
(submit -> queue -> job start -> fresh kernel) and on the local backend with a warm kernel (taken ready from
the pool). Also submit -> the job's own ``running`` event (the scheduler's part alone).

    tools/slurm_local.sh start
    nice -n 10 python benchmarks/slurm_parallel.py [--work 12] [--n 4]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

from clinagent_lab.execution import LocalBackend, NotebookJob, SlurmBackend, SlurmOptions, slurm_available

WORK = """\
import time, torch
torch.set_num_threads(1)
a = torch.randn(256, 256)
t0 = time.process_time()
steps = 0
while time.process_time() - t0 < work_s:   # CPU seconds, not wall: the same work however loaded the machine
    a = torch.tanh(a @ a.T / 256)
    steps += 1
open("steps.txt", "w").write(str(steps))
"""


def notebook(folder: Path, work_s: float) -> Path:
    nb = new_notebook(cells=[new_code_cell(f"work_s = {work_s}"), new_code_cell(WORK)])
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / "input.ipynb")
    return folder / "input.ipynb"


def job(folder: Path, work_s: float) -> NotebookJob:
    return NotebookJob(input=str(notebook(folder, work_s)), output=str(folder / "iteration.ipynb"), cwd=str(folder),
                       events_path=str(folder / "events.jsonl"), timeout_s=600, name=folder.name)


def first_event(events: list[dict], type_: str, state: str | None = None) -> float | None:
    times = [e["time"] for e in events if e["type"] == type_ and (state is None or e.get("state") == state)]
    return times[0] if times else None


def run_rounds(backend: SlurmBackend, root: Path, n: int, k: int, work_s: float) -> tuple[float, list[dict]]:
    t0 = time.monotonic()
    stats = []
    for start in range(0, n, k):
        submitted = []
        for i in range(start, min(n, start + k)):
            t = time.time()
            submitted.append((t, backend.submit(job(root / f"cand_{i}", work_s))))
        for t, handle in submitted:
            result = backend.wait(handle)
            assert result.status == "ok", result.error
            stats.append({"running": first_event(result.events, "job", "running") - t,
                          "first_cell": first_event(result.events, "cell") - t})
    return time.monotonic() - t0, stats


def local_overhead(root: Path, n: int) -> list[float]:
    backend = LocalBackend()
    out = []
    for i in range(n):
        pool = backend._executor._pool()
        pool.background = False  # warm up at normal priority: nothing trains meanwhile here, only the wait counts
        backend.prewarm()
        deadline = time.monotonic() + 600
        while not any(s.ready for s in pool.standbys):  # the warm kernel is ready, as between iterations
            dead = [s for s in pool.standbys if not s.alive]
            if dead or time.monotonic() > deadline:
                raise SystemExit(f"the standby kernel did not become ready: {[s.log_text()[-500:] for s in dead]}")
            time.sleep(0.2)
        folder = root / f"local_{i}"
        j = job(folder, 0.1)
        t = time.time()
        result = backend.execute(j.input, j.output, {}, timeout_s=600, events_path=j.events_path, cwd=j.cwd,
                                 prewarm_next=False)
        assert result.status == "ok" and result.warm, result.error
        out.append(first_event(result.events, "cell") - t)
    backend.close()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=4, help="candidate iterations")
    parser.add_argument("--work", type=float, default=12.0, help="CPU seconds of work per candidate")
    parser.add_argument("--local-only", action="store_true", help="only the local warm-kernel overhead")
    args = parser.parse_args()
    if args.local_only:
        with tempfile.TemporaryDirectory(prefix="clinagent-bench-") as tmp:
            local = local_overhead(Path(tmp), 3)
        print(f"local warm kernel -> first cell: median {statistics.median(local):.2f} s {local}")
        return
    reason = slurm_available()
    if reason:
        raise SystemExit(f"no SLURM cluster: {reason} (tools/slurm_local.sh start)")
    backend = SlurmBackend(SlurmOptions(cpus_per_job=1, time_margin_s=120))
    backend.poll_s = 0.2
    with tempfile.TemporaryDirectory(prefix="clinagent-bench-") as tmp:
        root = Path(tmp)
        seq_wall, seq = run_rounds(backend, root / "sequential", args.n, 1, args.work)
        print(f"sequential: {seq_wall:.1f} s {seq}", flush=True)
        par_wall, par = run_rounds(backend, root / "parallel", args.n, 2, args.work)
        print(f"--parallel 2: {par_wall:.1f} s {par}", flush=True)
        local = local_overhead(root, 3)
        print(f"local warm: {local}", flush=True)
    both = seq + par
    print(f"candidates: {args.n} x {args.work:.0f} CPU-s, 1 CPU per job")
    print(f"sequential wall: {seq_wall:.1f} s   --parallel 2 wall: {par_wall:.1f} s   "
          f"ratio: {par_wall / seq_wall:.2f} (target <= 0.6)")
    print(f"slurm submit -> job running:  median {statistics.median(s['running'] for s in both):.2f} s")
    print(f"slurm submit -> first cell:   median {statistics.median(s['first_cell'] for s in both):.2f} s "
          f"(sequential rounds only: {statistics.median(s['first_cell'] for s in seq):.2f} s)")
    print(f"local warm kernel -> first cell: median {statistics.median(local):.2f} s")


if __name__ == "__main__":
    main()
