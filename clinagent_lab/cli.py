"""The ``clinagent`` command line: parse, run, rerun, synth, demo, report.

Errors print one clear line (what, where, what to do) and exit with code 2; ``--debug`` shows the traceback.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from .commands import cluster
from .cli_progress import ProgressPrinter, print_summary, progress_display
from .cli_resources import add_scale_flags, rerun_recipe_param, scale_overrides
from .cli_resources import register as register_resources
from .data.synth import SYNTH_KINDS, _ensure_builtin, generate
from .demo_check import external_check, print_external_check
from .commands import export as model_export
from .cli_questions import ask_questions
from .errors import ClinagentError
from .llm.client import resolve_model

__all__ = ["main", "build_parser", "ProgressPrinter"]

EXIT_USAGE = 2
#: the demo's synthetic chest drain (docs/benchmarks.md, "`clinagent demo`"): pneumothoraces of varying
#: visibility (some too faint to see) beside a drain on 80% of positives and 20% of negatives in train/val
DEMO_FINDING_CONTRAST = 1.0
DEMO_FINDING_SPREAD = 0.7
DEMO_NOISE = 0.03
DEMO_CORRELATION = 0.6
#: the baseline, then the mitigation the refiner proposes; the first iteration also pays the kernel's start-up
DEMO_ITERATIONS = 2
DEMO_MINUTES = 4.0
#: 24 px keeps the pneumothorax visible and lets a CPU train enough epochs for the mitigation to catch up
DEMO_IMAGE_SIZE = 24
DEMO_REQUEST = ("pneumothorax on chest X-rays; don't let the model cheat by looking at chest drains; "
                "sensitivity matters")


# --------------------------------------------------------------------------------------------------------------
# commands
# --------------------------------------------------------------------------------------------------------------
def _resolve_model(value: str | None) -> str:
    return resolve_model(value)


def _llm_options(args: argparse.Namespace) -> dict[str, Any]:
    return {"api_base": getattr(args, "api_base", None), "max_tokens_total": getattr(args, "max_tokens", None),
            "max_cost_usd": getattr(args, "max_cost", None)}


def cmd_parse(args: argparse.Namespace) -> int:
    from .agent.engine import interpret, prepare_data  # deferred: the data stack (pandas) is not needed to start

    fingerprint = None
    if args.data:
        _, fingerprint = prepare_data(args.data, args.format, seed=args.seed)
    spec = interpret(args.text, fingerprint, model=_resolve_model(args.model), llm_options=_llm_options(args))
    if args.json:
        print(spec.model_dump_json(indent=2))
    else:
        print(_spec_summary(spec))
    return 0


def _spec_summary(spec: Any) -> str:
    lines = [f"objective:   {spec.objective}", f"task:        {spec.task_type} ({spec.modality})",
             f"classes:     {spec.classes}", f"targets:     {spec.target_classes}",
             f"metric:      {spec.primary_metric.name} {spec.primary_metric.params}",
             f"risk:        {spec.risk_preference}",
             f"confounders: {[(c.name, c.column, c.action) for c in spec.confounders]}",
             f"supervision: {spec.supervision.kind} (boxes on {spec.supervision.box_fraction})"]
    lines += [f"assumed:     {a}" for a in spec.assumptions]
    lines += [f"question:    {q.text}" + (f" (default: {q.default})" if q.options else "")
              for q in spec.questions]
    return "\n".join(lines)


def cmd_run(args: argparse.Namespace) -> int:
    from .agent.engine import Engine  # deferred: the data stack (pandas) is not needed to start

    out = Path(args.out or f"clinagent-runs/{time.strftime('%Y%m%d-%H%M%S')}")
    options = dict(_parse_kv(args.format_option or []))
    engine = Engine.create(args.intent, args.data, out, model=_resolve_model(args.model), seed=args.seed,
                           max_iterations=args.max_iterations, iteration_minutes=args.iteration_minutes,
                           data_format=args.format, format_options=options,
                           recipe_overrides={**dict(_parse_kv(args.set or [])), **scale_overrides(args)},
                           llm_options=_llm_options(args), execution=cluster.execution_options(args))
    answered = ask_questions(engine.session.spec, yes=args.yes)
    spec = engine.update_spec(answered) if answered is not engine.session.spec else engine.session.spec
    print(_spec_summary(spec), file=sys.stderr)
    printer = progress_display(args.verbose)
    session = engine.run(on_event=printer)
    _close(printer)
    return _print_outcome(session)


def _close(printer: Any) -> None:
    if hasattr(printer, "close"):
        printer.close()


def _print_outcome(session: Any) -> int:
    out = Path(session.out_dir)
    print(f"\nsession:      {out / 'session.json'}")
    print(f"notebooks:    {out / 'iterations'}")
    print_summary(session)
    if session.final_test is not None:
        print(f"predictions:  {session.final_test.predictions}")
        m = session.final_test.metrics
        keys = [k for k in ("primary", "auroc", "auroc_macro", "balanced_accuracy", "sensitivity", "specificity",
                            "map50") if isinstance(m.get(k), (int, float))]
        print("test (once): " + ", ".join(f"{k} {m[k]:.4f}" for k in keys))
        return 0
    print("no model was kept: " + (session.stop_reason or "see the iterations above"), file=sys.stderr)
    return 1


def cmd_synth(args: argparse.Namespace) -> int:
    options = dict(_parse_kv(args.option or []))
    _ensure_builtin()
    _check_synth_options(args.kind, SYNTH_KINDS.get(args.kind), options)
    try:
        path = generate(args.kind, args.out, seed=args.seed, **options)
    except ValueError as exc:  # generators reject impossible sizes and rates with a ValueError
        raise ClinagentError(f"cannot synthesise '{args.kind}': {exc}", where="--option",
                             fix="change the option values") from exc
    print(path)
    return 0


def _check_synth_options(kind: str, generator: Any, options: dict[str, Any]) -> None:
    """Unknown or missing generator options as a clear error instead of a TypeError traceback."""
    params = [p for p in list(inspect.signature(generator).parameters.values())[1:]
              if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD) and p.name != "seed"]
    names = [p.name for p in params]
    unknown = sorted(set(options) - set(names))
    if unknown:
        raise ClinagentError(f"option(s) {', '.join(unknown)} are not options of synthetic kind '{kind}'",
                             where="--option", fix=f"use KEY=VALUE with KEY one of: {', '.join(names)}")
    missing = [p.name for p in params if p.default is p.empty and p.name not in options]
    if missing:
        raise ClinagentError(f"synthetic kind '{kind}' needs option(s) {', '.join(missing)}", where="--option",
                             fix=f"pass --option {missing[0]}=VALUE")


def cmd_demo(args: argparse.Namespace) -> int:
    from .agent.engine import Engine  # deferred: the data stack (pandas) is not needed to start

    out = Path(args.out or "clinagent-demo").resolve()
    # a faint pneumothorax beside a bright drain: a plain model leans on the drain, mitigation has room to help
    data = generate("chest_drain", out / "data", seed=args.seed, n=args.n, image_size=DEMO_IMAGE_SIZE,
                    correlation=DEMO_CORRELATION, finding_contrast=DEMO_FINDING_CONTRAST,
                    finding_spread=DEMO_FINDING_SPREAD, noise=DEMO_NOISE)
    request = DEMO_REQUEST
    print(f"demo data (synthetic, chest-radiograph-like, drain correlated with the label): {data}")
    print(f"request: {request!r}")
    engine = Engine.create(request, data, out / "session", model=_resolve_model(args.model), seed=args.seed,
                           max_iterations=args.max_iterations, iteration_minutes=args.iteration_minutes,
                           llm_options=_llm_options(args))
    print(_spec_summary(engine.session.spec))
    printer = progress_display(args.verbose, sys.stdout)
    session = engine.run(on_event=printer)
    _close(printer)
    code = _print_outcome(session)
    if session.final_test is not None:  # the lesson: baseline and kept model on data they have never seen
        fresh = generate("chest_drain", out / "fresh", seed=args.seed + 1, n=args.n, image_size=DEMO_IMAGE_SIZE,
                         correlation=0.0, finding_contrast=DEMO_FINDING_CONTRAST,
                         finding_spread=DEMO_FINDING_SPREAD, noise=DEMO_NOISE)
        print_external_check(external_check(session, fresh), "chest_drain", args.n)
    try:
        report = engine.export_report()
        print(f"report:       {report}")
    except ImportError:
        pass
    return code


def cmd_rerun(args: argparse.Namespace) -> int:
    # deferred: nbformat's schema validation (jsonschema) takes seconds to import
    from .notebooks.rerun import rerun_notebook, seed_study

    params = dict(_parse_kv_typed(args.param or []))
    if scale_overrides(args):
        params.update(rerun_recipe_param(args.notebook, scale_overrides(args)))
    if args.seeds:
        study = seed_study(args.notebook, args.seeds, params=params, out_dir=args.out, workers=args.workers,
                           timeout_s=args.timeout, backend=cluster.rerun_backend(args))
        print(study.summary_text())
        return 0 if study.n_ok else 1
    result = rerun_notebook(args.notebook, seed=args.seed, params=params, out_dir=args.out, timeout_s=args.timeout,
                            backend=cluster.rerun_backend(args))
    print(json.dumps({"status": result["status"], "output": str(result["output"]),
                      "metrics": result.get("headline", {}), "papermill": result["command"]}, indent=2))
    return 0 if result["status"] == "ok" else 1


def cmd_report(args: argparse.Namespace) -> int:
    from .report import write_report  # deferred: the data stack (pandas) is not needed to start

    path = write_report(args.session, args.out)
    print(path)
    return 0


def _parse_kv(items: Sequence[str]) -> list[tuple[str, Any]]:
    out = []
    for item in items:
        if "=" not in item:
            raise ClinagentError(f"option '{item}' is not KEY=VALUE", fix="write e.g. --option n=120")
        key, value = item.split("=", 1)
        out.append((key, _coerce(value)))
    return out


def _parse_kv_typed(pairs: Sequence[Sequence[str]]) -> list[tuple[str, Any]]:
    return [(k, _coerce(v)) for k, v in pairs]


def _coerce(value: str) -> Any:
    try:
        return json.loads(value)
    except (json.JSONDecodeError, ValueError):
        return value


# --------------------------------------------------------------------------------------------------------------
# argument parsing
# --------------------------------------------------------------------------------------------------------------
def _add_llm_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", help="LLM as a litellm model string (e.g. ollama/llama3.1, openai/<name>) or "
                                   "'offline' (default; env CLINAGENT_MODEL)")
    p.add_argument("--api-base", help="LLM server URL (e.g. http://127.0.0.1:8000/v1; env CLINAGENT_API_BASE)")
    p.add_argument("--max-tokens", type=int, help="token budget for the LLM in this session")
    p.add_argument("--max-cost", type=float, help="money budget (USD) for the LLM in this session")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="clinagent", description="Build a medical-imaging model by saying what you "
                                                             "want. Offline by default.")
    p.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = p.add_subparsers(dest="command", required=True)

    sp = sub.add_parser("parse", help="turn a request into a TaskSpec")
    sp.add_argument("text")
    sp.add_argument("--data", help="dataset path: ground the spec in it")
    sp.add_argument("--format", help="dataset format (default: auto-detect)")
    sp.add_argument("--json", action="store_true", help="print the TaskSpec as JSON")
    _add_llm_args(sp)
    sp.add_argument("--seed", type=int, default=0)
    sp.set_defaults(func=cmd_parse)

    rp = sub.add_parser("run", help="run the whole loop headless")
    rp.add_argument("--intent", required=True, help="the request, as a clinician would say it")
    rp.add_argument("--data", required=True, help="dataset folder or file")
    rp.add_argument("--out", help="output folder (default: clinagent-runs/<time>)")
    rp.add_argument("--format", help="dataset format (default: auto-detect)")
    rp.add_argument("--format-option", action="append", metavar="KEY=VALUE",
                    help="adapter option, e.g. subtask=melanoma_vs_nevus")
    rp.add_argument("--max-iterations", type=int)
    rp.add_argument("--iteration-minutes", type=float)
    rp.add_argument("--seed", type=int, default=0)
    rp.add_argument("--yes", action="store_true", help="take the default answer to every open question")
    rp.add_argument("--set", action="append", metavar="FIELD=VALUE",
                    help="fix a baseline Recipe field, e.g. training.max_epochs=5 or data.image_size=64")
    rp.add_argument("--verbose", action="store_true", help="a line per epoch with every validation metric")
    _add_llm_args(rp)
    add_scale_flags(rp)
    cluster.add_backend_args(rp)
    rp.set_defaults(func=cmd_run)

    rr = sub.add_parser("rerun", help="rerun an iteration notebook with papermill")
    rr.add_argument("notebook")
    rr.add_argument("--seed", type=int)
    rr.add_argument("--seeds", type=int, nargs="+", help="seed study: run each seed, report mean ± sd")
    rr.add_argument("-p", "--param", nargs=2, action="append", metavar=("KEY", "VALUE"))
    rr.add_argument("--out", help="output folder (default: beside the notebook)")
    rr.add_argument("--workers", type=int, default=1)
    rr.add_argument("--timeout", type=float, default=3600.0, help="seconds per run")
    add_scale_flags(rr)
    cluster.add_backend_args(rr)
    rr.set_defaults(func=cmd_rerun)

    sy = sub.add_parser("synth", help="write a synthetic dataset in a real on-disk format")
    sy.add_argument("kind", help="chest_drain, dermoscopy, drain_overlay, isic2019, siim_acr, grazpedwri")
    sy.add_argument("--out", required=True)
    sy.add_argument("--seed", type=int, default=0)
    sy.add_argument("--option", action="append", metavar="KEY=VALUE", help="e.g. n=200, correlation=0.9")
    sy.set_defaults(func=cmd_synth)

    dp = sub.add_parser("demo", help="synthesise data and run the whole loop offline (a few minutes)")
    dp.add_argument("--out", help="output folder (default: ./clinagent-demo)")
    dp.add_argument("--seed", type=int, default=0)
    dp.add_argument("--n", type=int, default=600, help="number of synthetic images")
    dp.add_argument("--max-iterations", type=int, default=DEMO_ITERATIONS)
    dp.add_argument("--iteration-minutes", type=float, default=DEMO_MINUTES)
    dp.add_argument("--verbose", action="store_true", help="a line per epoch with every validation metric")
    _add_llm_args(dp)
    dp.set_defaults(func=cmd_demo)

    cluster.register(sub, printer=ProgressPrinter, print_outcome=_print_outcome)
    rep = sub.add_parser("report", help="write the self-contained HTML report of a session")
    rep.add_argument("session", help="session folder (holds session.json)")
    rep.add_argument("--out", help="output HTML path (default: <session>/report.html)")
    rep.set_defaults(func=cmd_report)
    model_export.register(sub)  # clinagent export SESSION --format onnx|torchscript
    register_resources(sub)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except ClinagentError as exc:
        if args.debug:
            raise
        print(f"clinagent: error: {exc.message}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("clinagent: interrupted; the session on disk is intact", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
