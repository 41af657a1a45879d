"""The LLM refiner: the ``Refiner`` protocol of ``clinagent_lab.plan.refiner`` backed by an LLM.

When the LLM is unreachable, keeps answering invalid output, or the budget is spent, the fallback refiner
(the offline :class:`~clinagent_lab.plan.refiner.RuleRefiner`) answers instead and its rationale says so:
``"... (offline planner: LLM unavailable: <reason>)"``.

Engine usage::

    client = build_client(model, audit=session_audit(session), api_base=api_base)   # one per session
    refiner = build_refiner(model, fallback=RuleRefiner(), audit=..., client=client, redactor=redactor)
    parse = build_parser(model, audit=..., client=client, redactor=redactor)
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from .audit import AuditSink
from .client import API_BASE_ENV, LLMClient, LLMConfig, LLMUnavailable, is_offline
from .proposer import propose_patch, repair_patch
from .redact import Redactor

if TYPE_CHECKING:  # pragma: no cover
    from ..records import Iteration
    from ..plan.refiner import RefineContext, Refiner
    from ..recipe import RecipePatch

__all__ = ["LLMRefiner", "build_client", "build_refiner", "repair_attempts", "may_repair", "MAX_REPAIRS",
           "FAILED_STATUSES"]

MAX_REPAIRS = 2
FAILED_STATUSES = ("crash", "timeout")


def repair_attempts(history: Iterable[Iteration], idea: str) -> int:
    """How many repairs of ``idea`` were already run: failed iterations with that idea, minus the first."""
    failures = sum(1 for it in history if it.idea == idea and it.status in FAILED_STATUSES)
    return max(0, failures - 1)


def may_repair(history: Iterable[Iteration], idea: str, max_repairs: int = MAX_REPAIRS) -> bool:
    """Whether the engine may ask for one more repair of ``idea`` (at most ``max_repairs`` per idea).

    Example:
        >>> may_repair([], "x")
        True
    """
    return repair_attempts(history, idea) < max_repairs


def _with_note(patch: RecipePatch | None, reason: str) -> RecipePatch | None:
    if patch is None:
        return None
    note = f"(offline planner: LLM unavailable: {reason})"
    return patch.model_copy(update={"rationale": f"{patch.rationale} {note}".strip()})


def _reason(exc: LLMUnavailable) -> str:
    return exc.what.rstrip(".")


class LLMRefiner:
    """Proposes and repairs with an LLM; falls back to ``fallback`` when the LLM cannot answer.

    Args:
        client: the LLM client (its budget and audit are shared with the parser when the same one is passed).
        fallback: the offline refiner used when the LLM is unavailable.
        redactor: removes data paths and identifiers from free text; defaults to one built from each
            context's fingerprint (data root only); the engine should pass ``Redactor.for_dataset(dataset)``.
    """

    def __init__(self, client: LLMClient, fallback: Refiner, *, redactor: Redactor | None = None) -> None:
        self.client = client
        self.fallback = fallback
        self.redactor = redactor
        self.name = f"llm:{client.model}"
        self.last_error: str | None = None

    def _redactor(self, ctx: RefineContext) -> Redactor:
        return self.redactor or Redactor.for_fingerprint(ctx.fingerprint)

    def propose(self, ctx: RefineContext) -> RecipePatch | None:
        """The LLM's next idea as a validated patch of ``ctx.current``, or the fallback's (with a note)."""
        try:
            patch = propose_patch(self.client, ctx, self._redactor(ctx))
        except LLMUnavailable as exc:
            self.last_error = _reason(exc)
            return _with_note(self.fallback.propose(ctx), self.last_error)
        self.last_error = None
        return patch

    def repair(self, ctx: RefineContext, iteration: Iteration, traceback: str) -> RecipePatch | None:
        """Fixed hook code (and/or recipe changes) for the crashed ``iteration``, applying to its recipe.

        The engine decides whether to ask (see :func:`may_repair`).
        """
        try:
            patch = repair_patch(self.client, ctx, iteration, traceback, self._redactor(ctx))
        except LLMUnavailable as exc:
            self.last_error = _reason(exc)
            return _with_note(self.fallback.repair(ctx, iteration, traceback), self.last_error)
        self.last_error = None
        return patch


def build_client(model: str, *, audit: AuditSink | None = None, **config: Any) -> LLMClient:
    """An :class:`LLMClient` for ``model``; ``config`` holds :class:`LLMConfig` fields (api_base, budgets).

    ``None`` values in ``config`` are dropped so CLI options can be passed through unchanged; without an
    ``api_base``, ``$CLINAGENT_API_BASE`` is used when set.
    """
    fields = {k: v for k, v in config.items() if v is not None}
    if "api_base" not in fields and os.environ.get(API_BASE_ENV):
        fields["api_base"] = os.environ[API_BASE_ENV]
    return LLMClient(LLMConfig(model=model, **fields), audit)


def build_refiner(model: str, *, fallback: Refiner, audit: AuditSink | None = None,
                  client: LLMClient | None = None, redactor: Redactor | None = None,
                  **config: Any) -> Refiner:
    """The refiner for ``model``: ``fallback`` itself when offline, else an :class:`LLMRefiner`.

    Args:
        model: ``"offline"`` or a litellm model name (see :func:`~clinagent_lab.llm.client.resolve_model`).
        fallback: the offline refiner.
        audit: sink for one record per LLM call (e.g. ``session_audit(session)``).
        client: an existing client to share (budget, audit) with the parser; built from ``config`` if None.
        redactor: see :class:`LLMRefiner`.
        **config: :class:`LLMConfig` fields (api_base, timeout_s, max_tokens_total, max_cost_usd, ...).
    """
    if is_offline(model):
        return fallback
    return LLMRefiner(client or build_client(model, audit=audit, **config), fallback, redactor=redactor)
