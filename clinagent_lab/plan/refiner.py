"""Refiners propose the next Recipe as a validated patch with a rationale.

:class:`RuleRefiner` is the deterministic offline planner: an ordered registry of rules, each looking at the
spec, the fingerprint, the history and the clinician's annotations, and proposing one idea not tried yet.
An LLM refiner (``clinagent_lab.llm``) implements the same protocol and falls back to this one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

from ..data.base import DatasetFingerprint
from ..data.counterfactual import has_masks
from ..models.mitigations import MITIGATION_ORDER, MITIGATIONS
from ..recipe import Recipe, RecipePatch
from ..records import Annotation, Iteration
from ..registry import Registry
from ..spec import TaskSpec
from ..tasks import get_backend
from .initializer import median_side

__all__ = ["RefineContext", "Refiner", "RuleRefiner", "RULES", "rule", "applicable_rules", "DEPENDENCE_THRESHOLD",
           "EXCESS_FPR_THRESHOLD", "confounder_relies"]

#: a mitigated confounder counts as relied upon when the within-label correlation of the score with it exceeds
#: this, with a permutation p-value below 0.05, or when the excess FPR exceeds EXCESS_FPR_THRESHOLD
DEPENDENCE_THRESHOLD = 0.1
EXCESS_FPR_THRESHOLD = 0.05


@dataclass
class RefineContext:
    spec: TaskSpec
    fingerprint: DatasetFingerprint
    history: list[Iteration]
    best: Iteration | None
    current: Recipe
    annotations: list[Annotation] = field(default_factory=list)
    tried_ideas: set[str] = field(default_factory=set)
    remaining_s: float | None = None

    @property
    def last(self) -> Iteration | None:
        return self.history[-1] if self.history else None

    def pending_annotations(self) -> list[tuple[int, Annotation]]:
        return [(i, a) for i, a in enumerate(self.annotations) if a.applied_in is None and a.kind != "note"]


class Refiner(Protocol):
    name: str

    def propose(self, ctx: RefineContext) -> RecipePatch | None: ...

    def repair(self, ctx: RefineContext, iteration: Iteration, traceback: str) -> RecipePatch | None: ...


RuleFn = Callable[[RefineContext], RecipePatch | None]
RULES: Registry[tuple[int, RuleFn]] = Registry("refiner rule")
#: rules that apply only to the task types whose backend lists them (``TaskBackend.refiner_rules``)
TASK_SPECIFIC: set[str] = set()


def rule(name: str, order: int, *, task_specific: bool = False) -> Callable[[RuleFn], RuleFn]:
    def wrap(fn: RuleFn) -> RuleFn:
        RULES.register(name, (order, fn))
        if task_specific:
            TASK_SPECIFIC.add(name)
        return fn

    return wrap


def applicable_rules(task_type: str) -> list[tuple[str, RuleFn]]:
    """The rules that may propose for ``task_type``, in order: every general rule and the task's own."""
    own = set(get_backend(task_type).refiner_rules)
    return [(name, fn) for name, (_, fn) in sorted(RULES.items(), key=lambda kv: (kv[1][0], kv[0]))
            if name not in TASK_SPECIFIC or name in own]


def _patch(idea: str, rationale: str, **changes: Any) -> RecipePatch:
    return RecipePatch(changes={k.replace("__", "."): v for k, v in changes.items()}, rationale=rationale,
                       idea=idea)


def _metric(it: Iteration | None, key: str) -> float | None:
    if it is None:
        return None
    value = it.val_metrics.get(key)
    return float(value) if isinstance(value, (int, float)) else None


def _p(p: float | None) -> str:
    return "p not computed" if p is None else f"permutation p={p:.3f}"


def confounder_relies(metrics: dict[str, Any], name: str) -> tuple[bool, str]:
    """Whether validation metrics show reliance on confounder ``name``; with a one-line reason."""
    conf = (metrics.get("confounders") or {}).get(name) or {}
    dep = conf.get("dependence") or {}
    p = (conf.get("dependence_p") or {}).get("partial_correlation")
    corr = dep.get("partial_correlation")
    excess = (conf.get("reliance") or {}).get("excess_fpr")
    significant = p is None or p < 0.05  # permutation test of the within-label dependence
    if corr is not None and abs(corr) > DEPENDENCE_THRESHOLD and significant:
        return True, f"the score depends on {name} within each label (partial correlation {corr:.2f}, {_p(p)})"
    if excess is not None and excess > EXCESS_FPR_THRESHOLD and significant and corr is not None and corr > 0:
        return True, (f"negatives with {name} are flagged more often (excess FPR {excess:.2f}) and the score "
                      f"rises with {name} within each label ({_p(p)})")
    return False, f"no measurable reliance on {name}"


