"""Shortcut mitigation benchmark: a drain-like artefact correlated with the label in train/validation and
independent of it in test. Baseline versus the mitigated iteration the loop keeps, both scored on the
unconfounded test split.

Usage:
    python benchmarks/confounder_mitigation.py ../shared/data/pneumoniamnist.npz [--correlation 0.9]
           [--minutes 4] [--max-per-split N] [--seed S | --seeds 0 1 2 3 4]

With ``--seeds`` the comparison runs once per training seed (same drain images) and ends with the per-seed
table, the mean and the spread (markdown, as in docs/benchmarks.md). A finished session of a seed already
in ``--out`` (``session-seed<S>``) is scored again rather than retrained, so an interrupted study continues
where it stopped, and seeds can be trained by several commands into one ``--out`` and tabulated by one.

The session itself evaluates only its kept model on test (once); this benchmark additionally scores the
baseline's checkpoint on the same test split, which is what a comparison needs. Targets: dependence of the
prediction on the drain given the label reduced by >= 60%, excess FPR on drain-positive negatives reduced by
>= 70%, test AUROC not lower than the baseline's, the whole comparison in under 10 minutes.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

REQUEST = "pneumonia on paediatric chest x-rays; don't let the model cheat by looking at chest drains"


def test_metrics(engine, iteration) -> dict:
    """Score one iteration's checkpoint on the test split (benchmark only: the session's own test read is
    separate and happens once)."""
    from clinagent_lab.tasks import get_backend

    backend = get_backend(iteration.recipe.task_type)
    dataset = engine.dataset(include_test=True)
    dm = backend.make_datamodule(dataset, iteration.recipe, engine.session.spec, include_test=True)
    predictions = backend.predict(backend.load_module(iteration.checkpoint), dm, "test")
    threshold = iteration.val_metrics.get("threshold")
    return backend.evaluate(predictions, iteration.recipe, engine.session.spec, dataset, threshold=threshold)


def summary(m: dict) -> dict:
    c = m["confounders"]["chest_drain"]
    return {"auroc": m["auroc"], "fpr_drain": c["reliance"]["fpr_confounder_pos"],
            "fpr_no_drain": c["reliance"]["fpr_confounder_neg"], "excess_fpr": c["reliance"]["excess_fpr"],
            "partial_correlation": c["dependence"]["partial_correlation"],
            "conditional_mi": c["dependence"]["conditional_mi"], "hsic": c["dependence"]["hsic"]}


TARGETS = {"dependence": 0.60, "excess_fpr": 0.70}
MEAN_TARGETS = {"dependence": 0.75, "excess_fpr": 0.75}


def reductions(b: dict, m: dict) -> dict:
    """Relative reductions of dependence and excess FPR, and the test AUROC change, mitigated vs baseline."""
    dep = 1 - abs(m["partial_correlation"]) / abs(b["partial_correlation"])
    exc = 1 - max(m["excess_fpr"], 0.0) / b["excess_fpr"] if b["excess_fpr"] > 0 else float("nan")
    return {"dependence": dep, "excess_fpr": exc, "auroc": m["auroc"] - b["auroc"]}


def meets(r: dict) -> bool:
    return (r["dependence"] >= TARGETS["dependence"] and r["excess_fpr"] >= TARGETS["excess_fpr"]
            and r["auroc"] >= 0)


def run_seed(args, data: Path, root: Path, seed: int) -> dict:
    """One session (baseline, then the mitigation the loop keeps) and both checkpoints scored on test."""
    from clinagent_lab.agent.engine import Engine
    from clinagent_lab.cli import ProgressPrinter

    start = time.perf_counter()
    folder = root / f"session-seed{seed}"
    if _finished(folder):  # a finished session in --out is scored again, not retrained
        engine = Engine.open(folder)
        session = engine.session
        start -= sum(it.wall_s or 0.0 for it in session.iterations)
        print(f"\nseed {seed}: reusing the finished session {folder}")
    else:
        engine = Engine.create(REQUEST, data, folder, max_iterations=2, iteration_minutes=args.minutes, seed=seed)
        session = engine.run(on_event=_retrying(engine, ProgressPrinter()))
    base = next(it for it in session.iterations if it.decision == "baseline")
    mitigated = session.iterations[-1]
    if mitigated.recipe.debias.method == "none" or mitigated.status != "ok":
        raise SystemExit(f"seed {seed}: no finished mitigation to compare (iterations: "
                         f"{[(it.index, it.status, it.recipe.debias.method) for it in session.iterations]})")
    rows = {"baseline": summary(test_metrics(engine, base)),
            f"mitigated ({mitigated.recipe.debias.method})": summary(session.final_test.metrics
                                                                      if session.best_iteration == mitigated.index
                                                                      else test_metrics(engine, mitigated))}
    wall = time.perf_counter() - start
    print(f"\nsession: {root / f'session-seed{seed}'}; kept iteration {session.best_iteration} "
          f"({session.best().decision_reason})")
    keys = list(next(iter(rows.values())))
    print(f"{'test split (drain independent of label)':<34}" + "".join(f"{k:>20}" for k in keys))
    for name, r in rows.items():
        print(f"{name:<34}" + "".join(f"{(r[k] if r[k] is not None else float('nan')):>20.4f}" for k in keys))
    b, m = rows["baseline"], list(rows.values())[1]
    r = reductions(b, m)
    shares = {name: _saliency_share(it) for name, it in (("baseline", base), ("mitigated", mitigated))}
    print("Grad-CAM attribution inside the drain (validation sample, drain-bearing images): "
          + ", ".join(f"{k} {v:.1%}" if v is not None else f"{k} -" for k, v in shares.items()))
    print(f"dependence (partial correlation) reduced by {r['dependence']:.1%} (target >= 60%); excess FPR reduced "
          f"by {r['excess_fpr']:.1%} (target >= 70%); test AUROC {r['auroc']:+.4f} vs baseline; wall "
          f"{wall / 60:.1f} min (target < 10); seed {seed}")
    return {"seed": seed, "baseline": b, "mitigated": m, "method": mitigated.recipe.debias.method,
            "kept": session.best_iteration == mitigated.index, "wall_min": wall / 60, "saliency": shares, **r}


#: iterations a study may add when one ends without a result (a timeout on a machine shared with others)
MAX_RETRIES = 2


def _retrying(engine, printer):
    """Event sink that prints, and gives the loop one more iteration when one fails (at most MAX_RETRIES), so a
    timed-out baseline is followed by a baseline and then the mitigation, as in an undisturbed run."""
    retries = []

    def on_event(event: dict) -> None:
        printer(event)
        if event.get("type") == "iteration_finished" and event.get("status") != "ok" and len(retries) < MAX_RETRIES:
            retries.append(event.get("iteration"))
            engine.session.spec.budget.max_iterations += 1
            print(f"  (iteration {event.get('iteration')} ended '{event.get('status')}': one more iteration allowed)")
    return on_event


def _finished(folder: Path) -> bool:
    """A session of two iterations whose kept model has been read on test (what ``run_seed`` leaves)."""
    path = folder / "session.json"
    if not path.is_file():
        return False
    raw = json.loads(path.read_text())
    its = raw.get("iterations", [])
    return (raw.get("final_test") is not None and any(it.get("decision") == "baseline" for it in its)
            and its[-1].get("status") == "ok" and its[-1]["recipe"]["debias"]["method"] != "none")


def _saliency_share(iteration) -> float | None:
    """Mean share of the Grad-CAM map inside the drain, over the drain-bearing images of the validation sample
    whose maps the iteration's notebook saved (recomputed from ``saliency.npz``)."""
    from clinagent_lab.evaluation.saliency import load_saliency

    maps = load_saliency(Path(iteration.output_dir or "."))
    return None if maps is None else maps.summary().get("share_inside_artefact")


