"""Ask the LLM for the next RecipePatch (or a repair), and accept it only once it validates.

A reply is accepted when: it changes something; every changed field exists in the Recipe and is not locked
(:data:`~clinagent_lab.llm.prompts.LOCKED_FIELDS`); :func:`~clinagent_lab.recipe.apply_patch` accepts the
values; every hook's code passes :func:`~clinagent_lab.llm.codecheck.check_code`; and (for proposals) the idea
was not tried before. Otherwise the reason goes back to the model, which answers again (at most
``max_invalid_retries`` times); code that fails the checks is never returned.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

from ..errors import RecipeError
from ..recipe import Recipe, RecipePatch, apply_patch
from .codecheck import HOOKS, check_code
from .prompts import LOCKED_FIELDS, propose_messages, repair_messages
from .redact import Redactor, privacy_payload, trim_traceback

if TYPE_CHECKING:  # pragma: no cover
    from ..records import Iteration
    from ..plan.refiner import RefineContext
    from .client import LLMClient

__all__ = ["LLMProposal", "to_patch", "proposal_problem", "propose_patch", "repair_patch", "context_payload"]


class LLMProposal(BaseModel):
    """What the LLM answers: recipe changes, optional hook code, the rationale and the idea's name."""

    model_config = ConfigDict(extra="forbid")

    changes: dict[str, Any] = Field(default_factory=dict,
                                    description="dotted Recipe field path -> new value")
    custom_code: dict[str, str] = Field(default_factory=dict,
                                        description="hook name (model, loss, augment, sampler) -> Python "
                                        "source; an empty string removes the hook")
    rationale: str = Field(min_length=1, description="why, citing metrics or dataset statistics")
    idea: str = Field(min_length=1, max_length=80, description="short snake_case name of the idea")


def _split_code(proposal: LLMProposal) -> tuple[dict[str, Any], dict[str, str]]:
    """Move code given as ``changes['custom_code.<hook>']`` or ``changes['custom_code']`` to the code map."""
    changes, code = {}, dict(proposal.custom_code)
    for key, value in proposal.changes.items():
        if key == "custom_code" and isinstance(value, dict):
            code.update({str(k): str(v) for k, v in value.items()})
        elif key.startswith("custom_code."):
            code[key.split(".", 1)[1]] = str(value)
        else:
            changes[key] = value
    return changes, code


def _locked(key: str) -> bool:
    return any(key == lock or key.startswith(lock + ".") for lock in LOCKED_FIELDS)


def to_patch(proposal: LLMProposal, base: Recipe) -> RecipePatch:
    """Turn a proposal into a RecipePatch against ``base``; raise RecipeError with a readable reason."""
    changes, code = _split_code(proposal)
    locked = sorted(k for k in changes if _locked(k))
    if locked:
        raise RecipeError(f"the fields {locked} may not be changed (locked: {', '.join(LOCKED_FIELDS)})",
                          fix="change training, data, model, loss, augmentation or debiasing fields instead")
    problems = []
    for hook, source in code.items():
        if source.strip():
            problems += [f"custom_code['{hook}']: {p}" for p in check_code(source, hook)]
        elif hook not in HOOKS:
            problems.append(f"custom_code['{hook}']: unknown hook; known: {', '.join(sorted(HOOKS))}")
    if problems:
        raise RecipeError("hook code was rejected: " + "; ".join(problems),
                          fix="rewrite the code within the hook rules")
    if code:
        merged = {**base.custom_code, **code}
        changes["custom_code"] = {k: v for k, v in merged.items() if v.strip()}
    patch = RecipePatch(changes=changes, rationale=proposal.rationale.strip(), idea=proposal.idea.strip())
    new = apply_patch(base, patch)  # unknown fields / bad values raise RecipeError
    if new.model_dump(exclude={"reasons"}) == base.model_dump(exclude={"reasons"}):
        raise RecipeError("the proposal changes nothing in the recipe", fix="propose an actual change")
    return patch


def proposal_problem(proposal: LLMProposal, base: Recipe,
                     tried_ideas: set[str] | frozenset[str] = frozenset()) -> str | None:
    """The reason a proposal is rejected (fed back to the model), or None when it is acceptable."""
    if proposal.idea.strip() in tried_ideas:
        return (f"the idea '{proposal.idea}' was already tried (tried: {', '.join(sorted(tried_ideas))}); "
                "propose a different idea")
    try:
        to_patch(proposal, base)
    except RecipeError as exc:
        return exc.message
    return None


def context_payload(ctx: RefineContext, redactor: Redactor) -> dict[str, Any]:
    """The privacy-safe view of a RefineContext."""
    payload = privacy_payload(spec=ctx.spec, fingerprint=ctx.fingerprint, recipe=ctx.current,
                              history=ctx.history, best=ctx.best, annotations=ctx.annotations,
                              tried_ideas=ctx.tried_ideas, redactor=redactor)
    remaining = getattr(ctx, "remaining_s", None)
    if remaining is not None:
        payload["remaining_budget_s"] = round(float(remaining), 1)
    return payload


def propose_patch(client: LLMClient, ctx: RefineContext, redactor: Redactor) -> RecipePatch:
    """Ask for the next idea as a patch of ``ctx.current``. Raises LLMUnavailable (and subclasses)."""
    messages = propose_messages(context_payload(ctx, redactor), Recipe, LLMProposal)
    tried = set(ctx.tried_ideas)
    proposal = client.complete_json("propose", messages, LLMProposal,
                                    check=lambda p: proposal_problem(p, ctx.current, tried))
    return to_patch(proposal, ctx.current)


def repair_patch(client: LLMClient, ctx: RefineContext, iteration: Iteration, traceback: str,
                 redactor: Redactor) -> RecipePatch:
    """Ask for a fix of ``iteration`` (the patch applies to ``iteration.recipe``; the idea is kept)."""
    base = iteration.recipe
    payload = context_payload(ctx, redactor)
    payload["current_recipe"] = privacy_payload(recipe=base, redactor=redactor)["current_recipe"]
    payload["failed_iteration"] = privacy_payload(history=[iteration], redactor=redactor)["history"][0]
    messages = repair_messages(payload, redactor(trim_traceback(traceback)), dict(base.custom_code),
                               LLMProposal)
    proposal = client.complete_json("repair", messages, LLMProposal,
                                    check=lambda p: proposal_problem(p, base))
    patch = to_patch(proposal, base)
    return patch.model_copy(update={"idea": iteration.idea or patch.idea})
