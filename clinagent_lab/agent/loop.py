"""The agent loop, once: propose -> run -> decide -> repair -> stop rule.

Every front door drives sessions through :func:`step` (the server, one step per approval or while
auto-continue is on) or :func:`run_loop` (the CLI and the Python API, steps until a stop rule fires), so none
of them holds logic another lacks.

The engine is duck-typed here (``should_stop``, ``propose``, ``run_iteration``, ``repair``) so that the server
tests can drive the same loop with a stand-in engine.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:
    from ..records import Iteration, Proposal, Session

__all__ = ["Step", "step", "run_loop", "stop_rule", "NO_IDEA_LEFT"]

EventSink = Callable[[dict[str, Any]], None]
NO_IDEA_LEFT = "no untried idea left"


@dataclass
class Step:
    """What one turn of the loop did: the iteration it ran (if any), why the loop must stop (if it must), and
    the next proposal waiting for approval."""

    iteration: Iteration | None
    stop_reason: str | None
    proposal: Proposal | None


def stop_rule(session: Session, *, stop_requested: bool, remaining_s: float | None) -> str | None:
    """Why the loop must stop now, or ``None``: the clinician, the budgets, the target, repeated failures."""
    if stop_requested:
        return "stopped by the clinician"
    budget = session.spec.budget
    if len(session.iterations) >= budget.max_iterations:
        return f"iteration budget reached ({budget.max_iterations})"
    if remaining_s is not None and remaining_s < 0.5 * budget.iteration_minutes * 60.0:
        return "time budget spent"
    best = session.best()
    if best and session.spec.target_value is not None and (best.selection_value or 0) >= session.spec.target_value:
        return f"target reached ({best.selection_value:.4f} ≥ {session.spec.target_value})"
    failures = 0
    for it in reversed(session.iterations):
        if it.status == "ok":
            break
        failures += 1
    if failures >= 3:
        return "three iterations in a row failed"
    return None


def step(engine: Any, on_event: EventSink | None = None, *, proposal: Proposal | None = None) -> Step:
    """One turn: run the pending (or given) proposal, decide, repair crashed custom code, then ask the stop
    rule and, when the loop may go on, prepare the next proposal."""
    reason = engine.should_stop()
    if reason:
        return Step(None, reason, None)
    if proposal is None and getattr(engine, "parallel", 1) > 1:
        return engine.round_step(on_event)  # several candidates at once: see agent/rounds.py
    proposal = proposal or engine.propose()
    if proposal is None:
        return Step(None, NO_IDEA_LEFT, None)
    it = engine.run_iteration(proposal=proposal, on_event=on_event)
    if it is None:
        return Step(None, NO_IDEA_LEFT, None)
    if it.status == "stopped":
        return Step(it, "stopped by the clinician", None)
    if it.status == "crash" and it.recipe.custom_code:
        engine.repair(it)  # the repair becomes the pending proposal
    reason = engine.should_stop()
    if reason:
        return Step(it, reason, None)
    nxt = engine.propose()
    return Step(it, None if nxt is not None else NO_IDEA_LEFT, nxt)


def run_loop(engine: Any, on_event: EventSink | None = None) -> str:
    """Steps until a stop rule fires; returns the reason."""
    while True:
        result = step(engine, on_event)
        if result.stop_reason:
            return result.stop_reason
