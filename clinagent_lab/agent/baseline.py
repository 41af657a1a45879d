"""The first proposal of a session: the initializer's recipe for this data, this machine and the user's fixed
fields."""

from __future__ import annotations

from ..plan.hardware import check_devices, detect_hardware, measure_throughput
from ..plan.initializer import initialize_recipe
from ..recipe import Recipe, apply_patch, recipe_diff
from ..records import Proposal, Session
from ..tasks import get_backend

__all__ = ["baseline_recipe", "baseline_proposal"]


def baseline_recipe(session: Session) -> Recipe:
    """The initializer's recipe on this machine (its measured CPU speed, or its GPU), with the session's adapter
    options and the fields the user fixed (``recipe_overrides``)."""
    fixed = session.recipe_overrides or {}
    hardware = detect_hardware(fixed.get("training.accelerator", "auto"), int(fixed.get("training.devices", 1)))
    recipe = initialize_recipe(session.spec, session.fingerprint, seed=session.seed, hardware=hardware,
                               pretrained=fixed.get("model.pretrained", "auto"))
    if not hardware.gpu and get_backend(recipe.task_type).plans_epochs:  # this CPU's speed, not a table's
        rate = measure_throughput(recipe.model, recipe.num_classes, recipe.data.image_size,
                                  batch=recipe.data.batch_size)
        recipe = initialize_recipe(session.spec, session.fingerprint, seed=session.seed, hardware=hardware,
                                   pretrained=fixed.get("model.pretrained", "auto"), throughput=rate)
    if session.format_options:
        recipe = apply_patch(recipe, {"data.format_options": dict(session.format_options)})
        recipe.reasons["data.format_options"] = "adapter options given for this session"
    if session.recipe_overrides:
        chosen = recipe
        recipe = apply_patch(recipe, session.recipe_overrides)
        changed = recipe_diff(chosen, recipe)
        for key in session.recipe_overrides:  # the initializer's reason still explains a value it chose alike
            why = chosen.reasons.get(key) if key not in changed else None
            recipe.reasons[key] = f"set by the user: {why}" if why else "set by the user"
    check_devices(get_backend(recipe.task_type), recipe)
    return recipe


def baseline_proposal(session: Session) -> Proposal | None:
    """The baseline as a proposal; None once it failed twice or ran out of time (the refiner recovers)."""
    tries = sum(1 for it in session.iterations if it.idea == "baseline")
    last = session.iterations[-1] if session.iterations else None
    if tries >= 2 or (last is not None and last.status == "timeout"):
        return None  # failed twice, or out of time (the same recipe would be too): the refiner recovers
    recipe = baseline_recipe(session)
    rationale = ("Baseline: the initializer's recipe from the task spec and the data fingerprint. "
                 + " ".join(f"{k}: {v}." for k, v in list(recipe.reasons.items())[:4]))
    return Proposal(recipe=recipe, rationale=rationale, idea="baseline", proposed_by="initializer")
