"""Per-iteration overhead: everything except training and evaluation (parse, plan, render, papermill and kernel
start, imports, data loading, read-back). Target: <= 3 s.

Usage:
    python benchmarks/iteration_overhead.py [--iterations 3]

Runs a real session on a small synthetic dataset; timings come from the executor's events:
training = fit_started -> fit_finished, evaluation = fit_finished -> evaluated; the rest of the iteration's wall
time is overhead. Parse and plan are timed in-process.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3)
    args = parser.parse_args()
    from clinagent_lab.agent.engine import Engine, prepare_data
    from clinagent_lab.data.synth import generate
    from clinagent_lab.intent import parse_offline
    from clinagent_lab.plan.initializer import initialize_recipe

    root = Path(tempfile.mkdtemp())
    data = generate("chest_drain", root / "data", n=200, image_size=32)
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
                           recipe_overrides={"training.max_epochs": 2})
    rows = []
    for _ in range(args.iterations):
        t = time.perf_counter()
        it = engine.run_iteration()
        outer = time.perf_counter() - t
        if it is None:
            break
        events = [json.loads(x) for x in (Path(it.output_dir) / "events.jsonl").read_text().splitlines()]
        when = {e["type"]: e["time"] for e in events if e["type"] in ("fit_started", "fit_finished", "evaluated")}
        cells = {e["index"]: e["time"] for e in events if e["type"] == "cell"}
        train = when["fit_finished"] - when["fit_started"]
        evaluation = when["evaluated"] - when["fit_finished"]
        import_cell = cells[min(k for k in cells if k >= 3)] - cells[min(k for k in cells if k >= 2)]
        rows.append({"iteration": it.index, "status": it.status, "outer_s": outer, "train_s": train,
                     "eval_s": evaluation, "overhead_s": outer - train - evaluation,
                     "imports_s": import_cell})
    print(f"data preparation (load, validate, split, leakage, fingerprint; once per session): {t_data:.3f} s")
    print(f"parse: {t_parse * 1000:.1f} ms   plan: {t_plan * 1000:.1f} ms")
    print(f"{'iter':>4} {'status':<7} {'wall':>7} {'train':>7} {'eval':>7} {'overhead':>9} {'imports':>8}")
    for r in rows:
        print(f"{r['iteration']:>4} {r['status']:<7} {r['outer_s']:7.2f} {r['train_s']:7.2f} {r['eval_s']:7.2f} "
              f"{r['overhead_s']:9.2f} {r['imports_s']:8.2f}")
    med = statistics.median(r["overhead_s"] for r in rows)
    print(f"median per-iteration overhead: {med:.2f} s (target <= 3 s); of which the kernel's first imports "
          f"(torch, lightning): {statistics.median(r['imports_s'] for r in rows):.2f} s")


if __name__ == "__main__":
    main()
