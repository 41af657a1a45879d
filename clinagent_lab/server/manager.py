"""The server's side of the agent loop: sessions on disk, one running iteration, pending proposals.

Blocking engine calls run in a thread pool; the loop itself (propose -> run -> propose ...) is an asyncio
task. Only ONE iteration runs per server at a time: a second start answers 409 with what is running.
The engine class is injected (``engine_factory``) and imported lazily, so starting the server never imports
torch.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable

from jupyter_events import EventLogger

from ..errors import ClinagentError, RecipeError
from ..execution import make_backend, resolve_config
from ..models.weights import FILE_SUFFIXES, cached_weights, hub_cache_dir, pretrained_overrides
from ..records import SESSION_FILE, Annotation, Session
from ..spec import TaskSpec
from .cells import iteration_cells
from .events import SessionEvents
from .plumbing import (
    BusyError,
    PathOutsideRootError,
    UnknownSessionError,
    inside_root,
    load_engine_class,
    resolve_data_path,
    to_jsonable,
)
from .runner import Job, next_round, remember_auto_continue, run_job

__all__ = [
    "BusyError",
    "UnknownSessionError",
    "PathOutsideRootError",
    "SessionManager",
    "Job",
    "resolve_data_path",
    "load_engine_class",
    "to_jsonable",
    "iteration_cells",
]

log = logging.getLogger(__name__)


def _interpret_with_data(request: str, data_path: Path | None, model: str) -> TaskSpec:
    from ..agent.prepare import interpret, prepare_data  # the data stack (pandas): not at server start-up

    fingerprint = prepare_data(data_path)[1] if data_path is not None else None
    return interpret(request, fingerprint, model=model)


class SessionManager:
    """Sessions under ``sessions_dir``, engines opened on demand, one loop task at a time.

    Args:
        sessions_dir: folder holding one sub-folder per session.
        root_dir: the Jupyter server root; data paths must lie inside it.
        engine_factory: the engine class (``create``/``open``/``interpret``); imported lazily when ``None``.
        model: LLM model string for the planner ("offline" = deterministic rules).
        max_iterations: default iteration budget for new sessions (``None``: the spec decides).
        iteration_minutes: default time budget of one iteration.
        auto_continue: run proposals without waiting for approval (for sessions that never switched it).
        recipe_overrides: recipe fields (dotted names) fixed for every new session's baseline.
        execution: where new sessions' notebooks run (``execution.ExecutionConfig`` fields; docs/cluster.md).
        event_logger: the server's Jupyter event bus (``serverapp.event_logger``); a private one when ``None``.
        workers: threads for blocking engine calls.
    """

    def __init__(self, sessions_dir: str | Path, root_dir: str | Path, *, engine_factory: Any = None,
                 model: str = "offline", max_iterations: int | None = None,
                 iteration_minutes: float | None = None, auto_continue: bool = False,
                 event_logger: EventLogger | None = None, workers: int = 4,
                 recipe_overrides: dict[str, Any] | None = None, execution: dict[str, Any] | None = None) -> None:
        self.sessions_dir = Path(sessions_dir)
        self.root_dir = Path(root_dir).resolve()
        self._factory = engine_factory
        self.model = model
        self.max_iterations = max_iterations
        self.iteration_minutes = iteration_minutes
        self.auto_continue = auto_continue
        self.recipe_overrides = dict(recipe_overrides or {})
        self.execution = dict(execution or {})
        self._dirs: dict[str, Path] = {}
        self.events = SessionEvents(event_logger, folder=self._dirs.get)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="clinagent")
        self._engines: dict[str, Any] = {}
        self._job: Job | None = None
        #: sessions whose iterations' jobs outlived the last server (collected by :meth:`collect_reattached`)
        self.reattached: list[str] = []

    # --- plumbing ----------------------------------------------------------------------------------
    @property
    def engine_class(self) -> Any:
        if self._factory is None:
            self._factory = load_engine_class()
        return self._factory

    async def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Run a blocking engine call in the manager's threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, functools.partial(fn, *args, **kwargs))

    def emit(self, sid: str, type_: str, **payload: Any) -> None:
        """Publish one event of session ``sid`` (on the event loop's thread)."""
        self.events.publish({"type": type_, "session": sid, **payload})

    def _out_dir(self, sid: str) -> Path:
        if sid not in self._dirs:
            self.scan()
        if sid not in self._dirs:
            raise UnknownSessionError(f"no session '{sid}'", where=str(self.sessions_dir),
                                      fix="list sessions with GET /clinagent/api/sessions")
        return self._dirs[sid]

    def load(self, sid: str) -> Session:
        """The session as saved on disk (atomic writes make this safe while an iteration runs)."""
        return Session.load(self._out_dir(sid))

    async def engine(self, sid: str) -> Any:
        if sid not in self._engines:
            self._engines[sid] = await self.call(self.engine_class.open, self._out_dir(sid))
        return self._engines[sid]

    def _require_idle(self, sid: str, action: str) -> None:
        if self._job is not None and self._job.session == sid:
            raise BusyError(f"cannot {action} while session '{sid}' is running",
                            where=f"iteration {self._job.iteration}", fix="stop it or wait for it to finish")

    # --- start-up ----------------------------------------------------------------------------------
    def recover(self) -> list[Session]:
        """At server start: list sessions on disk; iterations left ``running`` whose job the backend still knows
        (a cluster job) are kept for :meth:`collect_reattached`, the others are marked ``interrupted``."""
        sessions = self.scan()
        self.reattached = [s.id for s in sessions if self._mark_interrupted(s)]
        return sessions

    async def collect_reattached(self) -> None:
        """Reattach to the jobs that outlived the last server, session by session, and go on with each loop
        (waiting for approval afterwards unless auto-continue is on): nothing is submitted twice."""
        while self.reattached:
            sid = self.reattached.pop(0)
            await self.wait_idle()
            log.info("clinagent: session %s: collecting iterations whose jobs outlived the last server", sid)
            await self.start(sid, collecting=True)
            await self.wait_idle()

    def scan(self) -> list[Session]:
        """Sessions on disk, oldest folder first (unreadable ones are logged and skipped)."""
        sessions: list[Session] = []
        if not self.sessions_dir.is_dir():
            return sessions
        for path in sorted(self.sessions_dir.glob(f"*/{SESSION_FILE}")):
            try:
                session = Session.load(path.parent)
            except ClinagentError as exc:
                log.warning("clinagent: skipping %s: %s", path, exc)
                continue
            self._dirs[session.id] = path.parent
            sessions.append(session)
        return sessions

    @staticmethod
    def _mark_interrupted(session: Session) -> bool:
        """Mark what cannot be reattached to; whether some iteration's job can be (a cluster job)."""
        backend = make_backend(resolve_config(recorded=session.execution))  # a cluster job outlives the server
        keep = [it.index for it in session.iterations if it.status == "running" and it.output_dir
                and backend.reattach(it.output_dir) is not None]
        if session.mark_interrupted("the server stopped while this iteration ran; start again to rerun it",
                                    stop_reason="server restarted", keep=keep):
            session.save()
        return bool(keep)

    # --- read --------------------------------------------------------------------------------------
    def list(self) -> list[dict[str, Any]]:
        out = []
        for s in self.scan():
            best = s.best()
            out.append({"id": s.id, "created_at": s.created_at, "request": s.request,
                        "data_path": s.data_path, "status": s.status, "iterations": len(s.iterations),
                        "best_iteration": s.best_iteration,
                        "best_value": best.selection_value if best else None,
                        "running": self._job is not None and self._job.session == s.id})
        return sorted(out, key=lambda d: d["created_at"], reverse=True)

    def runtime(self, sid: str, session: Session | None = None) -> dict[str, Any]:
        """What the server is doing now: this session's loop, any loop, its auto-continue, newest event."""
        job = self._job
        mine = job if job and job.session == sid else None
        auto = mine.auto_continue if mine else self.auto_continue_of(session) if session else self.auto_continue
        return {"running": mine.describe() if mine else None, "busy": job.describe() if job else None,
                "auto_continue": auto, "last_seq": self.events.last_seq(sid) if sid else 0}

    def auto_continue_of(self, session: Session) -> bool:
        """The session's own auto-continue switch (kept in its record across restarts), else the server's."""
        return self.auto_continue if session.auto_continue is None else session.auto_continue

    def get(self, sid: str) -> dict[str, Any]:
        """``{"session": <Session JSON, proposal included>, "runtime": ...}``."""
        session = self.load(sid)
        return {"session": session.model_dump(mode="json"), "runtime": self.runtime(sid, session)}

    def cells(self, sid: str, index: int) -> dict[str, Any]:
        return iteration_cells(self.load(sid), index)

    # --- write -------------------------------------------------------------------------------------
    async def interpret(self, request: str, data_path: str | None) -> TaskSpec:
        """Parse ``request``; with ``data_path``, ground the spec in the data's fingerprint."""
        path = resolve_data_path(self.root_dir, data_path) if data_path else None
        fn = getattr(self.engine_class, "interpret", None)
        if fn is not None:
            return await self.call(fn, request, data_path=path)
        return await self.call(_interpret_with_data, request, path, self.model)

    async def create(self, request: str, data_path: str, *, spec: TaskSpec | None = None,
                     max_iterations: int | None = None, iteration_minutes: float | None = None,
                     data_format: str | None = None, pretrained: str | None = None,
                     parallel: int | None = None) -> dict[str, Any]:
        """A new session; ``pretrained`` (a cached name or a weights file under the root) and ``parallel`` (K
        candidates per round) apply to this session on top of the server's settings."""
        path = resolve_data_path(self.root_dir, data_path)
        overrides = dict(self.recipe_overrides)
        if pretrained:
            overrides.update(await self.pretrained(pretrained))
        execution = {**self.execution, **({"parallel": parallel} if parallel else {})}
        out_dir = self.sessions_dir / f"{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
        eng = await self.call(self.engine_class.create, request, path, out_dir, model=self.model,
                              max_iterations=max_iterations or self.max_iterations,
                              iteration_minutes=iteration_minutes or self.iteration_minutes,
                              spec=spec, data_format=data_format, recipe_overrides=overrides,
                              **({"execution": execution} if execution else {}))
        sid = eng.session.id
        self._dirs[sid] = Path(eng.session.out_dir)
        self._engines[sid] = eng
        self.emit(sid, "log", message=f"session created in {eng.session.out_dir}")
        return self.get(sid)

    async def pretrained(self, given: str) -> dict[str, Any]:
        """The recipe fields ``--pretrained given`` fixes, checked now: a name must be in the local cache, a
        file must exist under the server's root (400 / 403 naming the field ``pretrained``)."""
        raw = Path(given).expanduser()
        if raw.suffix in FILE_SUFFIXES or "/" in given or (self.root_dir / raw).exists():
            given = str(inside_root(self.root_dir, given, "pretrained"))
        try:
            return await self.call(pretrained_overrides, given)  # timm's registry for names: in a thread
        except RecipeError as exc:
            raise RecipeError(exc.what, where="field 'pretrained'",
                              fix=f"{exc.fix}; cached weights: GET /clinagent/api/weights") from None

    @staticmethod
    def weights() -> dict[str, Any]:
        """What ``clinagent weights list`` shows: the pretrained weights in the local cache (nothing fetched)."""
        return {"cache": str(hub_cache_dir()), "weights": cached_weights()}

    async def update_spec(self, sid: str, spec: TaskSpec) -> dict[str, Any]:
        self._require_idle(sid, "edit the spec")
        eng = await self.engine(sid)
        await self.call(eng.update_spec, spec)
        return self.get(sid)

    async def annotate(self, sid: str, annotation: Annotation) -> dict[str, Any]:
        self._require_idle(sid, "add an annotation")
        eng = await self.engine(sid)
        saved = await self.call(eng.annotate, annotation)
        self.emit(sid, "annotation", annotation=to_jsonable(saved))
        return to_jsonable(saved)

    async def finish(self, sid: str) -> dict[str, Any]:
        self._require_idle(sid, "evaluate on the test split")
        session = self.load(sid)
        if session.final_test is not None or session.test_reads > 0:
            raise BusyError(f"the test split of session '{sid}' was already evaluated"
                            + (f" (at {session.final_test.evaluated_at})" if session.final_test else ""),
                            fix="the test split is read once per session; start a new session to test again")
        eng = await self.engine(sid)
        final = await self.call(eng.finish)
        self.emit(sid, "final_test", final_test=to_jsonable(final))
        return to_jsonable(final)

    async def export(self, sid: str) -> dict[str, Any]:
        eng = await self.engine(sid)
        path = Path(await self.call(eng.export_report)).resolve()
        rel = path.relative_to(self.root_dir).as_posix() if self.root_dir in path.parents else None
        self.emit(sid, "export", path=str(path), relative=rel)
        return {"path": str(path), "relative": rel, "url": f"files/{rel}" if rel else None}

    # --- proposals ---------------------------------------------------------------------------------
    async def proposal(self, sid: str) -> dict[str, Any]:
        """``{"proposal", "candidates"}``: the pending proposal and, with ``--parallel``, the other candidates of
        its round (kept in the session); the engine is asked when none is kept and nothing runs."""
        session = self.load(sid)
        if session.proposal is None and not (self._job and self._job.session == sid):
            eng = await self.engine(sid)
            await self.call(next_round, eng)
            session = eng.session
        return {"proposal": to_jsonable(session.proposal), "candidates": to_jsonable(session.candidates)}

    async def act_on_proposal(self, sid: str, action: str, changes: dict[str, Any] | None,
                              auto_continue: bool | None) -> dict[str, Any]:
        """``approve`` starts the proposed iteration (the whole round with ``--parallel``), ``reject`` drops it
        (and its round), ``edit`` changes recipe fields of the proposal."""
        self._require_idle(sid, f"{action} the proposal")
        current = (await self.proposal(sid))["proposal"]
        if current is None:
            raise BusyError(f"session '{sid}' has no proposal to {action}",
                            fix="no untried idea is left; finish the session")
        if action == "approve":
            return await self.start(sid, auto_continue=auto_continue)
        eng = await self.engine(sid)
        if action == "reject":
            await self.call(eng.reject_proposal)
            self.emit(sid, "proposal", proposal=None, rejected=current)
            return {"proposal": None, "rejected": current}
        edited = await self.call(eng.edit_proposal, changes or {})
        self.emit(sid, "proposal", proposal=to_jsonable(edited), edited=True,
                  candidates=to_jsonable(eng.session.candidates))
        return {"proposal": to_jsonable(edited), "candidates": to_jsonable(eng.session.candidates)}

    # --- the loop ----------------------------------------------------------------------------------
    async def start(self, sid: str, *, auto_continue: bool | None = None, collecting: bool = False) -> dict[str, Any]:
        """Start one iteration (or round, or the auto-continue loop) as a background task; 409 if anything runs."""
        self._out_dir(sid)
        if self._job is not None:
            job = self._job
            raise BusyError(f"an iteration is already running (session '{job.session}', iteration "
                            f"{job.iteration}); one runs at a time", where=f"session '{job.session}'",
                            fix="wait for it to finish or stop it")
        if auto_continue is None:  # the session's own switch: a restarted server goes on as it was left
            auto_continue = self.auto_continue_of(self.load(sid))
        job = Job(session=sid, auto_continue=auto_continue, collecting=collecting)
        self._job = job
        self.emit(sid, "state", running=job.describe())
        job.task = asyncio.create_task(run_job(self, job))
        return {"running": job.describe()}

    def job_ended(self, job: Job) -> None:
        """Called by the loop task as it ends."""
        if self._job is job:
            self._job = None
        self.emit(job.session, "state", running=None)

    async def set_parallel(self, sid: str, k: int) -> dict[str, Any]:
        """Candidates per round for this session's next rounds; the pending round is proposed again."""
        self._require_idle(sid, "change the candidates per round")
        eng = await self.engine(sid)
        await self.call(eng.set_parallel, k)
        got = await self.proposal(sid)
        self.emit(sid, "proposal", **got)
        return {"parallel": eng.parallel, **got}

    async def set_auto_continue(self, sid: str, enabled: bool) -> dict[str, Any]:
        """Switch auto-continue for this session's later starts (kept in its record, so a restarted server keeps
        it) and, when ``sid`` runs now, for the loop in progress."""
        await self.call(remember_auto_continue, await self.engine(sid), enabled)
        if self._job is not None and self._job.session == sid:
            self._job.auto_continue = enabled
        self.emit(sid, "state", running=self._job.describe() if self._job else None, auto_continue=enabled)
        return {"auto_continue": enabled}

    async def stop(self, sid: str) -> dict[str, Any]:
        self._out_dir(sid)
        job = self._job
        if job is None or job.session != sid:
            raise BusyError(f"nothing is running in session '{sid}'", fix="start an iteration first")
        job.stop_requested = True
        job.phase = "stopping"
        if sid in self._engines:
            await self.call(self._engines[sid].stop)
        self.emit(sid, "state", running=job.describe())
        return {"stopping": job.describe()}

    async def wait_idle(self, timeout: float | None = None) -> None:
        """Wait until the running loop (if any) ends. Used by tests and at shutdown."""
        job = self._job
        if job is not None and job.task is not None:
            await asyncio.wait_for(asyncio.shield(job.task), timeout)

    async def shutdown(self) -> None:
        """Stop what runs (cluster jobs go on: the next server reattaches to them), release threads."""
        job = self._job
        if job is not None:
            job.stop_requested = True
            eng = self._engines.get(job.session)
            if eng is not None and not (hasattr(eng, "detach") and eng.detach()):
                eng.stop()
            try:
                await self.wait_idle(timeout=10)
            except (asyncio.TimeoutError, Exception):  # noqa: BLE001 - shutting down regardless
                pass
        self._pool.shutdown(wait=False, cancel_futures=True)
