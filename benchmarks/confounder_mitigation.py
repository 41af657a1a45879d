"""Shortcut mitigation benchmark: a drain-like artefact correlated with the label in train/validation and
independent of it in test. Baseline versus the mitigated iteration the loop keeps, both scored on the
unconfounded test split.

Usage:
    python benchmarks/confounder_mitigation.py ../shared/data/pneumoniamnist.npz [--correlation 0.9]
           [--minutes 4] [--max-per-split N]

The session itself evaluates only its kept model on test (once); this benchmark additionally scores the
baseline's checkpoint on the same test split, which is what a comparison needs. Targets: dependence of the
prediction on the drain given the label reduced by >= 60%, excess FPR on drain-positive negatives reduced by
>= 70%, test AUROC not lower than the baseline's, the whole comparison in under 10 minutes.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

REQUEST = "pneumonia on paediatric chest x-rays; don't let the model cheat by looking at chest drains"


def test_metrics(engine, iteration) -> dict:
    """Score one iteration's checkpoint on the test split (benchmark only: the session's own test read is
    separate and happens once)."""
    from clinagent_lab.agent.engine import _load_module
    from clinagent_lab.tasks import get_backend

    backend = get_backend(iteration.recipe.task_type)
    dataset = engine.dataset(include_test=True)
    dm = backend.make_datamodule(dataset, iteration.recipe, engine.session.spec, include_test=True)
    predictions = backend.predict(_load_module(iteration), dm, "test")
    threshold = iteration.val_metrics.get("threshold")
    return backend.evaluate(predictions, iteration.recipe, engine.session.spec, dataset, threshold=threshold)


def summary(m: dict) -> dict:
    c = m["confounders"]["chest_drain"]
    return {"auroc": m["auroc"], "fpr_drain": c["reliance"]["fpr_confounder_pos"],
            "fpr_no_drain": c["reliance"]["fpr_confounder_neg"], "excess_fpr": c["reliance"]["excess_fpr"],
            "partial_correlation": c["dependence"]["partial_correlation"],
            "conditional_mi": c["dependence"]["conditional_mi"], "hsic": c["dependence"]["hsic"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="MedMNIST .npz to draw the drain on (e.g. pneumoniamnist.npz)")
    parser.add_argument("--correlation", type=float, default=0.9)
    parser.add_argument("--minutes", type=float, default=4.0, help="budget per iteration")
    parser.add_argument("--max-per-split", type=int, default=None)
    parser.add_argument("--mitigation", help="try this mitigation first (default: the refiner's order, "
                        "clinagent_lab.models.mitigations.MITIGATION_ORDER)")
    parser.add_argument("--seed", type=int, default=0, help="training seed of both iterations")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.mitigation:
        from clinagent_lab.models import mitigations

        mitigations.MITIGATIONS.get(args.mitigation)  # unknown names fail here, listing the known ones
        mitigations.MITIGATION_ORDER = (args.mitigation, *[m for m in mitigations.MITIGATION_ORDER
                                                           if m != args.mitigation])
    from clinagent_lab.agent.engine import Engine
    from clinagent_lab.cli import ProgressPrinter
    from clinagent_lab.data.synth import generate

    root = Path(args.out or tempfile.mkdtemp(prefix="drain-bench-"))
    start = time.perf_counter()
    data = generate("drain_overlay", root / "data", base=args.base, correlation=args.correlation,
                    max_per_split=args.max_per_split)
    engine = Engine.create(REQUEST, data, root / "session", max_iterations=2, iteration_minutes=args.minutes,
                           seed=args.seed)
    session = engine.run(on_event=ProgressPrinter())
    base, mitigated = session.iterations[0], session.iterations[-1]
    rows = {"baseline": summary(test_metrics(engine, base)),
            f"mitigated ({mitigated.recipe.debias.method})": summary(session.final_test.metrics
                                                                      if session.best_iteration == mitigated.index
                                                                      else test_metrics(engine, mitigated))}
    wall = time.perf_counter() - start
    print(f"\nsession: {root / 'session'}; kept iteration {session.best_iteration} "
          f"({session.best().decision_reason})")
    keys = list(next(iter(rows.values())))
    print(f"{'test split (drain independent of label)':<34}" + "".join(f"{k:>20}" for k in keys))
    for name, r in rows.items():
        print(f"{name:<34}" + "".join(f"{(r[k] if r[k] is not None else float('nan')):>20.4f}" for k in keys))
    b, m = rows["baseline"], list(rows.values())[1]
    dep = 1 - abs(m["partial_correlation"]) / abs(b["partial_correlation"])
    exc = 1 - max(m["excess_fpr"], 0.0) / b["excess_fpr"] if b["excess_fpr"] > 0 else float("nan")
    print(f"dependence (partial correlation) reduced by {dep:.1%} (target >= 60%); excess FPR reduced by "
          f"{exc:.1%} (target >= 70%); test AUROC {m['auroc'] - b['auroc']:+.4f} vs baseline; wall "
          f"{wall / 60:.1f} min (target < 10); seed {args.seed}")


if __name__ == "__main__":
    main()
