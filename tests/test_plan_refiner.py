"""The offline refiner: each rule fires on its trigger and not otherwise; ideas never repeat; annotations act."""

from __future__ import annotations

import numpy as np
import pytest

try:
    from plan_fixtures import *
except ImportError:  # tests collected as a package
    from tests.plan_fixtures import *

from clinagent_lab.records import Annotation
from clinagent_lab.models.mitigations import MITIGATION_ORDER, MITIGATIONS
from clinagent_lab.plan.refiner import RULES, RefineContext, RuleRefiner, applicable_rules, confounder_relies
from clinagent_lab.recipe import Recipe, apply_patch
from clinagent_lab.spec import MetricSpec, Supervision, TaskSpec

#: validation metrics of a model that does not use the drain (the evaluator's shape, numbers by hand)
NO_RELIANCE = {
    "auroc": 0.88, "sensitivity": 0.95, "specificity": 0.7, "threshold": 0.41, "primary": 0.88,
    "selection_metric": "group_balanced_auroc", "selection_value": 0.87,
    "confounders": {"chest_drain": {
        "fpr_by_group": {"0": 0.30, "1": 0.31}, "tpr_by_group": {"0": 0.94, "1": 0.95},
        "auroc_by_group": {"0": 0.87, "1": 0.88},
        "reliance": {"fpr_confounder_pos": 0.31, "fpr_confounder_neg": 0.30, "excess_fpr": 0.01,
                     "tpr_confounder_pos": 0.95, "tpr_confounder_neg": 0.94, "excess_tpr": 0.01},
        "dependence": {"partial_correlation": 0.03, "conditional_mi": 0.01, "hsic": 0.0002},
        "dependence_p": {"partial_correlation": 0.61, "conditional_mi": 0.55, "hsic": 0.7}}},
}


def applicable(c: RefineContext) -> list[str]:
    """The rules the refiner consults for the context's task type (the task backend decides)."""
    return [name for name, _ in applicable_rules(c.current.task_type)]


def rule(name: str):
    return RULES.get(name)[1]


def ctx(*, spec=None, fp=None, history=(), best=None, current=None, annotations=(), tried=(),
        **recipe_changes) -> RefineContext:
    current = current or make_recipe(**recipe_changes)
    # 1000 images per class: enough for every mitigation, the held-out refit included
    return RefineContext(spec=spec or drain_spec(), fingerprint=fp or make_fingerprint(counts=[1000, 1000]),
                         history=list(history),
                         best=best, current=current, annotations=list(annotations), tried_ideas=set(tried))


def ok(metrics=None, curve=None, **kw):
    return make_iteration(1, metrics if metrics is not None else NO_RELIANCE, curve=curve, **kw)


def test_rules_are_registered_in_order():
    order = [name for name, _ in sorted(RULES.items(), key=lambda kv: (kv[1][0], kv[0]))]
    assert order[:3] == ["recover_from_failure", "clinician_annotations", "mitigate_confounder"]
    assert order[-3:] == ["higher_resolution", "wider_network", "label_smoothing"]


# ------------------------------------------------------------------------------------------- failures


def test_timeout_gives_a_shorter_run():
    last = make_iteration(1, status="timeout", recipe=make_recipe(training__max_epochs=20, data__image_size=64),
                          curve=[0.6, 0.7])  # epochs ran, the run as a whole was too long
    patch = rule("recover_from_failure")(ctx(history=[last], current=last.recipe))
    assert patch.idea == "shorter_run"
    assert patch.changes == {"training.max_epochs": 10, "data.image_size": 32}
    assert "ran out of time" in patch.rationale
    small = make_recipe(training__max_epochs=1, data__image_size=32)
    patch = rule("recover_from_failure")(ctx(history=[make_iteration(1, status="timeout", recipe=small,
                                                                     curve=[0.6])], current=small))
    assert patch.changes == {"training.max_epochs": 1, "data.image_size": 32}  # never below 1 epoch / 16 px


def test_timeout_before_the_first_epoch_makes_each_epoch_smaller():
    fp = make_fingerprint(counts=[10000, 10000])
    last = make_iteration(1, status="timeout", recipe=make_recipe(data__image_size=64))
    first = rule("recover_from_failure")(ctx(history=[last], current=last.recipe, fp=fp))
    assert first.idea == "first_epoch_fit_1" and "before its first epoch" in first.rationale
    assert first.changes == {"data.max_train_samples": 3000, "data.image_size": 32, "data.cache_images": True}
    assert "--iteration-minutes" in first.rationale
    again = apply_patch(last.recipe, first.changes)
    second = rule("recover_from_failure")(ctx(history=[last, make_iteration(2, status="timeout", recipe=again)],
                                              current=again, fp=fp, tried=("first_epoch_fit_1",)))
    assert second.idea == "first_epoch_fit_2" and second.changes["data.max_train_samples"] == 750
    assert apply_patch(again, second.changes) != again  # never the same recipe again


