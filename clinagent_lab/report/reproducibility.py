"""The ``reproducibility`` and ``seed-study`` sections: versions, seeds, hashes, the recipe and the commands."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

from ..notebooks.parameters import papermill_command, rerun_parameters
from ..runfolder import RunInfo
from .context import ReportContext
from .markup import Code

__all__ = ["commands", "reproducibility_section", "seed_study_section"]


def _q(value: object) -> str:
    return shlex.quote(str(value))


def commands(ctx: ReportContext) -> list[tuple[str, str]]:
    """(purpose, shell command) pairs that reproduce the session, its best iteration and this report."""
    s = ctx.session
    run = ["clinagent", "run", "--intent", _q(s.request), "--data", _q(s.data_path), "--out", _q(s.out_dir),
           "--seed", str(s.seed), "--max-iterations", str(s.spec.budget.max_iterations),
           "--iteration-minutes", f"{s.spec.budget.iteration_minutes:g}"]
    if s.data_format:
        run += ["--format", _q(s.data_format)]
    run += [x for k, v in s.format_options.items() for x in ("--format-option", _q(f"{k}={json.dumps(v)}"))]
    run += [x for k, v in s.recipe_overrides.items() for x in ("--set", _q(f"{k}={json.dumps(v)}"))]
    if s.model_name and s.model_name != "offline":
        run += ["--model", _q(s.model_name)]
    out = [("the whole session (a new run: iterations may differ if an LLM refines)", " ".join(run))]
    best = s.best()
    if best is not None and best.notebook:
        nb, seed = Path(best.notebook), best.recipe.seed
        files, overrides, _ = rerun_parameters(nb, {})
        out += [
            ("the best iteration's notebook with the values papermill injected and the epochs it planned "
             "(outputs go to the folder it is run from; add -p seed S for another seed)",
             papermill_command(nb, "out.ipynb", files=files, overrides=overrides)),
            ("the same through clinagent (outputs in reruns/seed_<s>/ beside the notebook)",
             f"clinagent rerun {_q(nb)} --seed {seed}"),
            ("a seed study of the best iteration (mean ± sd over seeds)",
             f"clinagent rerun {_q(nb)} --seeds 0 1 2 3 4"),
        ]
    out.append(("this report", f"clinagent report {_q(s.out_dir)}"))
    return out


def _versions(ctx: ReportContext) -> tuple[dict[str, str], str]:
    versions = ctx.inputs.run_info.get("versions")
    if isinstance(versions, dict) and versions:
        return versions, "recorded by the best iteration when it ran"
    # deferred: pulls in lightning, slow to import
    from ..notebooks.runtime import package_versions

    return package_versions(), "not recorded by the session: versions installed when this report was written"


def _epochs_text(info: dict) -> str:
    """What the best iteration trained against what it planned (the plan a rerun replays)."""
    run = info.get("epochs_run")
    plan = RunInfo.model_validate(info).recorded_plan()
    if run is None:
        return "—"
    text = f"{run} trained"
    if plan:
        text += f", {' then '.join(str(e) for e in plan)} planned"
        text += " (revised after the second epoch)" if len(plan) > 1 else ""
    if info.get("stopped_by_time"):
        text += "; stopped by the time guard before the end of its schedule"
    return text


def _weights_text(best: object) -> str | list[Any]:
    model = getattr(getattr(best, "recipe", None), "model", None)
    name = getattr(model, "pretrained", None) or getattr(model, "pretrained_path", None)
    if not name:
        return "none: trained from random initialisation"
    sha = getattr(model, "pretrained_sha256", None) or "not recorded"
    return [Code(str(name)), ", sha256 ", Code(sha)]


def reproducibility_section(ctx: ReportContext) -> dict[str, Any]:
    s, fp, best = ctx.session, ctx.session.fingerprint, ctx.session.best()
    versions, where = _versions(ctx)
    info = ctx.inputs.run_info
    pairs = [("session seed", s.seed),
             ("best iteration's seed", best.recipe.seed if best else "—"),
             ("data fingerprint (sha256 over image ids, labels and splits)", Code(fp.content_hash or "—")),
             ("frozen split table", Code(str(Path(s.out_dir) / "splits.csv"))),
             ("evaluator hash", Code(info.get("evaluator_hash") or "—")),
             ("best iteration notebook", Code(str(best.notebook if best else "—"))),
             ("best iteration's epochs", _epochs_text(info)),
             ("pretrained weights (name, sha256)", _weights_text(best)),
             ("test reads", s.test_reads)]
    recipe = best.recipe.model_dump_json(indent=2) if best else "{}"
    return {"pairs": pairs, "versions": sorted(versions.items()), "versions_source": where,
            "commands": [(purpose, Code(cmd, block=True)) for purpose, cmd in commands(ctx)], "recipe": recipe}


def seed_study_section(ctx: ReportContext) -> dict[str, Any] | None:
    study = ctx.inputs.seed_study
    if not study:
        return None
    summary = study.get("summary") or {}
    rows = [[k, v.get("mean"), v.get("sd"), v.get("min"), v.get("max"), v.get("spread"), int(v.get("n", 0))]
            for k, v in sorted(summary.items())]
    runs = [[r.get("seed"), r.get("status"), (r.get("metrics") or {}).get("primary"),
             (r.get("metrics") or {}).get("selection_value"), r.get("wall_s")] for r in study.get("runs") or []]
    return {"path": study.get("path"), "rows": rows, "runs": runs}