def _pct(x: float) -> str:
    return f"{x:+.1%}".replace("-", "\u2212").replace("%", " %")


def _num(x: float, digits: int = 3) -> str:
    return f"{x:+.{digits}f}".replace("-", "\u2212")


def seed_table(results: list[dict]) -> str:
    """The markdown tables of docs/benchmarks.md: per seed and iteration, then reductions, mean and spread."""
    import numpy as np

    lines = ["| seed | iteration | AUROC | FPR, drain | FPR, no drain | excess FPR | partial corr. | wall |",
             "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for r in results:
        for name in ("baseline", "mitigated"):
            v = r[name]
            label = name if name == "baseline" else f"{r['method']} ({'kept' if r['kept'] else 'discarded'})"
            wall = f"{r['wall_min']:.1f} min" if name == "mitigated" else ""
            lines.append(f"| {r['seed']} | {label} | {v['auroc']:.4f} | {v['fpr_drain']:.4f} | "
                         f"{v['fpr_no_drain']:.4f} | {v['excess_fpr']:.4f} | {v['partial_correlation']:.4f} | {wall} |")
    lines += ["", "| seed | dependence (partial corr.) | excess FPR | test AUROC | all per-seed targets | "
              "Grad-CAM share inside the drain (val.) |", "| --- | --- | --- | --- | --- | --- |"]
    for r in results:
        sal = r.get("saliency") or {}
        share = (f"{sal['baseline']:.1%} → {sal['mitigated']:.1%}"
                 if sal.get("baseline") is not None and sal.get("mitigated") is not None else "–")
        lines.append(f"| {r['seed']} | {_pct(-r['dependence'])} | {_pct(-r['excess_fpr'])} | {_num(r['auroc'])} | "
                     f"{'yes' if meets(r) else 'no'} | {share} |")
    stat = {k: np.array([r[k] for r in results]) for k in ("dependence", "excess_fpr", "auroc")}
    sd = {k: float(v.std(ddof=1)) if len(v) > 1 else 0.0 for k, v in stat.items()}
    lines.append(f"| mean | **{_pct(-stat['dependence'].mean())}** | **{_pct(-stat['excess_fpr'].mean())}** | "
                 f"**{_num(stat['auroc'].mean())}** | {sum(meets(r) for r in results)} of {len(results)} | |")
    lines.append(f"| spread: SD (min to max) | {sd['dependence']:.1%} ({_pct(-stat['dependence'].max())} to "
                 f"{_pct(-stat['dependence'].min())}) | {sd['excess_fpr']:.1%} ({_pct(-stat['excess_fpr'].max())} "
                 f"to {_pct(-stat['excess_fpr'].min())}) | {sd['auroc']:.3f} ({_num(stat['auroc'].min())} to "
                 f"{_num(stat['auroc'].max())}) | | |")
    mean_ok = all(stat[k].mean() >= v for k, v in MEAN_TARGETS.items())
    lines.append("")
    lines.append(f"Per-seed targets (dependence −60 %, excess FPR −70 %, AUROC not lower) met by "
                 f"{sum(meets(r) for r in results)} of {len(results)} seeds; mean targets (−75 % / −75 %) "
                 f"{'met' if mean_ok else 'not met'}.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("base", help="MedMNIST .npz to draw the drain on (e.g. pneumoniamnist.npz)")
    parser.add_argument("--correlation", type=float, default=0.9)
    parser.add_argument("--minutes", type=float, default=4.0, help="budget per iteration")
    parser.add_argument("--max-per-split", type=int, default=None)
    parser.add_argument("--mitigation", help="try this mitigation first (default: the refiner's order, "
                        "clinagent_lab.models.mitigations.MITIGATION_ORDER)")
    seeds = parser.add_mutually_exclusive_group()
    seeds.add_argument("--seed", type=int, default=0, help="training seed of both iterations")
    seeds.add_argument("--seeds", type=int, nargs="+", help="run once per training seed and print the table")
    parser.add_argument("--out")
    args = parser.parse_args()
    if args.mitigation:
        from clinagent_lab.models import mitigations

        mitigations.MITIGATIONS.get(args.mitigation)  # unknown names fail here, listing the known ones
        mitigations.MITIGATION_ORDER = (args.mitigation, *[m for m in mitigations.MITIGATION_ORDER
                                                           if m != args.mitigation])
    from clinagent_lab.data.synth import generate

    root = Path(args.out or tempfile.mkdtemp(prefix="drain-bench-"))
    data = root / "data"
    if not (data / "manifest.csv").is_file():  # the same drain images for every seed and every rerun
        data = generate("drain_overlay", data, base=args.base, correlation=args.correlation,
                        max_per_split=args.max_per_split)
    results = [run_seed(args, data, root, seed) for seed in (args.seeds or [args.seed])]
    if args.seeds:
        (root / "seeds.json").write_text(json.dumps(results, indent=1))
        print("\n" + seed_table(results))


if __name__ == "__main__":
    main()