def test_out_of_memory_halves_the_batch():
    last = make_iteration(1, status="crash", error={"ename": "RuntimeError",
                                                    "evalue": "CUDA out of memory. Tried to allocate 2 GiB"})
    patch = rule("recover_from_failure")(ctx(history=[last], data__batch_size=64))
    assert patch.idea == "smaller_batch" and patch.changes == {"data.batch_size": 32}


@pytest.mark.parametrize("status, error, tried", [
    ("ok", None, ()),
    ("crash", {"ename": "ValueError", "evalue": "bad value"}, ()),  # not a resource problem
    ("timeout", None, ("shorter_run",)),  # already tried
    ("crash", {"ename": "RuntimeError", "evalue": "out of memory"}, ("smaller_batch",)),
])
def test_recover_does_not_fire_otherwise(status, error, tried):
    last = make_iteration(1, NO_RELIANCE if status == "ok" else None, status=status, error=error,
                          curve=[0.6] if status == "timeout" else None)
    assert rule("recover_from_failure")(ctx(history=[last], tried=tried)) is None
    assert rule("recover_from_failure")(ctx()) is None  # no history at all


# ---------------------------------------------------------------------------------------- annotations


@pytest.mark.parametrize("value, rule_name, op_value", [
    ({"sensitivity": 0.95}, "at_sensitivity", 0.95),
    ({"specificity": 0.8}, "at_specificity", 0.8),
    ({"threshold": 0.3}, "fixed", 0.3),
])
def test_operating_point_annotation(value, rule_name, op_value):
    a = Annotation(kind="operating_point", value=value, iteration=1)
    c = ctx(history=[ok()], best=ok(), annotations=[a])
    patch = rule("clinician_annotations")(c)
    assert patch.idea == "annotations"
    assert patch.changes == {"evaluation.operating_point": rule_name, "evaluation.operating_value": op_value}
    assert patch.rationale.startswith("Clinician annotation:")
    new = apply_patch(c.current, patch)
    assert (new.evaluation.operating_point, new.evaluation.operating_value) == (rule_name, op_value)


def test_operating_point_annotation_on_another_class():
    classes = ["MEL", "NV", "BCC", "BKL"]
    current = Recipe(task_type="multiclass_classification", classes=classes,
                     evaluation={"positive_class": 0, "metric_params": {"class": "MEL"}})
    a = Annotation(kind="operating_point", value={"class": "BCC", "sensitivity": 0.9})
    patch = rule("clinician_annotations")(ctx(current=current, annotations=[a]))
    assert patch.changes == {"evaluation.positive_class": 2, "evaluation.operating_point": "at_sensitivity",
                             "evaluation.operating_value": 0.9}
    same = Annotation(kind="operating_point", value={"class": "MEL", "sensitivity": 0.9})
    assert "evaluation.positive_class" not in rule("clinician_annotations")(
        ctx(current=current, annotations=[same])).changes


def test_class_priority_annotation_weights_the_loss():
    classes = ["MEL", "NV", "BCC", "BKL"]
    current = Recipe(task_type="multiclass_classification", classes=classes)
    a = Annotation(kind="class_priority", value={"class": "MEL", "weight": 3.0})
    patch = rule("clinician_annotations")(ctx(current=current, annotations=[a]))
    assert patch.changes == {"loss.class_weights": [3.0, 1.0, 1.0, 1.0], "loss.name": "weighted_ce"}
    assert "MEL ×3" in patch.rationale
    # existing weights are multiplied, not replaced
    weighted = apply_patch(current, {"loss.class_weights": [1.0, 0.5, 2.0, 1.0]})
    patch = rule("clinician_annotations")(ctx(current=weighted, annotations=[a]))
    assert patch.changes["loss.class_weights"] == [3.0, 0.5, 2.0, 1.0]
    apply_patch(weighted, patch)