# ----------------------------------------------------------------------------------------------------------
# rules, in the order they are considered
# ----------------------------------------------------------------------------------------------------------


@rule("recover_from_failure", order=0)
def _recover(ctx: RefineContext) -> RecipePatch | None:
    last = ctx.last
    if last is None or last.status not in ("timeout", "crash"):
        return None
    r = ctx.current
    if last.status == "timeout" and not last.curve:
        return _first_epoch_unfinished(ctx, last.index)
    if last.status == "timeout" and "shorter_run" not in ctx.tried_ideas:
        epochs = max(1, r.training.max_epochs // 2)
        return _patch("shorter_run", f"iteration {last.index} ran out of time: halve the epochs to {epochs} "
                      f"and use a smaller input", training__max_epochs=epochs,
                      data__image_size=max(16, r.data.image_size // 2) if r.data.image_size > 32
                      else r.data.image_size)
    evalue = str((last.error or {}).get("evalue", ""))
    if "memory" in evalue.lower() and "smaller_batch" not in ctx.tried_ideas:
        return _patch("smaller_batch", f"iteration {last.index} ran out of memory: halve the batch size",
                      data__batch_size=max(1, r.data.batch_size // 2))
    return None


def _first_epoch_unfinished(ctx: RefineContext, index: int) -> RecipePatch:
    """A timeout before any epoch ended: less work per epoch (a seeded subsample, smaller inputs, the image
    cache), one step further each time, so the same recipe never runs again."""
    r = ctx.current
    step = 1 + sum(1 for idea in ctx.tried_ideas if idea.startswith("first_epoch_fit"))
    n_train = sum((ctx.fingerprint.split_counts.get("train") or {}).values()) or 1024
    subsample = max(64, min(r.data.max_train_samples or n_train, n_train) // 4)
    size = max(16, r.data.image_size // 2) if r.data.image_size > 32 else r.data.image_size
    return _patch(f"first_epoch_fit_{step}",
                  f"iteration {index} ran out of time before its first epoch ended (preparing or reading "
                  f"{n_train} training images, or an epoch too long for the budget): train on a seeded subsample "
                  f"of {subsample} images at {size} px with the preprocessed image cache on; to train on all "
                  f"images, give each iteration more time (--iteration-minutes)",
                  data__max_train_samples=subsample, data__image_size=size, data__cache_images=True)


@rule("clinician_annotations", order=1)
def _annotations(ctx: RefineContext) -> RecipePatch | None:
    pending = ctx.pending_annotations()
    if not pending:
        return None
    changes: dict[str, Any] = {}
    notes: list[str] = []
    r = ctx.current
    for _, a in pending:
        if a.kind == "operating_point":
            cls = a.value.get("class")
            if isinstance(cls, str) and cls in r.classes and r.classes.index(cls) != r.evaluation.positive_class:
                changes["evaluation.positive_class"] = r.classes.index(cls)
                notes.append(f"the operating point is set on class {cls}")
            if "sensitivity" in a.value:
                changes["evaluation.operating_point"] = "at_sensitivity"
                changes["evaluation.operating_value"] = float(a.value["sensitivity"])
                notes.append(f"operate at ≥{float(a.value['sensitivity']):.0%} sensitivity as annotated")
            elif "specificity" in a.value:
                changes["evaluation.operating_point"] = "at_specificity"
                changes["evaluation.operating_value"] = float(a.value["specificity"])
                notes.append(f"operate at ≥{float(a.value['specificity']):.0%} specificity as annotated")
            elif "threshold" in a.value:
                changes["evaluation.operating_point"] = "fixed"
                changes["evaluation.operating_value"] = float(a.value["threshold"])
                notes.append(f"use the annotated threshold {float(a.value['threshold']):.3f}")
        elif a.kind == "class_priority":
            cls, weight = str(a.value.get("class")), float(a.value.get("weight", 2.0))
            if cls in r.classes:
                weights = list(changes.get("loss.class_weights") or r.loss.class_weights or [1.0] * len(r.classes))
                weights[r.classes.index(cls)] *= weight
                changes["loss.class_weights"] = [round(w, 4) for w in weights]
                changes["loss.name"] = "weighted_ce"
                notes.append(f"weight class {cls} ×{weight:g} in the loss as annotated")
        elif a.kind == "group_fpr_bound":
            conf = str(a.value.get("confounder", ""))
            c = ctx.spec.confounder(conf)
            column = (c.column if c else None) or conf
            if r.debias.method == "none":
                changes.update({"data.sampler": "group_balanced", "debias.method": "group_balanced",
                                "debias.confounder": conf, "debias.column": column})
            notes.append(f"false positives in {conf}={a.value.get('group')} must stay ≤ "
                         f"{float(a.value.get('max_fpr', 0.1)):.0%}: balance label x {conf} groups; the bound "
                         f"becomes a keep/discard constraint")
    if not changes:
        return None  # nothing to change in the recipe (notes only, or already in place): other rules go on
    return RecipePatch(changes=changes, rationale="Clinician annotation: " + "; ".join(notes), idea="annotations")


@rule("mitigate_confounder", order=2)
def _mitigate(ctx: RefineContext) -> RecipePatch | None:
    reference = ctx.best or ctx.last
    if reference is None:
        return None
    for conf in ctx.spec.mitigated_confounders():
        relies, why = confounder_relies(reference.val_metrics, conf.name)
        if not relies and ctx.current.debias.method != "none":
            continue
        if not relies:
            continue
        train_counts = list((ctx.fingerprint.split_counts.get("train") or {}).values())
        smallest = min(train_counts) if train_counts else 0
        for name in MITIGATION_ORDER:
            idea = f"mitigate:{conf.name}:{name}"
            if idea in ctx.tried_ideas or ctx.current.debias.method == name:
                continue
            mitigation = MITIGATIONS.get(name)
            if smallest < mitigation.min_train_per_class:
                continue  # too few training images for this method (e.g. a held-out refit)
            if mitigation.needs_location and not has_masks(ctx.fingerprint.root, conf.column):
                continue  # the data do not record where the artefact is
            changes = mitigation.changes(ctx.current, conf.name, conf.column)
            changes.setdefault("debias.confounder", conf.name)
            tried = [i.split(":")[-1] for i in ctx.tried_ideas if i.startswith(f"mitigate:{conf.name}:")]
            extra = f" ({', '.join(tried)} did not remove it)" if tried else ""
            return RecipePatch(changes=changes, idea=idea, rationale=(
                f"{why}. Mitigation: {mitigation.description.rstrip('.')}{extra}. Selection uses the group-balanced "
                f"validation AUROC and requires less reliance than the baseline, so the shortcut cannot win."))
    return None


@rule("target_class_weight", order=3, task_specific=True)
def _target_weight(ctx: RefineContext) -> RecipePatch | None:
    r, best = ctx.current, ctx.best
    if best is None or "target_weight" in ctx.tried_ideas:
        return None
    pos = r.evaluation.positive_class
    if pos is None or r.evaluation.operating_point not in ("at_specificity", "at_sensitivity"):
        return None
    sens = _metric(best, "sensitivity")
    if sens is None or sens >= 0.9:
        return None
    weights = list(r.loss.class_weights or [1.0] * r.num_classes)
    weights[pos] *= 2.0
    return _patch("target_weight", f"sensitivity for {r.classes[pos]} at the operating point is {sens:.2f}: "
                  f"double its weight in the loss", loss__name="weighted_ce",
                  loss__class_weights=[round(w, 4) for w in weights])


@rule("rebalance_classes", order=4, task_specific=True)
def _rebalance(ctx: RefineContext) -> RecipePatch | None:
    r = ctx.current
    if ctx.fingerprint.imbalance_ratio <= 1.5:
        return None
    if r.data.sampler == "random" and "class_balanced_sampler" not in ctx.tried_ideas:
        return _patch("class_balanced_sampler", f"classes are imbalanced ({ctx.fingerprint.imbalance_ratio:.1f}:1):"
                      f" try class-balanced sampling instead of {r.loss.name}", data__sampler="class_balanced",
                      loss__name="ce", loss__class_weights=None)
    return None


def _curve(it: Iteration | None) -> list[float]:
    if it is None:
        return []
    return list(it.curve)


@rule("fight_overfitting", order=5)
def _overfit(ctx: RefineContext) -> RecipePatch | None:
    curve = _curve(ctx.best)
    r = ctx.current
    if len(curve) < 4 or "regularise" in ctx.tried_ideas:
        return None
    peak = max(range(len(curve)), key=curve.__getitem__)
    if peak >= len(curve) * 0.6 or curve[peak] - curve[-1] < 0.01:
        return None
    stronger = {"none": "light", "light": "medium", "medium": "strong", "strong": "strong"}[r.augment.preset]
    return _patch("regularise", f"validation {r.evaluation.primary_metric} peaked at epoch {peak + 1} of "
                  f"{len(curve)} and fell after: over-fitting. Stronger augmentation ({stronger}), 5x weight "
                  f"decay, early stopping", augment__preset=stronger,
                  optim__weight_decay=min(0.5, r.optim.weight_decay * 5),
                  training__early_stopping_patience=max(2, len(curve) // 4))


@rule("train_longer", order=6)
def _underfit(ctx: RefineContext) -> RecipePatch | None:
    curve = _curve(ctx.best)
    r = ctx.current
    if len(curve) < 2 or "train_longer" in ctx.tried_ideas:
        return None
    peak = max(range(len(curve)), key=curve.__getitem__)
    if peak < len(curve) - 2:
        return None
    epochs = min(200, r.training.max_epochs * 2)
    return _patch("train_longer", f"validation {r.evaluation.primary_metric} was still improving at the last "
                  f"epoch: under-fitting. Train {epochs} epochs (the time guard still applies)",
                  training__max_epochs=epochs)


@rule("higher_resolution", order=7)
def _resolution(ctx: RefineContext) -> RecipePatch | None:
    r = ctx.current
    native = median_side(ctx.fingerprint, default=0)
    if "higher_resolution" in ctx.tried_ideas or native < r.data.image_size * 1.5:
        return None
    size = min(native, r.data.image_size * 2)
    return _patch("higher_resolution", f"images are {native} px but trained at {r.data.image_size} px: try "
                  f"{size} px (fewer epochs fit, so the epoch count is kept and the time guard applies)",
                  data__image_size=size, data__batch_size=max(8, r.data.batch_size // 2))


@rule("wider_network", order=8)
def _wider(ctx: RefineContext) -> RecipePatch | None:
    r = ctx.current
    if r.model.architecture != "small_cnn" or "wider_network" in ctx.tried_ideas or r.model.width >= 2:
        return None
    return _patch("wider_network", "try a wider network (2x channels) for more capacity", model__width=2.0)


@rule("label_smoothing", order=9, task_specific=True)
def _smoothing(ctx: RefineContext) -> RecipePatch | None:
    r = ctx.current
    if "label_smoothing" in ctx.tried_ideas or r.loss.label_smoothing > 0:
        return None
    return _patch("label_smoothing", "label smoothing 0.1 often improves ranking and calibration on small "
                  "medical datasets", loss__label_smoothing=0.1)


@rule("pseudo_labels", order=2, task_specific=True)
def _pseudo(ctx: RefineContext) -> RecipePatch | None:
    r = ctx.current
    if r.supervision.kind != "mixed" or r.supervision.pseudo_label:
        return None
    if "pseudo_labels" in ctx.tried_ideas:
        return None
    return _patch("pseudo_labels", f"only {(r.supervision.box_fraction or 0):.0%} of images have boxes: train a "
                  f"teacher on them, pseudo-label the image-level positives, train a student on all",
                  supervision__pseudo_label=True)


class RuleRefiner:
    """Deterministic offline planner: the first applicable rule with an untried idea wins."""

    name = "offline"

    def propose(self, ctx: RefineContext) -> RecipePatch | None:
        for _, fn in applicable_rules(ctx.current.task_type):
            patch = fn(ctx)
            if patch is not None and patch.changes and (patch.idea not in ctx.tried_ideas
                                                         or patch.idea == "annotations"):
                return patch
        return None

    def repair(self, ctx: RefineContext, iteration: Iteration, traceback: str) -> RecipePatch | None:
        """Offline, custom code is not repaired: drop it and go on with the recipe without it."""
        if not ctx.current.custom_code:
            return None
        return RecipePatch(changes={"custom_code": {}}, idea="drop_custom_code",
                           rationale=f"custom code failed in iteration {iteration.index}; continue without it")
