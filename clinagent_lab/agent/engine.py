"""The engine: one clinician request, from text to a kept model, a once-only test evaluation and a session.

The CLI, the JupyterLab server extension and the Python API all drive this class; none of them holds logic it
lacks. Blocking methods (``run_iteration``, ``finish``, ``run``) are meant for a worker thread in the server.

Example (offline, tiny data)::

    from clinagent_lab.agent.engine import Engine
    eng = Engine.create("pneumothorax on chest X-rays", "data/", "runs/ptx")
    eng.run(on_event=print)          # iterations, keep/discard, then the test split once
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from ..data.base import DatasetFingerprint, LoadedDataset
from ..errors import ClinagentError, IntentError, SessionConflict, SessionError
from ..recipe import Recipe, RecipePatch, apply_patch, recipe_diff
from ..spec import TaskSpec
from ..fileio import atomic_write_text, now_iso
from ..records import Annotation, FinalTest, Iteration, Proposal, Session

__all__ = ["Engine", "EventSink", "prepare_data", "interpret"]

EventSink = Callable[[dict[str, Any]], None]

FINGERPRINT_FILE = "dataset_fingerprint.json"
SPLITS_FILE = "splits.csv"


def prepare_data(data_path: str | Path, data_format: str | None = None, *, seed: int = 0,
                 format_options: dict[str, Any] | None = None) -> tuple[LoadedDataset, DatasetFingerprint]:
    """Load, validate, split (grouped, stratified), check leakage and fingerprint a dataset."""
    from ..data.fingerprint import compute_fingerprint
    from ..data.formats import load_dataset
    from ..data.splits import assign_splits, check_leakage, remove_cross_split_duplicates
    from ..data.validate import check_images, check_labels

    dataset = load_dataset(data_path, data_format, **(format_options or {}))
    dataset = check_images(dataset)
    check_labels(dataset)
    if dataset.source.get("splits_given") and dataset.table["split"].notna().all():
        dataset = remove_cross_split_duplicates(dataset)  # the dataset's own split: drop train/val copies
    dataset, rule = assign_splits(dataset, seed=seed)
    check_leakage(dataset)
    fingerprint = compute_fingerprint(dataset, split_rule=rule, leakage_checked=True)
    return dataset, fingerprint


def interpret(request: str, fingerprint: DatasetFingerprint | None = None, *, model: str = "offline",
              audit: Callable[[dict[str, Any]], None] | None = None, client: Any = None,
              redactor: Any = None, llm_options: dict[str, Any] | None = None) -> TaskSpec:
    """Request text (+ fingerprint) -> grounded TaskSpec, offline or through the configured LLM."""
    from ..intent import assess_request, ground_spec, parse_offline

    kind = assess_request(request)
    if kind == "empty":
        raise IntentError("the request is empty", fix="describe the task, e.g. 'pneumothorax on chest X-rays, "
                                                      "sensitivity matters most'")
    if kind == "non_imaging":
        spec = parse_offline(request, fingerprint)
        raise IntentError("the request does not describe a medical-imaging task",
                          where=f"request: {request!r}",
                          fix=(spec.questions[0] if spec.questions else
                               "say what to find in which images, e.g. 'classify skin lesions, melanoma matters'"))
    if not model or model == "offline":
        return parse_offline(request, fingerprint)  # grounds it when a fingerprint is given
    from ..llm import build_parser

    spec = build_parser(model, audit=audit or (lambda _: None), client=client, redactor=redactor,
                        **(llm_options or {}))(request, fingerprint)
    return ground_spec(spec, fingerprint) if fingerprint is not None else spec


class Engine:
    """Drives one session. Create with :meth:`create`, reopen with :meth:`open`."""

    def __init__(self, session: Session, *, refiner: Any = None) -> None:
        from ..notebooks.executor import NotebookExecutor

        self.session = session
        self._executor = NotebookExecutor()
        self._refiner = refiner
        self._lock = threading.RLock()
        self._stop_requested = threading.Event()
        self._dataset: LoadedDataset | None = None

    # ------------------------------------------------------------------------------------------------------
    # creation and reopening
    # ------------------------------------------------------------------------------------------------------
    @classmethod
    def create(cls, request: str, data_path: str | Path, out_dir: str | Path, *, model: str = "offline",
               seed: int = 0, max_iterations: int | None = None, iteration_minutes: float | None = None,
               spec: TaskSpec | None = None, data_format: str | None = None,
               format_options: dict[str, Any] | None = None, session_id: str | None = None,
               recipe_overrides: dict[str, Any] | None = None,
               llm_options: dict[str, Any] | None = None) -> Engine:
        from ..data.splits import split_table
        from ..intent import assess_request

        if assess_request(request) in ("empty", "non_imaging") and spec is None:
            interpret(request, None, model="offline")  # raises the clear IntentError
        out = Path(out_dir).resolve()
        data = Path(data_path).resolve()
        _prewarm_kernel()  # the first iteration's kernel starts while the data are checked and the spec parsed
        dataset, fingerprint = prepare_data(data, data_format, seed=seed, format_options=format_options)
        session = Session(id=session_id or uuid.uuid4().hex[:12], request=request, data_path=str(data),
                          out_dir=str(out), seed=seed, model_name=model or "offline",
                          spec=TaskSpec(request=request), data_format=dataset.format,
                          format_options=dict(format_options or {}),
                          recipe_overrides=dict(recipe_overrides or {}),
                          llm_options={k: v for k, v in (llm_options or {}).items() if v is not None})
        engine = cls(session)
        engine._dataset = dataset
        if spec is None:
            spec = interpret(request, fingerprint, model=model, client=engine._llm_client(),
                             redactor=engine._redactor())
        else:
            from ..intent import ground_spec

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
    def open(cls, out_dir: str | Path) -> Engine:
        session = Session.load(out_dir)
        changed = False
        for it in session.iterations:
            if it.status in ("running", "pending") and it.finished_at is None and it.started_at is not None:
                it.status, it.decision = "interrupted", "failed"
                it.decision_reason = "the process driving this iteration stopped before it finished; rerun it"
                changed = True
        if session.status == "running":
            session.status = "stopped"
            changed = True
        if changed:
            session.log("reopened", note="interrupted iterations marked")
            session.save()
        return cls(session)

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

    # ------------------------------------------------------------------------------------------------------
    # state helpers
    # ------------------------------------------------------------------------------------------------------
    @property
    def out(self) -> Path:
        return Path(self.session.out_dir)

    @property
    def running(self) -> bool:
        return self._executor.running

    def _save(self) -> None:
        with self._lock:
            self.session.save()

    def _emit(self, on_event: EventSink | None, type_: str, **fields: Any) -> None:
        if on_event is None:
            return
        event = {"v": 1, "type": type_, "session": self.session.id, "time": round(time.time(), 3), **fields}
        try:
            on_event(event)
        except Exception:  # noqa: BLE001 - a broken display must never break training
            pass

    def dataset(self, include_test: bool = False) -> LoadedDataset:
        """The dataset with the frozen split (test rows removed unless ``include_test``)."""
        from ..data.formats import load_dataset
        from ..data.splits import apply_split_table
        from ..notebooks.runtime import without_split
        import pandas as pd

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
        if getattr(self, "_client", None) is None:
            from ..llm import build_client, session_audit

            self._client = build_client(self.session.model_name, audit=session_audit(self.session),
                                        **self.session.llm_options)
        return self._client

    def _redactor(self) -> Any:
        if not self.uses_llm:
            return None
        from ..llm import Redactor

        return Redactor.for_dataset(self._dataset if self._dataset is not None else self.dataset(True))

    def refiner(self) -> Any:
        if self._refiner is None:
            from ..plan.refiner import RuleRefiner

            offline = RuleRefiner()
            if self.uses_llm:
                from ..llm import build_refiner

                self._refiner = build_refiner(self.session.model_name, fallback=offline,
                                              client=self._llm_client(), redactor=self._redactor())
            else:
                self._refiner = offline
        return self._refiner

    def _context(self) -> Any:
        from ..plan.refiner import RefineContext

        best = self.session.best()
        current = best.recipe if best else (self.session.iterations[-1].recipe if self.session.iterations
                                            else self._baseline_recipe())
        return RefineContext(spec=self.session.spec, fingerprint=self.session.fingerprint,
                             history=list(self.session.iterations), best=best, current=current,
                             annotations=self.session.annotations, tried_ideas=set(self.session.tried_ideas),
                             remaining_s=self.remaining_s())

    def _baseline_recipe(self) -> Recipe:
        from ..plan.initializer import initialize_recipe

        from ..plan.hardware import detect_hardware

        fixed = self.session.recipe_overrides or {}
        hardware = detect_hardware(fixed.get("training.accelerator", "auto"), int(fixed.get("training.devices", 1)))
        recipe = initialize_recipe(self.session.spec, self.session.fingerprint, seed=self.session.seed,
                                   hardware=hardware, pretrained=fixed.get("model.pretrained", "auto"))
        if self.session.format_options:
            recipe = apply_patch(recipe, {"data.format_options": dict(self.session.format_options)})
            recipe.reasons["data.format_options"] = "adapter options given for this session"
        if self.session.recipe_overrides:
            recipe = apply_patch(recipe, self.session.recipe_overrides)
            for key in self.session.recipe_overrides:
                recipe.reasons[key] = "set by the user"
        return recipe

    def remaining_s(self) -> float | None:
        total = self.session.spec.budget.total_minutes
        if total is None:
            return None
        spent = sum(it.wall_s or 0.0 for it in self.session.iterations)
        return total * 60.0 - spent

    # ------------------------------------------------------------------------------------------------------
    # the clinician's levers
    # ------------------------------------------------------------------------------------------------------
    def update_spec(self, spec: TaskSpec) -> TaskSpec:
        """Replace the spec (the clinician edited it). Only before the first iteration, or budgets/metric later."""
        from ..intent import ground_spec

        if self.session.iterations and spec.task_type != self.session.spec.task_type:
            raise SessionError("the task type cannot change after iterations have run",
                               fix="start a new session for a different task")
        with self._lock:
            self.session.spec = ground_spec(spec, self.session.fingerprint)
            self.session.proposal = None
            self.session.log("spec_edited")
            self._save()
        return self.session.spec

    def annotate(self, annotation: Annotation) -> Annotation:
        with self._lock:
            if annotation.iteration is not None:
                self.session.iteration(annotation.iteration)
            self.session.annotations.append(annotation)
            if annotation.iteration is not None:
                self.session.iteration(annotation.iteration).annotations.append(len(self.session.annotations) - 1)
            self.session.proposal = None  # the next proposal must see the annotation
            self.session.log("annotation", annotation_kind=annotation.kind, value=annotation.value)
            self._save()
        return annotation

    def propose(self) -> Proposal | None:
        """The next Recipe (baseline first), cached in the session until run or rejected."""
        with self._lock:
            if self.session.proposal is not None:
                return self.session.proposal
            if self.session.best_iteration is None:
                proposal = self._baseline_proposal()
                if proposal is not None:
                    self.session.proposal = proposal
                    self._save()
                    return proposal
            ctx = self._context()
            patch = self.refiner().propose(ctx)
            if patch is None:
                return None
            proposal = self._proposal_from_patch(ctx.current, patch)
            self.session.proposal = proposal
            self._save()
            return proposal

    def _baseline_proposal(self) -> Proposal | None:
        tries = sum(1 for it in self.session.iterations if it.idea == "baseline")
        if tries >= 2:
            return None  # the baseline failed twice: let the refiner recover
        recipe = self._baseline_recipe()
        rationale = ("Baseline: the initializer's recipe from the task spec and the data fingerprint. "
                     + " ".join(f"{k}: {v}." for k, v in list(recipe.reasons.items())[:4]))
        return Proposal(recipe=recipe, rationale=rationale, idea="baseline", proposed_by="initializer")

    def _proposal_from_patch(self, current: Recipe, patch: RecipePatch) -> Proposal:
        recipe = apply_patch(current, patch)
        for key in patch.changes:
            recipe.reasons[key] = patch.rationale[:200]
        changes = {k: [a, b] for k, (a, b) in recipe_diff(current, recipe).items()}
        return Proposal(recipe=recipe, rationale=patch.rationale, idea=patch.idea or "change", changes=changes,
                        proposed_by=getattr(self.refiner(), "name", "offline"))

    def edit_proposal(self, changes: dict[str, Any]) -> Proposal:
        """Apply the clinician's edits on top of the pending proposal."""
        with self._lock:
            proposal = self.propose()
            if proposal is None:
                raise SessionError("there is no proposal to edit", fix="run an iteration first")
            edited = apply_patch(proposal.recipe, RecipePatch(changes=changes, rationale="edited"))
            base = self._context().current
            proposal = proposal.model_copy(update={
                "recipe": edited, "rationale": proposal.rationale + " (edited by the clinician)",
                "changes": {k: [a, b] for k, (a, b) in recipe_diff(base, edited).items()}})
            self.session.proposal = proposal
            self.session.log("proposal_edited", changes=list(changes))
            self._save()
            return proposal

    def reject_proposal(self) -> None:
        with self._lock:
            if self.session.proposal is not None:
                self.session.tried_ideas.append(self.session.proposal.idea)
                self.session.log("proposal_rejected", idea=self.session.proposal.idea)
            self.session.proposal = None
            self._save()

    def close(self) -> None:
        """Shut down the kernels started ahead of time for this process (they also go at interpreter exit)."""
        self._executor.close()

    def stop(self) -> bool:
        """Ask the running iteration (if any) to stop now, and the loop to stop after it."""
        self._stop_requested.set()
        stopped = self._executor.stop()
        self.session.log("stop_requested", running=stopped)
        return stopped

    # ------------------------------------------------------------------------------------------------------
    # running
    # ------------------------------------------------------------------------------------------------------
    def run_iteration(self, proposal: Proposal | None = None, on_event: EventSink | None = None,
                      timeout_s: float | None = None) -> Iteration | None:
        """Render and execute one iteration notebook; decide keep/discard. None when no idea is left."""
        from ..notebooks.render import render_iteration
        from ..tasks import get_backend

        self._stop_requested.clear()
        proposal = proposal or self.propose()
        if proposal is None:
            return None
        with self._lock:
            index = len(self.session.iterations) + 1
            folder = self.out / "iterations" / f"iter_{index:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            it = Iteration(index=index, status="running", recipe=proposal.recipe, rationale=proposal.rationale,
                           idea=proposal.idea, notebook=str(folder / "iteration.ipynb"), output_dir=str(folder),
                           started_at=now_iso(), decision="pending")
            self.session.iterations.append(it)
            self.session.proposal = None
            if proposal.idea and proposal.idea not in ("baseline", "annotations"):
                self.session.tried_ideas.append(proposal.idea)
            for a in self.session.annotations:
                if a.applied_in is None and proposal.idea == "annotations":
                    a.applied_in = index
            self.session.status = "running"
            self._save()
        self._emit(on_event, "iteration_started", iteration=index, rationale=it.rationale, idea=it.idea,
                   max_epochs=it.recipe.training.max_epochs)
        budget = timeout_s or self.session.spec.budget.iteration_minutes * 60.0
        problems = self._check_code(it.recipe)
        if problems:
            it.status, it.error = "crash", {"ename": "CodeRejected", "evalue": "; ".join(problems)}
            return self._finish_iteration(it, on_event)
        backend = get_backend(it.recipe.task_type)
        title = f"Iteration {index}: {it.idea or 'change'}"
        render_iteration(backend.template, folder / "input.ipynb", custom_code=it.recipe.custom_code,
                         title=title, rationale=it.rationale, parameters=self.notebook_parameters(it.recipe))
        from ..notebooks.runtime import monitors as checkpoint_monitors

        monitors = checkpoint_monitors(it.recipe)

        def relay(event: dict[str, Any]) -> None:
            if event.get("type") == "epoch":
                metrics = event.get("metrics") or {}
                value = next((metrics[m] for m in monitors if m in metrics), None)
                if isinstance(value, (int, float)):
                    it.curve.append(round(float(value), 6))
            self._emit(on_event, event.get("type", "log"), iteration=index,
                       **{k: v for k, v in event.items() if k not in ("type", "v", "time")},
                       budget_s=budget)

        self._prepare_cache(it.recipe)
        result = self._executor.execute(folder / "input.ipynb", folder / "iteration.ipynb", {},
                                        timeout_s=budget, events_path=folder / "events.jsonl", on_event=relay,
                                        cwd=folder)
        it.wall_s = round(result.wall_s, 2)
        it.warm_kernel = result.warm
        it.status = result.status if result.status in ("ok", "crash", "timeout", "stopped") else "crash"
        it.error = result.error
        if it.status == "timeout" and (folder / "metrics.json").exists() and (folder / "run_info.json").exists():
            # the budget ran out after the frozen evaluation had saved its results (during the figures)
            it.status, it.error = "ok", None
            self.session.log("iteration_overran_after_evaluation", iteration=index)
        if it.status == "ok":
            self._read_back(it, folder)
        return self._finish_iteration(it, on_event)

    def _prepare_cache(self, recipe: Recipe, include_test: bool = False) -> None:
        """Decode and resize the images into the on-disk cache before the kernel starts (outside the budget)."""
        from ..tasks import get_backend

        try:
            dm = get_backend(recipe.task_type).make_datamodule(self.dataset(include_test), recipe,
                                                               self.session.spec, include_test=include_test)
            if hasattr(dm, "prepare_cache"):
                dm.prepare_cache()
        except Exception as exc:  # noqa: BLE001 - the notebook reads the images itself and reports what fails
            self.session.log("image_cache_skipped", error=f"{type(exc).__name__}: {exc}")

    def notebook_parameters(self, recipe: Recipe) -> dict[str, Any]:
        """Values baked into the iteration notebook; outputs go to the run's working folder (``.``)."""
        return {"data_path": self.session.data_path, "data_format": self.session.data_format or "",
                "splits_path": str(self.out / SPLITS_FILE), "output_dir": ".", "events_path": "",
                "seed": recipe.seed,
                "recipe": recipe.model_dump(mode="json"), "spec": self.session.spec.model_dump(mode="json")}

    def _check_code(self, recipe: Recipe) -> list[str]:
        if not recipe.custom_code:
            return []
        from ..llm.codecheck import check_code

        return [f"{hook}: {p}" for hook, code in recipe.custom_code.items() for p in check_code(code, hook)]

    def _read_back(self, it: Iteration, folder: Path) -> None:
        import nbformat

        from ..evaluation.evaluate import evaluator_hash
        from ..notebooks.render import verify_frozen
        from ..tasks import get_backend

        try:
            metrics = json.loads((folder / "metrics.json").read_text(encoding="utf-8"))
            info = json.loads((folder / "run_info.json").read_text(encoding="utf-8"))
            verify_frozen(nbformat.read(folder / "iteration.ipynb", as_version=4),
                          get_backend(it.recipe.task_type).template)
            if info.get("evaluator_hash") != evaluator_hash():
                raise ClinagentError("the evaluator used by this iteration differs from the library's",
                                     fix="iterations cannot change the evaluator")
        except (OSError, json.JSONDecodeError, ClinagentError) as exc:
            it.status = "crash"
            it.error = {"ename": type(exc).__name__, "evalue": str(exc), "cell_index": None}
            return
        it.val_metrics = metrics
        from ..notebooks.rerun import replay_epochs
        from ..plan.selection import selection_value

        _pin_epochs(folder / "iteration.ipynb", replay_epochs(info))

        it.selection_value = selection_value(metrics)
        ckpt = folder / "model.ckpt"
        it.checkpoint = str(ckpt) if ckpt.exists() else None

    def _finish_iteration(self, it: Iteration, on_event: EventSink | None) -> Iteration:
        from ..plan.selection import decide

        with self._lock:
            it.finished_at = now_iso()
            best = self.session.best()
            baseline = next((x for x in self.session.iterations if x.decision == "baseline"), None)
            it.decision, it.decision_reason = decide(it, best, baseline, self.session.spec, self.session.annotations)
            if it.decision in ("kept", "baseline"):
                self.session.best_iteration = it.index
            self.session.log("iteration_finished", iteration=it.index, status=it.status, decision=it.decision,
                             selection_value=it.selection_value, wall_s=it.wall_s)
            self._save()
        self._emit(on_event, "iteration_finished", iteration=it.index, status=it.status, decision=it.decision,
                   reason=it.decision_reason, selection_value=it.selection_value, wall_s=it.wall_s,
                   error=(it.error or {}).get("evalue"), metrics=_headline(it.val_metrics))
        return it

    def should_stop(self) -> str | None:
        s = self.session
        if self._stop_requested.is_set():
            return "stopped by the clinician"
        if len(s.iterations) >= s.spec.budget.max_iterations:
            return f"iteration budget reached ({s.spec.budget.max_iterations})"
        remaining = self.remaining_s()
        if remaining is not None and remaining < 0.5 * s.spec.budget.iteration_minutes * 60.0:
            return "time budget spent"
        best = s.best()
        if best and s.spec.target_value is not None and (best.selection_value or 0) >= s.spec.target_value:
            return f"target reached ({best.selection_value:.4f} ≥ {s.spec.target_value})"
        failures = 0
        for it in reversed(s.iterations):
            if it.status == "ok":
                break
            failures += 1
        if failures >= 3:
            return "three iterations in a row failed"
        return None

    def run(self, on_event: EventSink | None = None, *, finish: bool = True) -> Session:
        """The whole loop: iterate until a stop condition, then evaluate the test split once."""
        reason = None
        while True:
            reason = self.should_stop()
            if reason:
                break
            it = self.run_iteration(on_event=on_event)
            if it is None:
                reason = "no untried idea left"
                break
            if it.status == "crash" and it.recipe.custom_code:
                self._repair(it)
        with self._lock:
            self.session.stop_reason = reason or ""
            self.session.status = "stopped"
            self._save()
        self._emit(on_event, "loop_finished", reason=reason, best_iteration=self.session.best_iteration)
        if finish and self.session.best_iteration is not None and not self._stop_requested.is_set():
            self.finish(on_event=on_event)
        return self.session

    def _repair(self, it: Iteration) -> None:
        """Ask the refiner to repair crashed custom code (at most MAX_REPAIRS times per idea)."""
        if self.uses_llm:
            from ..llm import may_repair

            if not may_repair(self.session.iterations, it.idea):
                self.session.log("repair_abandoned", iteration=it.index, idea=it.idea)
                return
        ctx = self._context()
        trace = str((it.error or {}).get("traceback") or (it.error or {}).get("evalue") or "")
        patch = self.refiner().repair(ctx, it, trace)
        if patch is not None:
            self.session.proposal = self._proposal_from_patch(it.recipe, patch)
            self.session.log("repair_proposed", iteration=it.index, idea=patch.idea)
            self._save()

    # ------------------------------------------------------------------------------------------------------
    # the test split, once
    # ------------------------------------------------------------------------------------------------------
    def finish(self, on_event: EventSink | None = None, timeout_s: float | None = None) -> FinalTest:
        """Evaluate the best iteration on the test split. Allowed exactly once per session.

        The evaluation runs as a notebook (``<out>/final_test/final_test.ipynb``) in its own kernel, like the
        iterations: the kept model's custom code, if any, runs only there, and the run can be audited.
        """
        from ..notebooks.render import FINAL_TEST_TEMPLATE, render_iteration

        s = self.session
        if s.final_test is not None or s.test_reads > 0:
            when = s.final_test.evaluated_at if s.final_test else "an earlier attempt"
            raise SessionConflict(f"the test split was already evaluated ({when})",
                               fix="the test split is read once per session; start a new session to test again")
        best = s.best()
        if best is None or not best.checkpoint or not Path(best.checkpoint).exists():
            raise SessionError("no kept model to evaluate", fix="run at least one successful iteration first")
        with self._lock:
            s.test_reads += 1
            s.log("test_split_read", iteration=best.index)
            self._save()
        self._emit(on_event, "test_started", iteration=best.index)
        folder = self.out / "final_test"
        threshold = best.val_metrics.get("threshold")
        params = {**self.notebook_parameters(best.recipe), "checkpoint": str(Path(best.checkpoint).resolve()),
                  "threshold": threshold if isinstance(threshold, (int, float)) else None}
        render_iteration(FINAL_TEST_TEMPLATE, folder / "input.ipynb", custom_code=best.recipe.custom_code,
                         parameters=params)
        self._prepare_cache(best.recipe, include_test=True)
        result = self._executor.execute(folder / "input.ipynb", folder / "final_test.ipynb", {},
                                        timeout_s=timeout_s or max(600.0, s.spec.budget.iteration_minutes * 60),
                                        events_path=folder / "events.jsonl", cwd=folder, prewarm_next=False)
        if result.status != "ok":
            with self._lock:
                s.log("final_test_failed", status=result.status, error=result.error)
                self._save()
            raise SessionError(f"the test evaluation ended with status '{result.status}': "
                               f"{(result.error or {}).get('evalue', '')}", where=str(folder / "final_test.ipynb"),
                               fix="read the notebook; the test split counts as read")
        metrics = json.loads((folder / "test_metrics.json").read_text(encoding="utf-8"))
        info = json.loads((folder / "run_info.json").read_text(encoding="utf-8"))
        name = "test_predictions.csv" if (folder / "test_predictions.csv").exists() else "test_predictions.json"
        path = self.out / name
        path.write_bytes((folder / name).read_bytes())
        final = FinalTest(iteration=best.index, metrics=metrics, evaluated_at=now_iso(),
                          n_samples=int(info["n_samples"]), predictions=str(path))
        with self._lock:
            s.final_test = final
            s.status = "finished"
            s.log("final_test", iteration=best.index, primary=metrics.get("primary"),
                  test_loader_reads=info.get("test_reads"), notebook=str(folder / "final_test.ipynb"))
            self._save()
        self._emit(on_event, "session_finished", iteration=best.index, metrics=_headline(metrics),
                   predictions=str(path))
        return final

    def export_report(self, path: str | Path | None = None) -> Path:
        from ..report import write_report

        return write_report(self.out, path)


def _prewarm_kernel() -> None:
    from ..notebooks.executor import NotebookExecutor

    NotebookExecutor().prewarm()


def _pin_epochs(notebook: Path, epochs: int | list[int] | None) -> None:
    """Write the epochs the run planned for its budget (``replay_epochs`` of its run_info.json) into the
    executed notebook's parameters cell, so that plain ``papermill iteration.ipynb out.ipynb -p seed S``
    replays the same schedule on any machine."""
    import nbformat

    from ..notebooks.render import bake_parameters

    if epochs is None:
        return
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            cell.source = bake_parameters(cell.source, {"max_epochs": epochs})
            atomic_write_text(notebook, nbformat.writes(nb))
            return


def _load_module(it: Iteration) -> Any:
    if it.recipe.task_type == "detection":
        from ..models.detector import WristDetector as cls
    else:
        from ..models.classifier import ImageClassifier as cls
    return cls.load_from_checkpoint(it.checkpoint, map_location="cpu", weights_only=False)


def _headline(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items() if isinstance(v, (int, float, str)) and not k.startswith("_")}