def test_group_fpr_bound_annotation_balances_groups():
    a = Annotation(kind="group_fpr_bound", value={"confounder": "chest_drain", "group": "1", "max_fpr": 0.1})
    c = ctx(spec=drain_spec(action="report", column="drain_col"), annotations=[a])
    patch = rule("clinician_annotations")(c)
    assert patch.changes == {"data.sampler": "group_balanced", "debias.method": "group_balanced",
                             "debias.confounder": "chest_drain", "debias.column": "drain_col"}
    assert "≤ 10%" in patch.rationale and "constraint" in patch.rationale
    new = apply_patch(c.current, patch)
    assert new.data.sampler == "group_balanced" and new.debias.column == "drain_col"


def test_several_annotations_make_one_patch():
    notes = [Annotation(kind="operating_point", value={"sensitivity": 0.9}),
             Annotation(kind="group_fpr_bound", value={"confounder": "chest_drain", "group": "1", "max_fpr": 0.2}),
             Annotation(kind="note", text="the drains are obvious")]
    patch = rule("clinician_annotations")(ctx(annotations=notes))
    assert patch.changes["evaluation.operating_point"] == "at_sensitivity"
    assert patch.changes["debias.method"] == "group_balanced"


@pytest.mark.parametrize("annotations", [
    [],
    [Annotation(kind="note", text="interesting")],  # free text only
    [Annotation(kind="operating_point", value={"sensitivity": 0.9}, applied_in=2)],  # already acted on
])
def test_annotations_rule_does_not_fire_otherwise(annotations):
    assert rule("clinician_annotations")(ctx(annotations=annotations)) is None


# ------------------------------------------------------------------------------------ confounder reliance


def test_reliance_detected_on_real_metrics():
    relies, why = confounder_relies(evaluate_scores("shortcut"), "chest_drain")
    assert relies and "partial correlation" in why
    assert confounder_relies(NO_RELIANCE, "chest_drain") == (False, "no measurable reliance on chest_drain")
    assert not confounder_relies(NO_RELIANCE, "ruler")[0]  # not measured at all


def test_excess_fpr_needs_a_significant_dependence():
    """A few extra false positives in a small group are noise unless the score depends on the confounder."""
    noise = {"confounders": {"chest_drain": {"dependence": {"partial_correlation": 0.02},
                                             "dependence_p": {"partial_correlation": 0.7},
                                             "reliance": {"excess_fpr": 0.2}}}}
    assert not confounder_relies(noise, "chest_drain")[0]
    real = {"confounders": {"chest_drain": {"dependence": {"partial_correlation": 0.08},
                                            "dependence_p": {"partial_correlation": 0.01},
                                            "reliance": {"excess_fpr": 0.2}}}}
    relies, why = confounder_relies(real, "chest_drain")
    assert relies and "excess FPR 0.20" in why


def test_strong_but_insignificant_correlation_is_not_reliance():
    metrics = {"confounders": {"chest_drain": {"dependence": {"partial_correlation": 0.4},
                                               "dependence_p": {"partial_correlation": 0.3},
                                               "reliance": {"excess_fpr": 0.0}}}}
    assert not confounder_relies(metrics, "chest_drain")[0]


def _without_location() -> list[str]:
    """The mitigation order for data that do not record where the artefact is (no masks)."""
    return [n for n in MITIGATION_ORDER if not MITIGATIONS.get(n).needs_location]


def test_known_artefact_location_gets_counterfactual_augmentation_first(tmp_path):
    from clinagent_lab.data.counterfactual import mask_path, write_mask

    base = ok(evaluate_scores("shortcut"))
    assert rule("mitigate_confounder")(ctx(history=[base], best=base)).idea == "mitigate:chest_drain:dfr"
    mask = np.zeros((8, 8), dtype=bool)
    mask[2, 2:6] = True
    write_mask(mask_path(tmp_path, "chest_drain", tmp_path / "images" / "a.png"), mask)
    fp = make_fingerprint(counts=[1000, 1000]).model_copy(update={"root": str(tmp_path)})
    patch = rule("mitigate_confounder")(ctx(fp=fp, history=[base], best=base))
    assert patch.idea == f"mitigate:chest_drain:{MITIGATION_ORDER[0]}" == "mitigate:chest_drain:counterfactual"
    assert patch.changes["debias.counterfactual"] == 0.5 and "removed (inpainted)" in patch.rationale
    new = apply_patch(base.recipe, patch)
    nxt = rule("mitigate_confounder")(ctx(fp=fp, history=[base], best=base, current=new, tried={patch.idea}))
    assert nxt.idea == "mitigate:chest_drain:dfr"
    assert apply_patch(new, nxt).debias.counterfactual == 0.0  # the augmentation is undone


