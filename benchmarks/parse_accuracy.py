"""How often the offline parser reads a clinician's request right: per field and whole spec.

The corpus (``benchmarks/data/parse_corpus.jsonl``) holds requests with the fields a correct reading gives:
task type, target classes, primary metric with its parameters, risk preference, confounders with their
actions, supervision with its box fraction. ``--part heldout4`` (the default) scores the part written after
the last parser change and never used to tune it (the figure to quote); ``dev`` and ``heldout1`` to
``heldout3`` are parts the parser was developed on (see ``benchmarks/data/parse_corpus_compose.py``).

Usage:
    python benchmarks/parse_accuracy.py [--part heldout4|heldout3|...|dev|all] [--corpus PATH] [--show-misses N]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from clinagent_lab.intent import parse_offline
from clinagent_lab.spec import TaskSpec

CORPUS = Path(__file__).parent / "data" / "parse_corpus.jsonl"
FIELDS = ("task_type", "target_classes", "metric", "risk", "confounders", "supervision")


def read_fields(spec: TaskSpec) -> dict[str, Any]:
    """The fields the corpus checks, in the corpus's own shape (floats rounded to 3 places)."""
    params = {k: round(v, 3) if isinstance(v, float) else v for k, v in spec.primary_metric.params.items()}
    fraction = spec.supervision.box_fraction
    return {
        "task_type": spec.task_type,
        "target_classes": list(spec.target_classes),
        "metric": {"name": spec.primary_metric.name, "params": params},
        "risk": spec.risk_preference,
        "confounders": {c.name: c.action for c in spec.confounders},
        "supervision": {"kind": spec.supervision.kind,
                        "box_fraction": None if fraction is None else round(fraction, 3)},
    }


def _expected(row: dict[str, Any]) -> dict[str, Any]:
    exp = json.loads(json.dumps(row["expect"]))
    exp["metric"]["params"] = {k: round(v, 3) if isinstance(v, float) else v
                               for k, v in exp["metric"]["params"].items()}
    frac = exp["supervision"]["box_fraction"]
    exp["supervision"]["box_fraction"] = None if frac is None else round(frac, 3)
    return exp


def load(path: Path, part: str) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return rows if part == "all" else [r for r in rows if r["part"] == part]


def score(rows: list[dict[str, Any]]) -> tuple[dict[str, float], float, list[tuple[dict, dict, list[str]]]]:
    """Per-field accuracy, whole-spec accuracy and the misses ``(row, read, wrong fields)``."""
    right = dict.fromkeys(FIELDS, 0)
    whole = 0
    misses = []
    for row in rows:
        read = read_fields(parse_offline(row["text"]))
        exp = _expected(row)
        wrong = [f for f in FIELDS if read[f] != exp[f]]
        for f in FIELDS:
            right[f] += f not in wrong
        whole += not wrong
        if wrong:
            misses.append((row, read, wrong))
    n = max(len(rows), 1)
    return {f: right[f] / n for f in FIELDS}, whole / n, misses


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", default="heldout4",
                    help="heldout4 (default), heldout3, heldout2, heldout1, dev or all")
    ap.add_argument("--corpus", type=Path, default=CORPUS)
    ap.add_argument("--show-misses", type=int, default=0, metavar="N", help="print the first N misses")
    args = ap.parse_args(argv)
    rows = load(args.corpus, args.part)
    if not rows:
        print(f"no requests in part {args.part!r} of {args.corpus}", file=sys.stderr)
        return 2
    start = time.perf_counter()
    fields, whole, misses = score(rows)
    ms = 1000 * (time.perf_counter() - start) / len(rows)
    print(f"corpus {args.corpus.name}, part {args.part}: {len(rows)} requests, {ms:.1f} ms per request")
    for f in FIELDS:
        print(f"  {f:<15} {fields[f]:.3f}")
    print(f"  {'whole spec':<15} {whole:.3f}  ({len(rows) - len(misses)}/{len(rows)})")
    for row, read, wrong in misses[:args.show_misses]:
        print(f"\n{row['id']}: {row['text']!r}")
        for f in wrong:
            print(f"  {f}: read {read[f]} expected {row['expect'][f]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
