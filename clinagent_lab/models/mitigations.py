"""Confounder mitigations as recipe changes, registered by name (torch-free: the planner imports this).

Each :class:`Mitigation` turns a recipe and a confounder into dotted recipe changes for
:func:`clinagent_lab.recipe.apply_patch`. Switching from one mitigation to another also undoes the
previous one's sampler or loss, so the changes can be applied to any recipe.

Example:
    >>> from clinagent_lab.recipe import Recipe, apply_patch
    >>> r = Recipe(task_type="binary_classification", classes=["benign", "malignant"])
    >>> changes = MITIGATIONS.get("groupdro").changes(r, "ruler", "has_ruler")
    >>> new = apply_patch(r, changes)
    >>> new.loss.name, new.debias.method, new.debias.column
    ('groupdro', 'groupdro', 'has_ruler')
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import RecipeError
from ..recipe import Recipe
from ..registry import Registry

__all__ = ["MITIGATIONS", "MITIGATION_ORDER", "Mitigation"]

Changes = dict[str, Any]


@dataclass(frozen=True)
class Mitigation:
    """A named debiasing method.

    Attributes:
        name: registry name, also written to ``debias.method``.
        description: one sentence for the clinician and the refiner.
        build: ``(recipe, column) -> changes`` specific to the method.
        needs_column: whether the method needs the confounder's metadata column.
        min_train_per_class: training images the smallest class needs for the method to be proposed (a
            held-out refit takes images away from small label x confounder cells, which tiny datasets
            cannot spare).
        needs_location: the method needs the artefact's location in every image that has it (masks, see
            :mod:`clinagent_lab.data.counterfactual`); proposed only when the data record it.
    """

    name: str
    description: str
    build: Callable[[Recipe, str | None], Changes]
    needs_column: bool = True
    min_train_per_class: int = 0
    needs_location: bool = False

    def changes(self, recipe: Recipe, confounder_name: str | None, column: str | None) -> Changes:
        """Dotted recipe changes that switch ``recipe`` to this mitigation for ``confounder_name``.

        Raises:
            RecipeError: the method needs a metadata column and ``column`` is empty.
        """
        if self.needs_column and not column:
            raise RecipeError(f"mitigation '{self.name}' needs the metadata column of confounder "
                              f"'{confounder_name}'", where="field 'debias.column'",
                              fix="name the metadata column that records the confounder, or choose 'none'")
        changes = _undo_others(recipe, self.name)
        changes.update({"debias.method": self.name, "debias.confounder": confounder_name,
                        "debias.column": column})
        changes.update(self.build(recipe, column))
        return changes


#: mitigations that train with the label x confounder balanced sampler
_BALANCED_SAMPLING = ("group_balanced", "balanced_adversarial", "balanced_dfr", "balanced_mmd", "balanced_mmd_dfr")
#: mitigations that refit the last layer on label x confounder balanced features (Deep Feature Reweighting)
_REFIT = ("dfr", "balanced_dfr", "balanced_mmd_dfr")
#: mitigations that show training images with the artefact added or removed where its location is known
_COUNTERFACTUAL = ("counterfactual",)
#: probability of the counterfactual swap: 0.5 leaves the artefact in half of every class's images
COUNTERFACTUAL_P = 0.5
#: smallest training class a held-out refit is proposed for
REFIT_MIN_TRAIN_PER_CLASS = 400


def _undo_others(recipe: Recipe, keep: str) -> Changes:
    """Reset the sampler/loss another mitigation set, unless ``keep`` is that mitigation."""
    out: Changes = {}
    if keep not in _BALANCED_SAMPLING and recipe.data.sampler == "group_balanced":
        out["data.sampler"] = "random"
    if keep != "groupdro" and recipe.loss.name == "groupdro":
        out["loss.name"] = "ce"
    if keep not in _REFIT and recipe.debias.refit_last_layer:
        out["debias.refit_last_layer"] = False
    if keep not in _COUNTERFACTUAL and recipe.debias.counterfactual > 0:
        out["debias.counterfactual"] = 0.0
    return out


#: penalty weight a mitigation switches on when the recipe's is 0 (a positive weight the user chose is kept)
DEFAULT_PENALTY_WEIGHT = 1.0


def _weight_on(recipe: Recipe, field: str) -> Changes:
    """The change that makes ``debias.<field>`` positive: none when it already is."""
    return {} if getattr(recipe.debias, field) > 0 else {f"debias.{field}": DEFAULT_PENALTY_WEIGHT}


def _none(recipe: Recipe, column: str | None) -> Changes:
    return {}


def _group_balanced(recipe: Recipe, column: str | None) -> Changes:
    return {"data.sampler": "group_balanced"}


def _gradient_reversal(recipe: Recipe, column: str | None) -> Changes:
    return _weight_on(recipe, "adversary_weight")


def _groupdro(recipe: Recipe, column: str | None) -> Changes:
    return {"loss.name": "groupdro"}


def _balanced_adversarial(recipe: Recipe, column: str | None) -> Changes:
    return {"data.sampler": "group_balanced", **_weight_on(recipe, "adversary_weight")}


def _dfr(recipe: Recipe, column: str | None) -> Changes:
    return {"debias.refit_last_layer": True}


def _counterfactual(recipe: Recipe, column: str | None) -> Changes:
    return {"debias.counterfactual": COUNTERFACTUAL_P}


def _balanced_dfr(recipe: Recipe, column: str | None) -> Changes:
    return {"data.sampler": "group_balanced", "debias.refit_last_layer": True}


def _balanced_mmd_dfr(recipe: Recipe, column: str | None) -> Changes:
    return {"data.sampler": "group_balanced", **_weight_on(recipe, "mmd_weight"), "debias.refit_last_layer": True}


def _conditional_mmd(recipe: Recipe, column: str | None) -> Changes:
    return _weight_on(recipe, "mmd_weight")


def _balanced_mmd(recipe: Recipe, column: str | None) -> Changes:
    return {"data.sampler": "group_balanced", **_weight_on(recipe, "mmd_weight")}


MITIGATIONS: Registry[Mitigation] = Registry("mitigation")
MITIGATIONS.register("none", Mitigation(
    "none", "No confounder mitigation; the confounder is only reported.", _none, needs_column=False))
MITIGATIONS.register("group_balanced", Mitigation(
    "group_balanced", "Sample training images so every label x confounder cell is seen equally often.",
    _group_balanced))
MITIGATIONS.register("gradient_reversal", Mitigation(
    "gradient_reversal", "Train an adversary to predict the confounder from the features (given the label) "
    "and reverse its gradient, so the features stop encoding the confounder.", _gradient_reversal))
MITIGATIONS.register("groupdro", Mitigation(
    "groupdro", "GroupDRO: up-weight the label x confounder cells with the highest training loss, "
    "minimising the worst cell's loss.", _groupdro))

MITIGATIONS.register("balanced_adversarial", Mitigation(
    "balanced_adversarial", "Both at once: label x confounder balanced sampling, and an adversary (given the "
    "label) whose reversed gradient removes the confounder from the features.", _balanced_adversarial))

MITIGATIONS.register("conditional_mmd", Mitigation(
    "conditional_mmd", "Penalise the difference (MMD) between the feature distributions of the confounder's "
    "groups within each label, so that, given the label, the features do not change with the confounder.",
    _conditional_mmd))
MITIGATIONS.register("balanced_mmd", Mitigation(
    "balanced_mmd", "Label x confounder balanced sampling with the within-label MMD penalty between the "
    "confounder's groups: every cell is seen equally often and the features are pushed to be the same "
    "across the confounder's groups given the label.", _balanced_mmd))
MITIGATIONS.register("dfr", Mitigation(
    "dfr", "Deep Feature Reweighting: train as usual on most images, then refit the last layer on label x "
    "confounder balanced subsets of images held out of that training (averaged over several draws), after "
    "erasing the features' linear dependence on the confounder within each label.", _dfr,
    min_train_per_class=REFIT_MIN_TRAIN_PER_CLASS))
MITIGATIONS.register("counterfactual", Mitigation(
    "counterfactual", "Counterfactual artefact augmentation: where the data record the artefact's location, "
    "show each training image, half of the time, with its artefact removed (inpainted) or, when it has "
    "none, with another image's artefact pasted at that image's location, so the artefact appears in half "
    "of every class's images and says nothing about the label.", _counterfactual, needs_location=True))
MITIGATIONS.register("balanced_dfr", Mitigation(
    "balanced_dfr", "Deep Feature Reweighting on a network trained with label x confounder balanced sampling: "
    "balanced training, then the last layer refitted on balanced subsets with the confounder's within-label "
    "linear dependence erased.", _balanced_dfr,
    min_train_per_class=REFIT_MIN_TRAIN_PER_CLASS))

MITIGATIONS.register("balanced_mmd_dfr", Mitigation(
    "balanced_mmd_dfr", "Label x confounder balanced sampling with the within-label MMD penalty between the "
    "confounder's groups, then the last layer refitted on balanced images held out of training, after "
    "erasing the features' remaining within-label linear dependence on the confounder.", _balanced_mmd_dfr,
    min_train_per_class=REFIT_MIN_TRAIN_PER_CLASS))

#: Mitigations to try, first to last. Counterfactual augmentation first where the data record the artefact's
#: location: on the drain benchmark (docs/benchmarks.md, "Shortcut mitigation") it meets the targets in every
#: training seed, where a held-out refit leaves seed-to-seed scatter. Without locations, Deep Feature
#: Reweighting: it removes the reliance where balancing alone (Idrissi et al. 2022) leaves most of it; then
#: balancing, GroupDRO, adversarial removal (least stable), the MMD penalty and the combinations. The refiner
#: skips methods whose ``min_train_per_class`` the data lack (on small datasets balancing comes first) and
#: those that need locations the data do not record.
MITIGATION_ORDER: tuple[str, ...] = ("counterfactual", "dfr", "group_balanced", "groupdro", "gradient_reversal",
                                     "balanced_adversarial", "conditional_mmd", "balanced_mmd", "balanced_dfr",
                                     "balanced_mmd_dfr")
