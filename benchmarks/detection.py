"""Wrist-fracture detection on synthetic GRAZPEDWRI-DX-format data: CPU training throughput and mAP@50.

Usage:
    python benchmarks/detection.py [--n 160] [--image-size 64] [--box-fraction 0.15] [--minutes 3]

Runs the offline loop with the seed request (baseline, then the teacher-student pseudo-labelling the refiner
proposes for mixed supervision), each iteration under the same budget, then the test split once. Prints
training images/s (from the progress events) and validation/test mAP@50.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path


def throughput(it) -> float | None:
    events = [json.loads(x) for x in (Path(it.output_dir) / "events.jsonl").read_text().splitlines()]
    start = next((e for e in events if e["type"] == "fit_started"), None)
    end = next((e for e in events if e["type"] == "fit_finished"), None)
    if not start or not end or not end.get("step"):
        return None
    return end["step"] * it.recipe.data.batch_size / (end["time"] - start["time"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=160)
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--box-fraction", type=float, default=0.15)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--out")
    args = parser.parse_args()
    from clinagent_lab.agent.engine import Engine
    from clinagent_lab.cli import ProgressPrinter
    from clinagent_lab.data.synth import generate

    root = Path(args.out or tempfile.mkdtemp(prefix="wrist-bench-"))
    data = generate("grazpedwri", root / "data", n=args.n, image_size=args.image_size,
                    box_fraction=args.box_fraction)
    start = time.perf_counter()
    request = f"detect wrist fractures with boxes, only {args.box_fraction:.0%} of images have boxes"
    engine = Engine.create(request, data, root / "session", max_iterations=2, iteration_minutes=args.minutes)
    session = engine.run(on_event=ProgressPrinter())
    wall = time.perf_counter() - start
    print(f"\nsession: {root / 'session'}  ({args.n} images at {args.image_size} px, boxes on "
          f"{args.box_fraction:.0%})")
    for it in session.iterations:
        rate = throughput(it)
        print(f"  iteration {it.index} {it.idea:<16} {it.status:<8} arch {it.recipe.model.architecture:<22} "
              f"val mAP@50 {it.val_metrics.get('map50', float('nan')):.4f}  fracture AP@50 "
              f"{it.val_metrics.get('ap50_target') or float('nan'):.4f}  train {rate or float('nan'):.1f} img/s  "
              f"{it.decision}")
    m = session.final_test.metrics if session.final_test else {}
    print(f"test (once): mAP@50 {m.get('map50', float('nan')):.4f}  image AUROC {m.get('image_auroc') or float('nan'):.4f}"
          f"  wall {wall / 60:.1f} min")


if __name__ == "__main__":
    main()