def test_reliance_gets_the_first_mitigation_then_the_next():
    order = _without_location()
    base = ok(evaluate_scores("shortcut"))
    patch = rule("mitigate_confounder")(ctx(history=[base], best=base))
    assert patch.idea == f"mitigate:chest_drain:{order[0]}" == "mitigate:chest_drain:dfr"
    assert patch.changes["debias.refit_last_layer"] is True
    assert patch.changes["debias.method"] == "dfr" and patch.changes["debias.column"] == "chest_drain"
    assert "refit the last layer" in patch.rationale
    assert "partial correlation" in patch.rationale and "group-balanced" in patch.rationale

    tried = {patch.idea}
    second = rule("mitigate_confounder")(ctx(history=[base], best=base, tried=tried))
    assert second.idea == f"mitigate:chest_drain:{order[1]}"
    assert "dfr did not remove it" in second.rationale
    new = apply_patch(base.recipe, second)
    assert new.debias.method == order[1] and new.debias.confounder == "chest_drain"

    tried |= {second.idea}
    for name in order[2:]:  # then each remaining mitigation in turn, until none is left
        following = rule("mitigate_confounder")(ctx(history=[base], best=base, tried=tried))
        assert following.idea == f"mitigate:chest_drain:{name}"
        apply_patch(base.recipe, following)
        tried |= {following.idea}
    assert rule("mitigate_confounder")(ctx(history=[base], best=base, tried=tried)) is None


def test_small_data_gets_balancing_before_the_held_out_refit():
    base = ok(evaluate_scores("shortcut"))
    small = make_fingerprint(counts=[300, 300])  # 180 training images per class
    patch = rule("mitigate_confounder")(ctx(fp=small, history=[base], best=base))
    assert patch.idea == "mitigate:chest_drain:group_balanced"
    large = rule("mitigate_confounder")(ctx(fp=make_fingerprint(counts=[700, 700]), history=[base], best=base))
    assert large.idea == "mitigate:chest_drain:dfr"


def test_kept_mitigation_that_still_relies_moves_to_the_next_one():
    still = evaluate_scores("partial")
    current = make_recipe(data__sampler="group_balanced", debias__method="group_balanced",
                          debias__confounder="chest_drain", debias__column="chest_drain")
    best = ok(still, recipe=current)
    patch = rule("mitigate_confounder")(ctx(history=[best], best=best, current=current))
    assert patch.idea == "mitigate:chest_drain:dfr"
    new = apply_patch(current, patch)
    assert new.data.sampler == "random" and new.debias.refit_last_layer  # the previous sampler is undone
    again = rule("mitigate_confounder")(ctx(history=[best], best=best, current=new,
                                              tried={patch.idea, "mitigate:chest_drain:group_balanced"}))
    assert again.idea == "mitigate:chest_drain:groupdro"
    dro = apply_patch(new, again)
    assert (dro.loss.name, dro.debias.refit_last_layer) == ("groupdro", False)  # the refit is undone too


@pytest.mark.parametrize("spec, metrics", [
    (drain_spec(), NO_RELIANCE),                                  # no reliance measured
    (drain_spec(action="report"), "shortcut"),                    # reported, not mitigated
    (drain_spec(column=None), "shortcut"),                        # no column in the data
])
def test_mitigation_does_not_fire_otherwise(spec, metrics):
    best = ok(evaluate_scores(metrics) if isinstance(metrics, str) else metrics)
    assert rule("mitigate_confounder")(ctx(spec=spec, history=[best], best=best)) is None
    assert rule("mitigate_confounder")(ctx(spec=spec)) is None  # nothing measured yet


# -------------------------------------------------------------------------------------- training curves


OVERFIT = [0.70, 0.80, 0.85, 0.82, 0.78, 0.75, 0.73, 0.72]
RISING = [0.60, 0.66, 0.71, 0.75, 0.78]
PLATEAU = [0.60, 0.80, 0.799, 0.80, 0.797]


def test_overfitting_curve_regularises():
    c = ctx(best=ok(curve=OVERFIT), augment__preset="light", optim__weight_decay=1e-4)
    patch = rule("fight_overfitting")(c)
    assert patch.idea == "regularise"
    assert patch.changes["augment.preset"] == "medium"
    assert patch.changes["optim.weight_decay"] == pytest.approx(5e-4)
    assert patch.changes["training.early_stopping_patience"] == 2
    assert "peaked at epoch 3 of 8" in patch.rationale
    apply_patch(c.current, patch)


