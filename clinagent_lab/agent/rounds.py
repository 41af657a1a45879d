"""Several candidates at once (``--parallel K``): a round is up to K different proposals, run concurrently on
the engine's backend, then decided one by one, in the order they were proposed, against the best so far under
the usual rules (so the round's second candidate must also beat the first one if that was kept).

The first round is the baseline alone (there is nothing to compare candidates with before it). Locally the
backend runs a round's notebooks one at a time unless it was given more slots (``local_parallel``): one
training run already uses every core of a workstation.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from ..execution import resolve_config
from ..execution.base import JobDetached
from ..records import Iteration, Proposal
from . import iteration
from .loop import NO_IDEA_LEFT, Step

if TYPE_CHECKING:
    from .engine import Engine, EventSink

__all__ = ["propose_round", "run_round", "round_step", "set_parallel"]


def set_parallel(engine: Engine, k: int) -> int:
    """Run ``k`` candidates per round from the next round on, recorded in the session's ``execution``; the
    pending round's other candidates are dropped, to be proposed again for ``k``.

    Raises:
        ClinagentError: ``k`` outside 1..16.
    """
    config = resolve_config({"parallel": k}, recorded=engine.session.execution)
    with engine.lock:
        engine.parallel = config.parallel
        engine.session.execution = {**engine.session.execution, "parallel": config.parallel}
        engine.session.candidates = []
        engine.session.log("parallel_set", parallel=config.parallel)
        engine.save()
    return engine.parallel


def propose_round(engine: Engine) -> list[Proposal]:
    """The pending proposal and up to K - 1 more with other ideas (never more than the iterations left).

    The others are kept in the session (``candidates``) beside the proposal, so the clinician approves the
    round they were shown and it runs as shown; anything that drops the proposal drops them too."""
    session = engine.session
    first = engine.propose()
    if first is None:
        return []
    if session.candidates:
        return [first, *session.candidates]
    left = session.spec.budget.max_iterations - len(session.iterations)
    if first.idea == "baseline" or session.best_iteration is None:
        return [first]
    proposals = [first]
    ctx = engine.refine_context()
    ctx.tried_ideas.add(first.idea)
    while len(proposals) < min(engine.parallel, left):
        patch = engine.refiner().propose(ctx)
        if patch is None or patch.idea in ctx.tried_ideas:
            break
        ctx.tried_ideas.add(patch.idea or "change")
        proposals.append(engine.proposal_from_patch(ctx.current, patch))
    if len(proposals) > 1:
        with engine.lock:
            session.candidates = proposals[1:]
            engine.save()
    return proposals


def run_round(engine: Engine, proposals: list[Proposal], on_event: EventSink | None = None) -> list[Iteration]:
    """Start every candidate, run their notebooks concurrently, then decide them in order."""
    session = engine.session
    number = 1 + max((it.round or 0 for it in session.iterations), default=0)
    with engine.lock:
        session.candidates = []  # they run now (saved with the first iteration started)
    started = [iteration.start_iteration(engine, p, on_event, round_=number) for p in proposals]
    session.log("round_started", round=number, iterations=[it.index for it, _ in started])
    threads = [threading.Thread(target=iteration.execute_iteration, args=(engine, it, budget, on_event),
                                name=f"clinagent-iter-{it.index}", daemon=True) for it, budget in started]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if engine.executor.detached:  # the process is going away: the jobs go on, recorded as running
        raise JobDetached(f"round {number} left running on the cluster", where=str(engine.out),
                          fix="reopen the session (or restart the server) to collect it")
    return [iteration.finish_iteration(engine, it, on_event) for it, _ in started]


def round_step(engine: Engine, on_event: EventSink | None = None) -> Step:
    """One turn of the loop as a round (see :func:`.loop.step`, which delegates here when K > 1)."""
    proposals = propose_round(engine)
    if not proposals:
        return Step(None, NO_IDEA_LEFT, None)
    its = run_round(engine, proposals, on_event)
    if any(it.status == "stopped" for it in its):
        return Step(its[-1], "stopped by the clinician", None)
    for it in its:
        if it.status == "crash" and it.recipe.custom_code and engine.session.proposal is None:
            engine.repair(it)  # the repair becomes the pending proposal, first of the next round
    reason = engine.should_stop()
    if reason:
        return Step(its[-1], reason, None)
    nxt = propose_round(engine)  # the next round, shown whole for approval
    return Step(its[-1], None if nxt else NO_IDEA_LEFT, nxt[0] if nxt else None)
