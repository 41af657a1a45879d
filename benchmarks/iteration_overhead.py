"""Per-iteration overhead: everything except training and evaluation (parse, plan, render, papermill and kernel
start, imports, data loading, read-back). Target: <= 3 s.

Usage:
    python benchmarks/iteration_overhead.py [--iterations 3] [--epochs 2] [--n 200] [--pause S] [--cold]
        [--standby low|normal] [--refill-on started|fit_started|fit_finished]

Runs a real session on a small synthetic dataset; timings come from the executor's events:
training = fit_started -> fit_finished, evaluation = fit_finished -> evaluated; the rest of the iteration's wall
time is overhead. "start" is the time from the engine's call to the notebook's first cell (worker and kernel
start, or handing the notebook to a warm kernel); "imports" is the duration of the cell that imports Lightning
and prepares the run. Parse and plan are timed in-process. ``--cold`` turns warm kernels off
(``CLINAGENT_WARM_KERNELS=0``): every notebook then starts its own worker and kernel, for comparison.
``--pause`` waits between iterations as a clinician reviewing each proposal in the sidebar does (not counted);
back to back (the default) is the headless loop.

``--standby normal`` starts the next kernel at this process's priority instead of the lowest (``low``, the
default where the priority can be given back), ``--refill-on`` the event at which it starts. "responsiveness"
is what a Jupyter server in this process would feel: a thread wakes every 20 ms and runs a 1-ms piece of work,
and the delay of each wake-up is recorded while iterations 2+ run (median, 95th percentile, worst).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=2, help="epochs per iteration (training length)")
    parser.add_argument("--n", type=int, default=200, help="synthetic images")
    parser.add_argument("--pause", type=float, default=0.0,
                        help="seconds between iterations (a clinician reading the proposal), not counted")
    parser.add_argument("--cold", action="store_true", help="no warm kernels (each notebook starts its own)")
    parser.add_argument("--standby", choices=("low", "normal"), default=None,
                        help="priority of the next kernel while it warms up (default: low where permitted)")
    parser.add_argument("--refill-on", choices=("started", "fit_started", "fit_finished"), default=None,
                        help="the notebook event at which the next kernel starts (default: the pool's)")
    args = parser.parse_args()
    if args.cold:
        import os

        os.environ["CLINAGENT_WARM_KERNELS"] = "0"
    from clinagent_lab.agent.engine import Engine, prepare_data
    from clinagent_lab.data.synth import generate
    from clinagent_lab.intent import parse_offline
    from clinagent_lab.notebooks.kernels import default_pool
    from clinagent_lab.plan.initializer import initialize_recipe

    pool = default_pool()
    if args.standby is not None:
        pool.background = args.standby == "low"
        pool.refill_on = "started" if pool.background else "fit_finished"
    if args.refill_on is not None:
        pool.refill_on = args.refill_on

    root = Path(tempfile.mkdtemp())
    data = generate("chest_drain", root / "data", n=args.n, image_size=32)
    t = time.perf_counter()
    _, fp = prepare_data(data)
    t_data = time.perf_counter() - t
    t = time.perf_counter()
    spec = parse_offline("pneumothorax on chest x-rays, sensitivity matters", fp)
    t_parse = time.perf_counter() - t
    t = time.perf_counter()
    initialize_recipe(spec, fp)
    t_plan = time.perf_counter() - t

    engine = Engine.create("pneumothorax on chest x-rays, sensitivity matters", data, root / "out",
                           max_iterations=args.iterations, iteration_minutes=5,
                           recipe_overrides={"training.max_epochs": args.epochs})
    rows = []
    probe = Responsiveness()
    for i in range(args.iterations):
        if i == 1:
            probe.start()
        if i and args.pause:
            time.sleep(args.pause)
        t, wall_start = time.perf_counter(), time.time()
        it = engine.run_iteration()
        outer = time.perf_counter() - t
        if it is None:
            break
        events = [json.loads(x) for x in (Path(it.output_dir) / "events.jsonl").read_text().splitlines()]
        when = {e["type"]: e["time"] for e in events if e["type"] in ("fit_started", "fit_finished", "evaluated")}
        first_cell = min(e["time"] for e in events if e["type"] == "cell")
        nb = json.loads(Path(it.notebook).read_text())
        imports = next(c["metadata"].get("papermill", {}).get("duration") or 0.0 for c in nb["cells"]
                       if c["cell_type"] == "code" and "prepare_run(" in "".join(c["source"]))
        train = when["fit_finished"] - when["fit_started"]
        evaluation = when["evaluated"] - when["fit_finished"]
        rows.append({"iteration": it.index, "status": it.status, "warm": bool(it.warm_kernel), "outer_s": outer,
                     "train_s": train, "eval_s": evaluation, "overhead_s": outer - train - evaluation,
                     "start_s": first_cell - wall_start, "imports_s": imports})
    lags = probe.stop()
    print(f"warm kernels: {'off' if args.cold else 'on'}; standby priority: "
          f"{'low' if pool.background else 'normal'}, started at: {pool.refill_on}")
    print(f"data preparation (load, validate, split, leakage, fingerprint; once per session): {t_data:.3f} s")
    print(f"parse: {t_parse * 1000:.1f} ms   plan: {t_plan * 1000:.1f} ms")
    print(f"{'iter':>4} {'status':<7} {'kernel':<6} {'wall':>7} {'train':>7} {'eval':>7} {'overhead':>9} "
          f"{'start':>7} {'imports':>8}")
    for r in rows:
        print(f"{r['iteration']:>4} {r['status']:<7} {'warm' if r['warm'] else 'cold':<6} {r['outer_s']:7.2f} "
              f"{r['train_s']:7.2f} {r['eval_s']:7.2f} {r['overhead_s']:9.2f} {r['start_s']:7.2f} "
              f"{r['imports_s']:8.2f}")
    later = rows[1:] or rows
    med = statistics.median(r["overhead_s"] for r in later)
    print(f"median per-iteration overhead, iterations 2-{len(rows)}: {med:.2f} s (target <= 3 s); "
          f"iteration 1: {rows[0]['overhead_s']:.2f} s; total wall {sum(r['outer_s'] for r in rows):.1f} s, "
          f"training {sum(r['train_s'] for r in rows):.1f} s")
    if lags:
        q = statistics.quantiles(lags, n=20)
        print(f"responsiveness while iterations 2-{len(rows)} ran: wake-up delay median {statistics.median(lags):.1f} ms, "
              f"95th percentile {q[-1]:.1f} ms, worst {max(lags):.1f} ms ({len(lags)} wake-ups)")
    engine.close()


class Responsiveness:
    """A thread that wakes every 20 ms, runs 1 ms of work, and records how late each wake-up came (ms)."""

    def __init__(self, period_s: float = 0.02) -> None:
        self.period_s = period_s
        self.lags: list[float] = []
        self._halt = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> list[float]:
        self._halt.set()
        if self._thread.is_alive():
            self._thread.join()
        return self.lags

    def _run(self) -> None:
        due = time.perf_counter() + self.period_s
        while not self._halt.wait(max(0.0, due - time.perf_counter())):
            end = time.perf_counter() + 0.001
            while time.perf_counter() < end:  # a small request's worth of work
                pass
            self.lags.append((time.perf_counter() - due - 0.001) * 1000)
            due = time.perf_counter() + self.period_s


if __name__ == "__main__":
    main()