@pytest.mark.parametrize("curve, tried", [(RISING, ()), (PLATEAU, ()), (OVERFIT[:3], ()), (OVERFIT, ("regularise",))])
def test_regularise_does_not_fire_otherwise(curve, tried):
    assert rule("fight_overfitting")(ctx(best=ok(curve=curve), tried=tried)) is None


def test_rising_curve_trains_longer():
    patch = rule("train_longer")(ctx(best=ok(curve=RISING), training__max_epochs=12))
    assert patch.idea == "train_longer" and patch.changes == {"training.max_epochs": 24}
    assert "still improving" in patch.rationale
    capped = rule("train_longer")(ctx(best=ok(curve=RISING), training__max_epochs=150))
    assert capped.changes == {"training.max_epochs": 200}


@pytest.mark.parametrize("curve, tried", [(OVERFIT, ()), (PLATEAU, ()), ([0.7], ()), (RISING, ("train_longer",))])
def test_train_longer_does_not_fire_otherwise(curve, tried):
    assert rule("train_longer")(ctx(best=ok(curve=curve), tried=tried)) is None


# ---------------------------------------------------------------------------------------- other rules


def test_target_class_weight():
    low = dict(NO_RELIANCE, sensitivity=0.7)
    c = ctx(best=ok(low), evaluation__operating_point="at_specificity", evaluation__operating_value=0.8)
    patch = rule("target_class_weight")(c)
    assert patch.changes == {"loss.name": "weighted_ce", "loss.class_weights": [1.0, 2.0]}
    assert "pneumothorax" in patch.rationale and "0.70" in patch.rationale
    assert rule("target_class_weight")(ctx(best=ok(NO_RELIANCE), evaluation__operating_point="at_specificity",
                                           evaluation__operating_value=0.8)) is None  # sensitivity 0.95
    assert rule("target_class_weight")(ctx(best=ok(low))) is None  # Youden: no fixed operating point
    assert rule("target_class_weight")(ctx(best=ok(low), tried={"target_weight"},
                                           evaluation__operating_point="at_sensitivity",
                                           evaluation__operating_value=0.9)) is None


def test_rebalance_classes():
    imbalanced = make_fingerprint(counts=[200, 50])
    patch = rule("rebalance_classes")(ctx(fp=imbalanced, loss__name="weighted_ce"))
    assert patch.changes == {"data.sampler": "class_balanced", "loss.name": "ce", "loss.class_weights": None}
    assert "4.0:1" in patch.rationale
    assert rule("rebalance_classes")(ctx(fp=make_fingerprint(counts=[60, 50]))) is None
    assert rule("rebalance_classes")(ctx(fp=imbalanced, data__sampler="class_balanced")) is None
    assert rule("rebalance_classes")(ctx(fp=imbalanced, tried={"class_balanced_sampler"})) is None


def test_higher_resolution():
    patch = rule("higher_resolution")(ctx(fp=make_fingerprint(side=128), data__image_size=32,
                                          data__batch_size=64))
    assert patch.changes == {"data.image_size": 64, "data.batch_size": 32}
    patch = rule("higher_resolution")(ctx(fp=make_fingerprint(side=56), data__image_size=32))
    assert patch.changes["data.image_size"] == 56  # never beyond the native size
    assert rule("higher_resolution")(ctx(fp=make_fingerprint(side=40), data__image_size=32)) is None
    assert rule("higher_resolution")(ctx(fp=make_fingerprint(side=128), tried={"higher_resolution"})) is None


def test_wider_network_and_label_smoothing():
    assert rule("wider_network")(ctx()).changes == {"model.width": 2.0}
    assert rule("wider_network")(ctx(model__width=2.0)) is None
    assert rule("wider_network")(ctx(model__architecture="resnet18")) is None
    assert rule("label_smoothing")(ctx()).changes == {"loss.label_smoothing": 0.1}
    assert rule("label_smoothing")(ctx(loss__label_smoothing=0.05)) is None


def _detection(kind: str = "mixed") -> tuple[TaskSpec, Recipe]:
    spec = TaskSpec(task_type="detection", modality="musculoskeletal_xray", target_classes=["fracture"],
                    primary_metric=MetricSpec(name="map50"), supervision=Supervision(kind=kind, box_fraction=0.05))
    recipe = Recipe(task_type="detection", classes=["no_fracture", "fracture"],
                    supervision={"kind": kind, "box_fraction": 0.05})
    return spec, recipe


