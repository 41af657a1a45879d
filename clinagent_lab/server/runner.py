"""The server's loop task: what runs between a Start (or an approval) and the point where the session waits for
the clinician again, and the collection of jobs that outlived the previous server.

One :class:`Job` runs at a time. Its loop calls :func:`clinagent_lab.agent.loop.step` (a round of candidates
with ``--parallel``) in a worker thread, relays the engine's events and stops where the CLI's loop would stop,
or after one step when auto-continue is off.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..agent.loop import NO_IDEA_LEFT, step
from ..errors import ClinagentError
from ..execution.base import JobDetached
from .plumbing import to_jsonable

if TYPE_CHECKING:
    from .manager import SessionManager

__all__ = ["Job", "next_round", "remember_auto_continue", "run_job"]

log = logging.getLogger(__name__)


@dataclass
class Job:
    """What runs now: the loop of one session."""

    session: str
    auto_continue: bool
    started_at: float = field(default_factory=time.time)
    iteration: int | None = None
    phase: str = "starting"
    stop_requested: bool = False
    #: started by the server itself, to collect iterations whose jobs outlived the previous server
    collecting: bool = False
    task: asyncio.Task[None] | None = None

    def describe(self) -> dict[str, Any]:
        return {"session": self.session, "iteration": self.iteration, "phase": self.phase,
                "auto_continue": self.auto_continue, "started_at": self.started_at}


def next_round(eng: Any) -> list[Any]:
    """The next proposal and, with ``--parallel``, the rest of its round (kept in the session)."""
    if getattr(eng, "parallel", 1) > 1 and hasattr(eng, "propose_round"):
        return list(eng.propose_round())
    current = eng.propose()
    return [current] if current is not None else []


def remember_auto_continue(eng: Any, enabled: bool) -> None:
    """Record the session's auto-continue switch in its ``session.json`` (an atomic write, under the engine's lock
    so that a save by the iteration running meanwhile neither loses it nor interleaves with it)."""
    with getattr(eng, "lock", None) or contextlib.nullcontext():
        if eng.session.auto_continue is enabled:
            return
        eng.session.auto_continue = enabled
        eng.session.log("auto_continue", enabled=enabled)
        eng.session.save()


async def run_job(manager: SessionManager, job: Job) -> None:
    """Collect reattached iterations, then propose -> run -> decide; stop, or go on with auto-continue."""
    sid = job.session
    loop = asyncio.get_running_loop()

    def on_event(event: dict[str, Any]) -> None:
        if event.get("type") == "iteration_started" and "iteration" in event:
            job.iteration = event["iteration"]
        manager.events.publish_threadsafe(loop, {**event, "session": sid})

    def proposed(eng: Any, after: int | None) -> None:
        manager.emit(sid, "proposal", proposal=to_jsonable(eng.session.proposal),
                     candidates=to_jsonable(getattr(eng.session, "candidates", [])), after=after)

    try:
        eng = await manager.engine(sid)
        await manager.call(remember_auto_continue, eng, job.auto_continue)  # what this loop runs with, kept
        if hasattr(eng, "resume"):  # iterations whose jobs outlived the last server: collect them, never resubmit
            job.phase = "running"
            done = await manager.call(eng.resume, on_event)
            if done and not job.stop_requested:
                reason = await manager.call(eng.should_stop)
                if reason:
                    manager.emit(sid, "loop_finished", reason=reason, best_iteration=eng.session.best_iteration)
                    return
                await manager.call(next_round, eng)
                proposed(eng, done[-1].index)
            if job.collecting and not job.auto_continue:
                return
        while not job.stop_requested:
            job.phase = "proposing"
            current = await manager.call(eng.propose)
            if current is None:
                manager.emit(sid, "loop_finished", reason=NO_IDEA_LEFT)
                break
            if job.stop_requested:
                break
            job.phase, job.iteration = "running", len(eng.session.iterations) + 1
            # --parallel K: the approved proposal opens a round of up to K candidates (agent/rounds.py)
            rounds = getattr(eng, "parallel", 1) > 1 and current is eng.session.proposal
            result = await manager.call(step, eng, on_event, proposal=None if rounds else current)
            if result.iteration is not None and result.iteration.status != "stopped" and not job.stop_requested:
                proposed(eng, result.iteration.index)
            if result.stop_reason or job.stop_requested:
                if result.stop_reason and not job.stop_requested:
                    manager.emit(sid, "loop_finished", reason=result.stop_reason,
                                 best_iteration=eng.session.best_iteration)
                break
            if not job.auto_continue:
                break
    except JobDetached as exc:  # the server is going away; the cluster jobs go on and are collected later
        manager.emit(sid, "log", message=exc.message)
    except ClinagentError as exc:
        manager.emit(sid, "error", **exc.to_dict())
    except Exception as exc:  # keep the server alive; the sidebar shows the error
        log.exception("clinagent: session %s failed", sid)
        manager.emit(sid, "error", error=type(exc).__name__, what=str(exc), where=None, fix=None,
                     message=f"{type(exc).__name__}: {exc}")
    finally:
        manager.job_ended(job)
