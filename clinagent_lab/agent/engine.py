"""The engine: one clinician request, from text to a kept model, a once-only test evaluation and a session.

The CLI, the JupyterLab server extension and the Python API all drive this class and the loop in
:mod:`.loop`; none of them holds logic another lacks. Blocking methods (``run_iteration``, ``finish``, ``run``)
are meant for a worker thread in the server.

Example (offline, tiny data)::

    from clinagent_lab.agent.engine import Engine
    eng = Engine.create("pneumothorax on chest X-rays", "data/", "runs/ptx")
    eng.run(on_event=print)          # iterations, keep/discard, then the test split once
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path
from typing import Any, Callable

import pandas as pd

from ..data.base import LoadedDataset
from ..data.formats import load_dataset
from ..data.splits import apply_split_table, split_table, without_split
from ..errors import ClinagentError, SessionError
from ..events import make_event
from ..execution import make_backend, resolve_config
from ..fileio import atomic_write_text
from ..intent import assess_request, ground_spec
from ..llm import (
    Redactor,
    build_client,
    build_refiner,
    may_repair,
    session_audit,
)
from ..llm.codecheck import check_code
from ..notebooks.executor import NotebookExecutor
from ..plan.hardware import check_local_slots
from ..plan.refiner import RefineContext, RuleRefiner
from ..recipe import Recipe, RecipePatch, apply_patch, check_overrides, recipe_diff
from ..records import Annotation, FinalTest, Iteration, Proposal, Session
from ..runfolder import FINGERPRINT_FILE, SPLITS_FILE
from ..spec import TaskSpec
from . import final_test, iteration, loop, rounds
from .baseline import baseline_proposal, baseline_recipe
from .prepare import interpret, prepare_data

__all__ = ["Engine", "EventSink", "prepare_data", "interpret"]

EventSink = Callable[[dict[str, Any]], None]



class Engine:
    """Drives one session. Create with :meth:`create`, reopen with :meth:`open`."""

    def __init__(self, session: Session, *, refiner: Any = None, execution: dict[str, Any] | None = None) -> None:
        self.session = session
        config = resolve_config(execution, recorded=session.execution)  # flags > session > env > config file
        session.execution = config.model_dump(mode="json")
        self.executor = make_backend(config)
        self.parallel = config.parallel
        self._resumable: list[Iteration] = []
        self.lock = threading.RLock()
        self._refiner = refiner
        self._client: Any = None
        self._stop_requested = threading.Event()
        self._dataset: LoadedDataset | None = None

    # --- creation and reopening ---------------------------------------------------------------------
    @classmethod
    def create(cls, request: str, data_path: str | Path, out_dir: str | Path, *, model: str = "offline",
               seed: int = 0, max_iterations: int | None = None, iteration_minutes: float | None = None,
               spec: TaskSpec | None = None, data_format: str | None = None,
               format_options: dict[str, Any] | None = None, session_id: str | None = None,
               recipe_overrides: dict[str, Any] | None = None,
               llm_options: dict[str, Any] | None = None, execution: dict[str, Any] | None = None) -> Engine:
        if assess_request(request) in ("empty", "non_imaging") and spec is None:
            interpret(request, None, model="offline")  # raises the clear IntentError
        check_overrides(recipe_overrides or {})  # a misspelt --set name fails before the data are read
        out = Path(out_dir).resolve()
        data = Path(data_path).resolve()
        config = resolve_config(execution)
        if config.backend == "local" and config.local_parallel > 1:  # K notebooks at once must fit the machine
            fixed = recipe_overrides or {}
            check_local_slots(config.local_parallel, int(fixed.get("training.devices", 1)),
                              str(fixed.get("training.accelerator", "auto")))
        if config.backend == "local":
            NotebookExecutor().prewarm()  # the first iteration's kernel starts while the data are checked
        dataset, fingerprint = prepare_data(data, data_format, seed=seed, format_options=format_options)
        session = Session(id=session_id or uuid.uuid4().hex[:12], request=request, data_path=str(data),
                          out_dir=str(out), seed=seed, model_name=model or "offline",
                          spec=TaskSpec(request=request), data_format=dataset.format,
                          format_options=dict(format_options or {}),
                          recipe_overrides=dict(recipe_overrides or {}),
                          llm_options={k: v for k, v in (llm_options or {}).items() if v is not None})
        engine = cls(session, execution=config.model_dump(mode="json"))
        engine._dataset = dataset
        if spec is None:
            spec = interpret(request, fingerprint, model=model, client=engine._llm_client(),
                             redactor=engine._redactor())
        else:
            spec = ground_spec(spec, fingerprint)
        budget = spec.budget.model_copy(update={k: v for k, v in {"max_iterations": max_iterations,
                                                                  "iteration_minutes": iteration_minutes}.items()
                                                if v is not None})
        session.spec = spec.model_copy(update={"budget": budget})
        session.fingerprint = fingerprint
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(out / FINGERPRINT_FILE, fingerprint.model_dump_json(indent=2))
        atomic_write_text(out / SPLITS_FILE, split_table(dataset).to_csv(index=False))
        session.log("session_created", format=dataset.format, n_images=len(dataset), split_rule=fingerprint.split_rule,
                    parsed_by=session.spec.parsed_by)
        for warning in dataset.warnings:
            session.log("data_warning", message=warning)
        session.save()
        return engine

    @classmethod
    def open(cls, out_dir: str | Path, *, execution: dict[str, Any] | None = None) -> Engine:
        """Reopen a saved session. Iterations left running by a process that died are reattached to when their
        job still belongs to the backend (a cluster job: :meth:`resume` waits for them), else marked
        interrupted."""
        session = Session.load(out_dir)
        engine = cls(session, execution=execution)
        engine._resumable = [it for it in session.iterations if it.status == "running" and not it.finished_at
                             and engine.executor.reattach(it.output_dir) is not None]
        keep = [it.index for it in engine._resumable]
        if session.mark_interrupted("the process driving this iteration stopped before it finished; rerun it",
                                    keep=keep):
            session.save()
        return engine

    def resume(self, on_event: EventSink | None = None) -> list[Iteration]:
        """Wait for the iterations whose jobs outlived the last process (see :meth:`open`) and decide them."""
        done, self._resumable = [iteration.resume_iteration(self, it, on_event) for it in self._resumable], []
        return done

    @staticmethod
    def interpret(request: str, data_path: str | Path | None = None, *, model: str = "offline",
                  data_format: str | None = None, llm_options: dict[str, Any] | None = None) -> TaskSpec:
        """Parse a request (grounded in the data when a path is given) without creating a session."""
        fingerprint = prepare_data(data_path, data_format)[1] if data_path else None
        return interpret(request, fingerprint, model=model, llm_options=llm_options)

    @staticmethod
    def list_sessions(root: str | Path) -> list[Session]:
        out = []
        for path in sorted(Path(root).glob("*/session.json")):
            try:
                out.append(Session.load(path.parent))
            except ClinagentError:
                continue
        return out

    # --- state ----------------------------------------------------------------------------------------
    @property
    def out(self) -> Path:
        return Path(self.session.out_dir)

    @property
    def running(self) -> bool:
        return self.executor.running

    def save(self) -> None:
        with self.lock:
            self.session.save()

    def emit(self, on_event: EventSink | None, type_: str, **fields: Any) -> None:
        """Send a validated :mod:`clinagent_lab.events` event to ``on_event``."""
        if on_event is None:
            return
        event = make_event(type_, session=self.session.id, **fields)
        try:
            on_event(event)
        except Exception:  # noqa: BLE001 - a broken display must never break training
            pass

    def dataset(self, include_test: bool = False) -> LoadedDataset:
        """The dataset with the frozen split (test rows removed unless ``include_test``)."""
        if self._dataset is None:
            ds = load_dataset(self.session.data_path, self.session.data_format, **self.session.format_options)
            self._dataset = apply_split_table(ds, pd.read_csv(self.out / SPLITS_FILE, dtype={"image_id": str}))
        return self._dataset if include_test else without_split(self._dataset, "test")

    @property
    def uses_llm(self) -> bool:
        return bool(self.session.model_name) and self.session.model_name != "offline"

    def _llm_client(self) -> Any:
        """One LLM client per session: the parser and the refiner share its budget and audit."""
        if not self.uses_llm:
            return None
        if self._client is None:
            self._client = build_client(self.session.model_name, audit=session_audit(self.session),
                                        **self.session.llm_options)
        return self._client

    def _redactor(self) -> Any:
        if not self.uses_llm:
            return None

        return Redactor.for_dataset(self._dataset if self._dataset is not None else self.dataset(True))

    def refiner(self) -> Any:
        if self._refiner is None:
            offline = RuleRefiner()
            if self.uses_llm:
                self._refiner = build_refiner(self.session.model_name, fallback=offline,
                                              client=self._llm_client(), redactor=self._redactor())
            else:
                self._refiner = offline
        return self._refiner

    def refine_context(self) -> RefineContext:
        best = self.session.best()
        current = best.recipe if best else (self.session.iterations[-1].recipe if self.session.iterations
                                            else baseline_recipe(self.session))
        return RefineContext(spec=self.session.spec, fingerprint=self.session.fingerprint,
                             history=list(self.session.iterations), best=best, current=current,
                             annotations=self.session.annotations, tried_ideas=set(self.session.tried_ideas),
                             remaining_s=self.remaining_s())

    def remaining_s(self) -> float | None:
        total = self.session.spec.budget.total_minutes
        if total is None:
            return None
        spent = sum(it.wall_s or 0.0 for it in self.session.iterations)
        return total * 60.0 - spent

    # --- the clinician's levers -----------------------------------------------------------------------
    def update_spec(self, spec: TaskSpec) -> TaskSpec:
        """Replace the spec (the clinician edited it). Only before the first iteration, or budgets/metric later."""
        if self.session.iterations and spec.task_type != self.session.spec.task_type:
            raise SessionError("the task type cannot change after iterations have run",
                               fix="start a new session for a different task")
        with self.lock:
            self.session.spec = ground_spec(spec, self.session.fingerprint)
            self.session.proposal, self.session.candidates = None, []
            self.session.log("spec_edited")
            self.save()
        return self.session.spec

    def annotate(self, annotation: Annotation) -> Annotation:
        with self.lock:
            self.session.annotate(annotation)
            self.save()
        return annotation

    def propose(self) -> Proposal | None:
        """The next Recipe (baseline first), cached in the session until run or rejected."""
        with self.lock:
            if self.session.proposal is not None:
                return self.session.proposal
            proposal = baseline_proposal(self.session) if self.session.best_iteration is None else None
            if proposal is None:
                ctx = self.refine_context()
                patch = self.refiner().propose(ctx)
                if patch is None:
                    return None
                proposal = self.proposal_from_patch(ctx.current, patch)
            self.session.proposal = proposal
            self.save()
            return proposal

    def proposal_from_patch(self, current: Recipe, patch: RecipePatch) -> Proposal:
        recipe = apply_patch(current, patch)
        for key in patch.changes:
            recipe.reasons[key] = patch.rationale[:200]
        changes = {k: [a, b] for k, (a, b) in recipe_diff(current, recipe).items()}
        return Proposal(recipe=recipe, rationale=patch.rationale, idea=patch.idea or "change", changes=changes,
                        proposed_by=getattr(self.refiner(), "name", "offline"))

    def edit_proposal(self, changes: dict[str, Any]) -> Proposal:
        """Apply the clinician's edits on top of the pending proposal."""
        with self.lock:
            proposal = self.propose()
            if proposal is None:
                raise SessionError("there is no proposal to edit", fix="run an iteration first")
            edited = apply_patch(proposal.recipe, RecipePatch(changes=changes, rationale="edited"))
            base = self.refine_context().current
            proposal = proposal.model_copy(update={
                "recipe": edited, "rationale": proposal.rationale + " (edited by the clinician)",
                "changes": {k: [a, b] for k, (a, b) in recipe_diff(base, edited).items()}})
            self.session.proposal = proposal
            self.session.log("proposal_edited", changes=list(changes))
            self.save()
            return proposal

    def reject_proposal(self) -> None:
        """Drop the pending proposal (and the other candidates of its round); their ideas count as tried."""
        with self.lock:
            for proposal in filter(None, [self.session.proposal, *self.session.candidates]):
                self.session.tried_ideas.append(proposal.idea)
                self.session.log("proposal_rejected", idea=proposal.idea)
            self.session.proposal, self.session.candidates = None, []
            self.save()

    def close(self) -> None:
        """Shut down the kernels started ahead of time for this process (they also go at interpreter exit)."""
        self.executor.close()

    def detach(self) -> bool:
        """Stop waiting on cluster jobs without cancelling them (the process is going away; the next one
        reattaches); False when the backend's jobs end with this process."""
        return self.executor.detach()

    def stop(self) -> bool:
        """Ask the running iteration (if any) to stop now, and the loop to stop after it."""
        self._stop_requested.set()
        stopped = self.executor.stop()
        self.session.log("stop_requested", running=stopped)
        return stopped

    # --- running: one iteration, the loop, the repair -------------------------------------------------
    def run_iteration(self, proposal: Proposal | None = None, on_event: EventSink | None = None,
                      timeout_s: float | None = None) -> Iteration | None:
        """Render and execute one iteration notebook; decide keep/discard. None when no idea is left."""
        self._stop_requested.clear()
        proposal = proposal or self.propose()
        if proposal is None:
            return None
        return iteration.run_iteration(self, proposal, on_event, timeout_s)

    def notebook_parameters(self, recipe: Recipe) -> dict[str, Any]:
        """The iteration notebook's papermill parameters; outputs go to the run's working folder (``.``)."""
        return {"data_path": self.session.data_path, "data_format": self.session.data_format or "",
                "splits_path": str(self.out / SPLITS_FILE), "output_dir": ".", "events_path": "",
                "seed": recipe.seed,
                "recipe": recipe.model_dump(mode="json"), "spec": self.session.spec.model_dump(mode="json")}

    def check_code(self, recipe: Recipe) -> list[str]:
        """Problems :func:`llm.codecheck.check_code` finds in the recipe's custom code (empty: accepted)."""
        return [f"{hook}: {p}" for hook, code in recipe.custom_code.items() for p in check_code(code, hook)]

    def should_stop(self) -> str | None:
        return loop.stop_rule(self.session, stop_requested=self._stop_requested.is_set(),
                              remaining_s=self.remaining_s())

    def set_parallel(self, k: int) -> int:
        """Candidates per round from the next round on (see :func:`.rounds.set_parallel`)."""
        return rounds.set_parallel(self, k)

    def propose_round(self) -> list[Proposal]:
        """The next round's candidates, the pending proposal first (see :func:`.rounds.propose_round`)."""
        return rounds.propose_round(self)

    def round_step(self, on_event: EventSink | None = None) -> loop.Step:
        """One round of up to ``parallel`` candidates run together (see :mod:`.rounds`)."""
        return rounds.round_step(self, on_event)

    def step(self, on_event: EventSink | None = None, *, proposal: Proposal | None = None) -> loop.Step:
        """One turn of the loop (see :func:`.loop.step`)."""
        return loop.step(self, on_event, proposal=proposal)

    def run(self, on_event: EventSink | None = None, *, finish: bool = True) -> Session:
        """The whole loop: iterate until a stop condition, then evaluate the test split once."""
        self.resume(on_event)
        reason = loop.run_loop(self, on_event)
        with self.lock:
            self.session.stop_reason = reason
            self.session.status = "stopped"
            self.save()
        self.emit(on_event, "loop_finished", reason=reason, best_iteration=self.session.best_iteration)
        if finish and self.session.best_iteration is not None and not self._stop_requested.is_set():
            self.finish(on_event=on_event)
        return self.session

    def repair(self, it: Iteration) -> Proposal | None:
        """Ask the refiner to repair crashed custom code; the repair becomes the pending proposal."""
        if self.uses_llm:
            if not may_repair(self.session.iterations, it.idea):
                self.session.log("repair_abandoned", iteration=it.index, idea=it.idea)
                return None
        ctx = self.refine_context()
        trace = str((it.error or {}).get("traceback") or (it.error or {}).get("evalue") or "")
        patch = self.refiner().repair(ctx, it, trace)
        if patch is None:
            return None
        with self.lock:
            self.session.proposal = self.proposal_from_patch(it.recipe, patch)
            self.session.log("repair_proposed", iteration=it.index, idea=patch.idea)
            self.save()
        return self.session.proposal

    # --- the test split, once; the report --------------------------------------------------------------
    def finish(self, on_event: EventSink | None = None, timeout_s: float | None = None) -> FinalTest:
        """Evaluate the best iteration on the test split. Allowed exactly once per session."""
        return final_test.run_final_test(self, on_event, timeout_s)

    def export_report(self, path: str | Path | None = None) -> Path:
        from ..report import write_report  # the report pulls in matplotlib: only when exporting

        return write_report(self.out, path)