def test_pseudo_labels_for_mixed_detection_only():
    spec, recipe = _detection()
    fp = make_fingerprint(["no_fracture", "fracture"], task_type="detection", box_fraction=0.05)
    patch = rule("pseudo_labels")(ctx(spec=spec, fp=fp, current=recipe))
    assert patch.changes == {"supervision.pseudo_label": True} and "5%" in patch.rationale
    full_spec, full = _detection("full")
    assert rule("pseudo_labels")(ctx(spec=full_spec, fp=fp, current=full)) is None
    assert rule("pseudo_labels")(ctx(spec=spec, fp=fp, current=recipe, tried={"pseudo_labels"})) is None
    assert "pseudo_labels" not in applicable(ctx())  # classification


def test_detection_skips_classification_only_rules():
    spec, recipe = _detection()
    fp = make_fingerprint(["no_fracture", "fracture"], counts=[300, 30], task_type="detection")
    c = ctx(spec=spec, fp=fp, current=recipe, best=ok(dict(NO_RELIANCE, sensitivity=0.5)))
    for name in ("target_class_weight", "rebalance_classes", "label_smoothing"):
        assert name not in applicable(c)
    assert RuleRefiner().propose(c).idea not in ("target_weight", "class_balanced_sampler", "label_smoothing")


# ---------------------------------------------------------------------------------------- the refiner


def test_first_applicable_rule_wins():
    last = make_iteration(1, status="timeout", curve=[0.6])
    note = Annotation(kind="operating_point", value={"sensitivity": 0.9})
    assert RuleRefiner().propose(ctx(history=[last], annotations=[note])).idea == "shorter_run"
    assert RuleRefiner().propose(ctx(history=[ok()], best=ok(), annotations=[note])).idea == "annotations"
    base = ok(evaluate_scores("shortcut"), curve=RISING)
    assert RuleRefiner().propose(ctx(history=[base], best=base)).idea == "mitigate:chest_drain:dfr"


def test_ideas_never_repeat_and_run_out():
    """Propose, apply, remember the idea, repeat: every idea is new and the refiner finally returns None."""
    refiner = RuleRefiner()
    base = ok(dict(evaluate_scores("shortcut"), sensitivity=0.6), curve=RISING)
    c = ctx(fp=make_fingerprint(counts=[200, 50], side=96), history=[base], best=base,
            evaluation__operating_point="at_sensitivity", evaluation__operating_value=0.9)
    ideas: list[str] = []
    for _ in range(30):
        patch = refiner.propose(c)
        if patch is None:
            break
        assert patch.idea not in c.tried_ideas and patch.changes
        ideas.append(patch.idea)
        c.tried_ideas.add(patch.idea)
        c.current = apply_patch(c.current, patch)  # every proposal is a valid recipe
    else:
        pytest.fail(f"the refiner never ran out of ideas: {ideas}")
    assert len(ideas) == len(set(ideas))
    # 30 training images in the smallest class: the held-out refits are not proposed
    applicable = [n for n in _without_location() if MITIGATIONS.get(n).min_train_per_class <= 30]
    assert "dfr" not in applicable and "group_balanced" in applicable
    assert ideas[:len(applicable)] == [f"mitigate:chest_drain:{name}" for name in applicable]
    # the last mitigation leaves a group-balanced sampler in place, so class-balanced sampling is not proposed
    assert "class_balanced_sampler" not in ideas and c.current.data.sampler == "group_balanced"
    assert {"target_weight", "train_longer", "higher_resolution", "wider_network", "label_smoothing"} <= set(ideas)
    assert refiner.propose(c) is None


def test_nothing_left_returns_none():
    tried = {"wider_network", "label_smoothing", "higher_resolution", "train_longer", "regularise"}
    assert RuleRefiner().propose(ctx(history=[ok()], best=ok(), tried=tried)) is None


def test_repair_drops_custom_code_offline():
    broken = make_recipe()
    broken = broken.model_copy(update={"custom_code": {"loss": "def custom_loss(l, y):\n    return 1 / 0"}})
    failed = make_iteration(2, status="crash", recipe=broken, error={"ename": "ZeroDivisionError",
                                                                    "evalue": "division by zero"})
    c = ctx(history=[failed], current=broken)
    patch = RuleRefiner().repair(c, failed, "ZeroDivisionError: division by zero")
    assert patch.idea == "drop_custom_code" and patch.changes == {"custom_code": {}}
    assert "iteration 2" in patch.rationale
    assert apply_patch(broken, patch).custom_code == {}
    assert RuleRefiner().repair(ctx(), failed, "trace") is None  # nothing to drop
