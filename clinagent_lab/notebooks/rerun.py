"""Batch reruns of iteration notebooks with papermill: one seed, or a seed study with mean ± sd.

An iteration's values went into its notebook through papermill's injection and are kept beside it in
``parameters.yaml``, with the epoch plan to pin in ``replay.yaml``, so (from the folder that should receive the
outputs)::

    papermill iter_03/iteration.ipynb out.ipynb -f iter_03/parameters.yaml -f iter_03/replay.yaml -p seed 1

reruns it exactly with another seed. This module does the same with a time budget, parameter checks and a
summary, and says which papermill command it ran. Sessions recorded before parameters were injected (values baked
into the parameters cell, no parameters file) rerun with the notebook's own values and the plan in
``run_info.json``.
"""

from __future__ import annotations

import json
import math
import statistics
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..fileio import atomic_write_text
from ..runfolder import RunFolder
from .executor import NotebookExecutor
from .parameters import papermill_command, rerun_parameters
from .render import check_parameters

__all__ = ["rerun_notebook", "rerun_parameters", "seed_study", "SeedStudy", "check_parameters"]


def rerun_notebook(notebook: str | Path, *, seed: int | None = None, params: dict[str, Any] | None = None,
                   out_dir: str | Path | None = None, timeout_s: float = 3600.0,
                   prewarm_next: bool = False, backend: Any = None) -> dict[str, Any]:
    """Rerun one notebook with papermill (see :func:`rerun_parameters`); returns {status, output, metrics,
    headline, error, wall_s, seed, command}, ``command`` being the plain papermill command of the same run.

    ``backend``: where it runs (an :class:`~clinagent_lab.execution.ExecutionBackend`; default this machine).

    ``prewarm_next``: start a kernel for a following run while this one trains (a seed study does).
    """
    nb = Path(notebook).resolve()
    overrides = dict(params or {})
    if seed is not None:
        overrides["seed"] = seed
    files, overrides, values = rerun_parameters(nb, overrides, timeout_s)
    check_parameters(nb, values)
    tag = f"seed_{seed}" if seed is not None else "rerun"
    out = Path(out_dir).resolve() if out_dir else nb.parent / "reruns" / tag
    out.mkdir(parents=True, exist_ok=True)
    command = papermill_command(nb, out / nb.name, files=files, overrides=overrides, cwd=out)
    RunFolder(out, notebook_name=nb.name).write_parameters(values)  # the rerun reruns the same way
    result = (backend or NotebookExecutor()).execute(nb, out / nb.name, values, timeout_s=timeout_s,
                                        events_path=out / "events.jsonl", cwd=out, prewarm_next=prewarm_next)
    metrics: dict[str, Any] = {}
    if result.status == "ok" and RunFolder(out).metrics.exists():
        metrics = RunFolder(out).read_metrics()
    headline = {k: v for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
    return {"status": result.status, "output": out / nb.name, "metrics": metrics, "headline": headline,
            "error": result.error, "wall_s": result.wall_s, "seed": seed, "command": command}


@dataclass
class SeedStudy:
    notebook: str
    runs: list[dict[str, Any]] = field(default_factory=list)
    summary: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def n_ok(self) -> int:
        return sum(1 for r in self.runs if r["status"] == "ok")

    def summary_text(self) -> str:
        lines = [f"seed study of {self.notebook}: {self.n_ok}/{len(self.runs)} runs ok"]
        for key, s in self.summary.items():
            lines.append(f"  {key:<28} {s['mean']:.4f} ± {s['sd']:.4f}  (min {s['min']:.4f}, max {s['max']:.4f}, "
                         f"spread {s['spread']:.4f}, n={int(s['n'])})")
        first = next((r for r in self.runs if r.get("command")), None)
        if first is not None:
            lines.append(f"  as plain papermill (seed {first['seed']}): {first['command']}")
        for r in self.runs:
            if r["status"] != "ok":
                evalue = (r.get("error") or {}).get("evalue", "")
                lines.append(f"  seed {r['seed']}: {r['status']} — {str(evalue)[:200]}")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"notebook": self.notebook, "summary": self.summary,
                "runs": [{"seed": r["seed"], "status": r["status"], "metrics": r["headline"],
                          "output": str(r["output"]), "error": r.get("error"), "wall_s": r["wall_s"],
                          "command": r.get("command")}
                         for r in self.runs]}


def _summarise(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    keys = sorted({k for r in runs if r["status"] == "ok" for k in r["headline"]})
    out = {}
    for key in keys:
        values = [float(r["headline"][key]) for r in runs if r["status"] == "ok" and key in r["headline"]
                  and not math.isnan(float(r["headline"][key]))]
        if not values:
            continue
        out[key] = {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
                    "min": min(values), "max": max(values), "spread": max(values) - min(values),
                    "n": float(len(values))}
    return out


def seed_study(notebook: str | Path, seeds: list[int], *, params: dict[str, Any] | None = None,
               out_dir: str | Path | None = None, workers: int = 1, timeout_s: float = 3600.0,
               backend: Any = None) -> SeedStudy:
    """Run ``notebook`` once per seed (on ``backend``, default this machine); failures are reported next to
    successes. Writes seed_study.json."""

    nb = Path(notebook).resolve()
    check_parameters(nb, {**(params or {}), "seed": 0})
    root = Path(out_dir).resolve() if out_dir else nb.parent / "seed_study"

    last = seeds[-1] if seeds else None

    def one(seed: int) -> dict[str, Any]:
        try:
            return rerun_notebook(nb, seed=seed, params=params, out_dir=root / f"seed_{seed}", timeout_s=timeout_s,
                                  prewarm_next=seed != last, backend=backend)
        except Exception as exc:  # noqa: BLE001 - one failed run is reported next to the others, never fatal
            return {"status": "crash", "output": root / f"seed_{seed}", "metrics": {}, "headline": {},
                    "error": {"ename": type(exc).__name__, "evalue": str(exc)}, "wall_s": 0.0, "seed": seed}

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        runs = list(pool.map(one, seeds))
    study = SeedStudy(notebook=str(nb), runs=runs, summary=_summarise(runs))
    atomic_write_text(root / "seed_study.json", json.dumps(study.to_dict(), indent=2, default=str))
    lines = ["metric,mean,sd,min,max,spread,n"] + [
        f"{k},{v['mean']:.6f},{v['sd']:.6f},{v['min']:.6f},{v['max']:.6f},{v['spread']:.6f},{int(v['n'])}"
        for k, v in study.summary.items()]
    atomic_write_text(root / "seed_study.csv", "\n".join(lines) + "\n")
    return study
