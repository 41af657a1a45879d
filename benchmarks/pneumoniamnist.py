"""The whole offline loop on PneumoniaMNIST (MedMNIST v2 official split) within a CPU budget.

Usage:
    python benchmarks/pneumoniamnist.py ../shared/data/pneumoniamnist.npz [--minutes 10] [--iterations 3]

Runs ``clinagent run`` semantics through the Python API: parse the request, fingerprint, baseline, refinements
(selection on the validation split only), then the official test split once. Prints test AUROC, accuracy at the
validation-chosen threshold, and wall time. Reference (MedMNIST v2, test AUROC): ResNet-18 (28) 0.944,
ResNet-50 (224) 0.962. Target: >= 0.96 within 10 minutes of CPU on 2 cores.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", help="path to pneumoniamnist.npz")
    parser.add_argument("--minutes", type=float, default=10.0, help="total budget (all iterations)")
    parser.add_argument("--iterations", type=int, default=3)
    parser.add_argument("--out", help="session folder (default: a temporary folder)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    from clinagent_lab.agent.engine import Engine
    from clinagent_lab.cli import ProgressPrinter

    out = Path(args.out or tempfile.mkdtemp(prefix="pneumoniamnist-"))
    start = time.perf_counter()
    engine = Engine.create("pneumonia on paediatric chest x-rays", args.data, out, seed=args.seed,
                           max_iterations=args.iterations, iteration_minutes=args.minutes / args.iterations)
    session = engine.run(on_event=ProgressPrinter())
    wall = time.perf_counter() - start
    m = session.final_test.metrics
    print(f"\nsession: {out}")
    for it in session.iterations:
        print(f"  iteration {it.index} {it.idea:<24} {it.status:<8} val AUROC {it.val_metrics.get('auroc', float('nan')):.4f}"
              f"  {it.decision:<9} {it.wall_s:.0f} s")
    print(f"test AUROC {m['auroc']:.4f}  accuracy {m['accuracy']:.4f}  (threshold {m['threshold']:.3f} chosen on "
          f"validation)  wall {wall / 60:.1f} min  best iteration {session.best_iteration}")


if __name__ == "__main__":
    main()
