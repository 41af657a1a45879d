"""One iteration: the notebook rendered from the proposal, executed under its time budget with the recipe
injected by papermill, read back and decided (kept / discarded / failed) on the validation split.

The run folder keeps the injected values (``parameters.yaml``) and, once the run has recorded its epoch plan,
the plan to pin for an exact replay (``replay.yaml``); the executed notebook stays as papermill wrote it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import nbformat

from ..errors import ClinagentError
from ..evaluation.evaluate import evaluator_hash
from ..events import headline
from ..execution import read_record
from ..fileio import now_iso
from ..notebooks.render import check_parameters, render_iteration, verify_frozen
from ..plan.selection import decide, selection_value
from ..records import Iteration, Proposal
from ..runfolder import RunFolder
from ..tasks import get_backend
from .prepare import prepare_image_cache

if TYPE_CHECKING:
    from .engine import Engine, EventSink

__all__ = ["run_iteration", "start_iteration", "execute_iteration", "finish_iteration", "resume_iteration"]


def run_iteration(engine: Engine, proposal: Proposal, on_event: EventSink | None = None,
                  timeout_s: float | None = None) -> Iteration:
    """Render and execute one iteration notebook; decide keep/discard."""
    it, budget = start_iteration(engine, proposal, on_event, timeout_s)
    if it.status == "running":
        _execute(engine, it, RunFolder.iteration(engine.out, it.index), budget, on_event)
    return finish_iteration(engine, it, on_event)


def start_iteration(engine: Engine, proposal: Proposal, on_event: EventSink | None = None,
                    timeout_s: float | None = None, round_: int | None = None) -> tuple[Iteration, float]:
    """Record the iteration and render its notebook (status ``running``; ``crash`` when its code is rejected);
    returns it with its time budget. :func:`execute_iteration` runs it, :func:`finish_iteration` decides."""
    session = engine.session
    with engine.lock:
        index = len(session.iterations) + 1
        run = RunFolder.iteration(engine.out, index)
        run.path.mkdir(parents=True, exist_ok=True)
        it = Iteration(index=index, status="running", recipe=proposal.recipe, rationale=proposal.rationale,
                       idea=proposal.idea, notebook=str(run.notebook), output_dir=str(run.path),
                       started_at=now_iso(), decision="pending", round=round_)
        session.iterations.append(it)
        session.proposal = None
        if proposal.idea and proposal.idea not in ("baseline", "annotations"):
            session.tried_ideas.append(proposal.idea)
        for a in session.annotations:
            if a.applied_in is None and proposal.idea == "annotations":
                a.applied_in = index
        session.status = "running"
        engine.save()
    engine.emit(on_event, "iteration_started", iteration=index, rationale=it.rationale, idea=it.idea,
                max_epochs=it.recipe.training.max_epochs)
    budget = timeout_s or session.spec.budget.iteration_minutes * 60.0
    problems = engine.check_code(it.recipe)
    if problems:
        it.status, it.error = "crash", {"ename": "CodeRejected", "evalue": "; ".join(problems)}
        return it, budget
    backend = get_backend(it.recipe.task_type)
    render_iteration(backend.template, run.input_notebook, custom_code=it.recipe.custom_code,
                     title=f"Iteration {index}: {it.idea or 'change'}", rationale=it.rationale)
    parameters = engine.notebook_parameters(it.recipe)
    check_parameters(run.input_notebook, parameters)
    run.write_parameters(parameters)
    return it, budget


def execute_iteration(engine: Engine, it: Iteration, budget: float, on_event: EventSink | None = None) -> Iteration:
    """Run a started iteration's notebook on the engine's backend and read its results back (no decision)."""
    if it.status == "running":
        _execute(engine, it, RunFolder.iteration(engine.out, it.index), budget, on_event)
    return it


def resume_iteration(engine: Engine, it: Iteration, on_event: EventSink | None = None) -> Iteration:
    """Wait for an iteration whose job outlived the process that started it (a cluster job): the backend
    reattaches to it by the job id in its run folder, nothing is submitted again; then read back and decide."""
    budget = engine.session.spec.budget.iteration_minutes * 60.0
    engine.session.log("iteration_reattached", iteration=it.index)
    _execute(engine, it, RunFolder.iteration(engine.out, it.index), budget, on_event)
    return finish_iteration(engine, it, on_event)


def _execute(engine: Engine, it: Iteration, run: RunFolder, budget: float,
             on_event: EventSink | None) -> Iteration:
    session, index = engine.session, it.index
    monitors = get_backend(it.recipe.task_type).monitors(it.recipe)

    def relay(event: dict[str, Any]) -> None:
        if event.get("type") == "epoch":
            metrics = event.get("metrics") or {}
            value = next((metrics[m] for m in monitors if m in metrics), None)
            if isinstance(value, (int, float)):
                it.curve.append(round(float(value), 6))
        fields = {k: v for k, v in event.items() if k not in ("type", "v", "time", "session")}
        engine.emit(on_event, event.get("type", "log"), **{**fields, "iteration": index, "budget_s": budget})

    prepare_image_cache(engine, it.recipe)
    result = engine.executor.execute(run.input_notebook, run.notebook, run.read_parameters(), timeout_s=budget,
                                     events_path=run.events, on_event=relay, cwd=run.path)
    it.wall_s = round(result.wall_s, 2)
    it.warm_kernel = result.warm
    record = read_record(run.path)
    it.job_id = record.job_id if record is not None and record.backend != "local" else None
    it.status = result.status if result.status in ("ok", "crash", "timeout", "stopped") else "crash"
    it.error = result.error
    if it.status == "timeout" and run.has_results():
        # the budget ran out after the frozen evaluation had saved its results (during the figures)
        it.status, it.error = "ok", None
        session.log("iteration_overran_after_evaluation", iteration=index)
    if it.status == "ok":
        _read_back(it, run)
    return it


def _read_back(it: Iteration, run: RunFolder) -> None:
    """Validation metrics, the frozen cells and the evaluator's hash checked; the epoch plan written for an
    exact replay (``replay.yaml``; the executed notebook is left as papermill wrote it)."""
    try:
        metrics = run.read_metrics()
        info = run.read_run_info()
        verify_frozen(nbformat.read(run.notebook, as_version=4), get_backend(it.recipe.task_type).template)
        if info.evaluator_hash != evaluator_hash():
            raise ClinagentError("the evaluator used by this iteration differs from the library's",
                                 fix="iterations cannot change the evaluator")
    except (OSError, ClinagentError) as exc:
        it.status = "crash"
        it.error = {"ename": type(exc).__name__, "evalue": str(exc), "cell_index": None}
        return
    it.val_metrics = metrics
    epochs = info.replay_epochs()
    if epochs is not None:
        run.write_parameters({"max_epochs": epochs}, replay=True)
    it.selection_value = selection_value(metrics)
    it.checkpoint = str(run.checkpoint) if run.checkpoint.exists() else None


def finish_iteration(engine: Engine, it: Iteration, on_event: EventSink | None = None) -> Iteration:
    """Decide kept / discarded / failed against the best so far, record it and say so."""
    session = engine.session
    with engine.lock:
        it.finished_at = now_iso()
        best = session.best()
        baseline = next((x for x in session.iterations if x.decision == "baseline"), None)
        it.decision, it.decision_reason = decide(it, best, baseline, session.spec, session.annotations)
        if it.decision in ("kept", "baseline"):
            session.best_iteration = it.index
        session.log("iteration_finished", iteration=it.index, status=it.status, decision=it.decision,
                    selection_value=it.selection_value, wall_s=it.wall_s)
        engine.save()
    engine.emit(on_event, "iteration_finished", iteration=it.index, status=it.status, decision=it.decision,
                reason=it.decision_reason, selection_value=it.selection_value, wall_s=it.wall_s,
                error=(it.error or {}).get("evalue"), metrics=headline(it.val_metrics))
    return it
