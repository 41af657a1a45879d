"""The task initializer: TaskSpec + DatasetFingerprint -> the baseline Recipe, every choice with a reason."""

from __future__ import annotations

import pytest

from clinagent_lab.data.base import DatasetFingerprint
from clinagent_lab.errors import SpecError
from clinagent_lab.intent import parse_offline
from clinagent_lab.plan.initializer import (
    ESTIMATED_THROUGHPUT,
    STARTUP_S,
    fit_epochs,
    initialize_recipe,
    positive_class_index,
)
from clinagent_lab.recipe import Recipe, recipe_diff
from clinagent_lab.spec import Confounder, MetricSpec, Supervision, TaskSpec

ISIC = ["MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC"]
SEED_DERM = ("classify dermoscopic lesions into the ISIC categories, melanoma matters most, "
             "sensitivity at 80% specificity")


def fingerprint(classes=("normal", "pneumothorax"), counts=None, *, side: int = 32, channels=(1,),
                n_train: int | None = None, task_type: str = "binary_classification",
                box_fraction: float | None = None, metadata=()) -> DatasetFingerprint:
    """A fingerprint as compute_fingerprint writes it; ``counts`` are per class, 60/20/20 split."""
    classes = list(classes)
    counts = list(counts or [50] * len(classes))
    if n_train is not None:  # scale to this many training images, keeping the class ratio
        counts = [max(1, round(c * n_train / (0.6 * sum(counts)))) for c in counts]
    split = {name: {c: max(1, round(n * share)) for c, n in zip(classes, counts)}
             for name, share in (("train", 0.6), ("val", 0.2), ("test", 0.2))}
    train = split["train"].values()
    return DatasetFingerprint(
        format="csv_manifest", root="/data/x", task_type=task_type, classes=classes, n_images=sum(counts),
        class_counts=dict(zip(classes, counts)), split_counts=split, splits_given=False,
        split_rule="grouped by patient_id, stratified 60/20/20",
        image_sizes={"height": {"min": side, "median": side, "max": side},
                     "width": {"min": side, "median": side + 10, "max": side + 10}},
        channels=list(channels), metadata_columns=list(metadata), imbalance_ratio=max(train) / min(train),
        box_fraction=box_fraction, n_boxes=None if box_fraction is None else 3)


def spec(**fields) -> TaskSpec:
    base = {"task_type": "binary_classification", "modality": "chest_xray", "target_classes": ["pneumothorax"]}
    return TaskSpec(**{**base, **fields})


#: fields explained by the reason of the field they come with
COMPANIONS = {"evaluation.operating_value": "evaluation.operating_point",
              "evaluation.metric_params": "evaluation.primary_metric", "augment": "augment.preset",
              "supervision.box_fraction": "supervision.kind"}


def _covered(key: str, reasons: dict[str, str]) -> bool:
    if key in reasons or any(key.startswith(k + ".") for k in reasons):
        return True
    return any((key == k or key.startswith(k + ".")) and v in reasons for k, v in COMPANIONS.items())


# ---------------------------------------------------------------------------------------------- reasons


@pytest.mark.parametrize("case", ["binary", "isic", "mitigated", "detection", "gpu"])
def test_every_choice_has_a_reason(case):
    if case == "isic":
        fp = fingerprint(ISIC, [450, 1300, 330, 90, 260, 24, 25, 63], side=256, channels=(3,))
        s = parse_offline(SEED_DERM, fp)
    elif case == "mitigated":
        fp = fingerprint(counts=[80, 20], metadata=["chest_drain"])
        s = spec(confounders=[Confounder(name="chest_drain", column="chest_drain", action="mitigate")])
    elif case == "detection":
        fp = fingerprint(["no_fracture", "fracture"], side=200, task_type="detection", box_fraction=0.05)
        s = parse_offline("detect wrist fractures, only 5% of images have boxes", fp)
    else:
        fp = fingerprint(counts=[60, 40])
        s = spec()
    r = initialize_recipe(s, fp, gpu=case == "gpu")
    default = Recipe(task_type=r.task_type, classes=r.classes)
    changed = [k for k in recipe_diff(default, r) if k not in ("seed",)]
    assert changed, "the initializer changed nothing"
    missing = [k for k in changed if not _covered(k, r.reasons)]
    assert missing == [], f"choices without a reason: {missing}"
    assert all(isinstance(v, str) and len(v) > 10 for v in r.reasons.values())
    # a reason only for fields that exist
    for key in r.reasons:
        node = r.model_dump()
        for part in key.split("."):
            assert part in node, f"reason for unknown field {key}"
            node = node[part]


# ------------------------------------------------------------------------------------------ loss / sampler


@pytest.mark.parametrize("counts, loss, sampler, words", [
    ([50, 50], "ce", "random", "balanced"),
    ([60, 45], "ce", "random", "balanced"),          # 1.33:1 still balanced
    ([80, 20], "weighted_ce", "random", "moderate"),  # 4:1
    ([100, 10], "weighted_ce", "random", "moderate"),  # 10:1, the upper edge
    ([300, 10], "ce", "class_balanced", "strong"),    # 30:1
])
def test_loss_and_sampler_follow_the_imbalance_ratio(counts, loss, sampler, words):
    fp = fingerprint(counts=counts)
    r = initialize_recipe(spec(), fp)
    assert (r.loss.name, r.data.sampler) == (loss, sampler)
    assert words in r.reasons["loss.name"] + r.reasons["data.sampler"]
    assert r.loss.class_weights is None  # weighted_ce computes inverse frequencies from the data


# ------------------------------------------------------------------------------------------ operating point


@pytest.mark.parametrize("metric, risk, rule, value", [
    (MetricSpec(name="sensitivity_at_specificity", params={"specificity": 0.8}), "balanced", "at_specificity", 0.8),
    (MetricSpec(name="sensitivity_at_specificity", params={"specificity": 0.8}), "sensitivity", "at_specificity",
     0.8),  # the metric's own constraint wins over the risk preference
    (MetricSpec(name="specificity_at_sensitivity", params={"sensitivity": 0.95}), "balanced", "at_sensitivity",
     0.95),
    (MetricSpec(name="auroc"), "sensitivity", "at_sensitivity", 0.9),
    (MetricSpec(name="auroc"), "specificity", "at_specificity", 0.9),
    (MetricSpec(name="auroc"), "balanced", "youden", None),
])
def test_operating_point_from_metric_and_risk(metric, risk, rule, value):
    r = initialize_recipe(spec(primary_metric=metric, risk_preference=risk), fingerprint())
    assert r.evaluation.operating_point == rule
    assert r.evaluation.operating_value == value
    assert r.evaluation.primary_metric == metric.name
    if value is not None:
        assert f"{value:.0%}" in r.reasons["evaluation.operating_point"]


# ------------------------------------------------------------------------------------------------ image size


@pytest.mark.parametrize("side, gpu, cap, expected", [
    (16, False, None, 16),    # small images stay small
    (12, False, None, 12),    # never upsampled, even below 16 px
    (28, False, None, 28),
    (64, False, None, 64),
    (512, False, None, 64),   # CPU cap
    (512, True, None, 224),   # GPU cap
    (100, True, None, 100),   # GPU: native size below the cap
    (512, False, 96, 96),     # explicit cap
])
def test_image_size_never_upsamples_and_is_capped(side, gpu, cap, expected):
    r = initialize_recipe(spec(), fingerprint(side=side), gpu=gpu, size_cap=cap)
    assert r.data.image_size == expected
    assert r.data.image_size <= side  # never larger than the images
    reason = r.reasons["data.image_size"]
    assert f"{side} px" in reason
    assert ("downsampled" in reason) == (expected < side)


def test_detection_cap_is_larger_on_cpu():
    fp = fingerprint(["no_fracture", "fracture"], side=400, task_type="detection", box_fraction=0.1)
    r = initialize_recipe(spec(task_type="detection", modality="musculoskeletal_xray",
                               primary_metric=MetricSpec(name="map50")), fp)
    assert r.data.image_size == 128


# ----------------------------------------------------------------------------------------------------- epochs


def test_epochs_match_the_budget_formula():
    fp = fingerprint(n_train=600, side=32)
    r = initialize_recipe(spec(), fp, budget_s=300)
    n_tr, n_va = sum(fp.split_counts["train"].values()), sum(fp.split_counts["val"].values())
    expected, per_epoch = fit_epochs(n_tr, n_va, ESTIMATED_THROUGHPUT["small_cnn"], 300 - STARTUP_S)
    assert per_epoch == pytest.approx(n_tr / 900 + n_va / 2700 + 0.3)
    assert r.training.max_epochs == expected == min(60, int(0.7 * 280 / per_epoch))
    assert r.training.max_time_s == pytest.approx(0.85 * 300 - STARTUP_S, abs=0.1)
    assert "estimated" in r.reasons["training.max_epochs"]


def test_epochs_grow_with_the_budget():
    fp = fingerprint(n_train=20000, side=64)
    epochs = [initialize_recipe(spec(), fp, budget_s=b).training.max_epochs for b in (60, 300, 900, 3600)]
    assert epochs == sorted(epochs) and epochs[0] < epochs[-1]
    assert all(1 <= e <= 60 for e in epochs)


def test_epochs_shrink_with_the_dataset_size():
    epochs = [initialize_recipe(spec(), fingerprint(n_train=n, side=64), budget_s=600).training.max_epochs
              for n in (500, 5000, 50000)]
    assert epochs[0] > epochs[1] > epochs[2] >= 1


def test_measured_throughput_is_used_and_said():
    fp = fingerprint(n_train=3000, side=64)
    slow = initialize_recipe(spec(), fp, budget_s=600, throughput=50.0)
    fast = initialize_recipe(spec(), fp, budget_s=600, throughput=500.0)
    assert slow.training.max_epochs < fast.training.max_epochs
    assert "measured" in slow.reasons["training.max_epochs"]


def test_budget_defaults_to_the_spec_iteration_minutes():
    fp = fingerprint(n_train=20000, side=64)
    short = initialize_recipe(spec(budget={"iteration_minutes": 2}), fp)
    long = initialize_recipe(spec(budget={"iteration_minutes": 20}), fp)
    assert short.training.max_epochs < long.training.max_epochs
    assert "2.0-minute" in short.reasons["training.max_epochs"]


# ------------------------------------------------------------------------------------------------ confounders


def test_mitigated_confounder_selects_on_group_balanced_auroc():
    s = spec(confounders=[Confounder(name="chest_drain", column="chest_drain", action="mitigate")])
    r = initialize_recipe(s, fingerprint(metadata=["chest_drain"]))
    assert r.evaluation.selection_metric == "group_balanced_auroc"
    assert "chest_drain" in r.reasons["evaluation.selection_metric"]
    assert r.debias.method == "none"  # the baseline measures the reliance first


@pytest.mark.parametrize("confounder", [
    Confounder(name="chest_drain", column="chest_drain", action="report"),
    Confounder(name="chest_drain", column=None, action="mitigate"),  # no column in the data: cannot measure
])
def test_unmitigated_or_unmeasurable_confounder_keeps_the_primary_metric(confounder):
    r = initialize_recipe(spec(confounders=[confounder]), fingerprint())
    assert r.evaluation.selection_metric is None
    assert "evaluation.selection_metric" not in r.reasons


# ------------------------------------------------------------------------------------------- target classes


def test_positive_class_from_target_classes_isic():
    fp = fingerprint(ISIC, [450, 1300, 330, 90, 260, 24, 25, 63], side=64, channels=(3,))
    s = parse_offline(SEED_DERM, fp)
    r = initialize_recipe(s, fp)
    assert r.task_type == "multiclass_classification"
    assert r.evaluation.positive_class == ISIC.index("MEL") == 0
    assert r.evaluation.metric_params == {"specificity": 0.8, "class": "MEL"}
    assert r.classes == ISIC and r.model.in_channels == 3


def test_multiclass_metric_class_is_mapped_to_the_data_spelling():
    classes = ["nv", "bcc", "mel", "bkl"]
    fp = fingerprint(classes, [100, 40, 50, 30])
    s = spec(task_type="multiclass_classification", modality="dermoscopy", target_classes=["MEL"],
             primary_metric=MetricSpec(name="sensitivity_at_specificity",
                                       params={"specificity": 0.8, "class": "Mel"}))
    r = initialize_recipe(s, fp)
    assert r.evaluation.positive_class == 2
    assert r.evaluation.metric_params["class"] == "mel"
    assert "mel" in r.reasons["evaluation.positive_class"]


@pytest.mark.parametrize("targets, params, classes, expected", [
    (["pneumothorax"], {}, ["normal", "pneumothorax"], 1),
    (["Normal"], {}, ["normal", "pneumothorax"], 0),        # case-insensitive
    ([], {}, ["negative", "positive"], 1),                  # binary default: the second class
    ([], {"class": "BCC"}, ISIC, 2),                        # from the metric's class
    ([], {}, ISIC, None),                                   # multiclass without a target
    (["melanoma"], {}, ISIC, None),                         # not grounded: no guess
])
def test_positive_class_index(targets, params, classes, expected):
    metric = MetricSpec(name="auroc", params=params)
    task = "binary_classification" if len(classes) == 2 else "multiclass_classification"
    s = TaskSpec(task_type=task, target_classes=targets, primary_metric=metric)
    assert positive_class_index(s, classes) == expected


def test_fewer_than_two_classes_is_a_spec_error():
    fp = fingerprint(["normal", "pneumothorax"]).model_copy(update={"classes": ["normal"]})
    with pytest.raises(SpecError, match="fewer than two classes"):
        initialize_recipe(spec(), fp)


# -------------------------------------------------------------------------------------------------- detection


def test_detection_recipe():
    fp = fingerprint(["no_fracture", "fracture"], side=96, channels=(1,), task_type="detection",
                     box_fraction=0.05)
    s = parse_offline("detect wrist fractures, only 5% of images have boxes", fp)
    r = initialize_recipe(s, fp)
    assert r.task_type == "detection"
    assert r.model.architecture == "fasterrcnn_small_cnn" and r.model.dropout == 0.0
    assert r.data.batch_size == 8 and r.data.image_size == 96 and r.data.sampler == "random"
    assert r.evaluation.primary_metric == "map50"
    assert r.supervision.kind == "mixed" and r.supervision.box_fraction == pytest.approx(0.05)
    assert "5%" in r.reasons["supervision.kind"]
    assert "detector" in r.reasons["loss.name"]
    assert r.augment.horizontal_flip and not r.augment.vertical_flip  # wrists mirror left/right


def test_detection_box_fraction_falls_back_to_the_data():
    fp = fingerprint(["no_fracture", "fracture"], side=64, task_type="detection", box_fraction=0.2)
    s = spec(task_type="detection", modality="musculoskeletal_xray", target_classes=["fracture"],
             primary_metric=MetricSpec(name="map50"), supervision=Supervision(kind="mixed"))
    assert initialize_recipe(s, fp).supervision.box_fraction == pytest.approx(0.2)


# ----------------------------------------------------------------------------------------------- augmentation


@pytest.mark.parametrize("modality, hflip, vflip", [
    ("chest_xray", False, False),          # anatomical left/right: no flips at all
    ("dermoscopy", True, True),            # no canonical orientation
    ("musculoskeletal_xray", True, False),
    ("other", True, False),
])
def test_augmentation_per_modality(modality, hflip, vflip):
    r = initialize_recipe(spec(modality=modality), fingerprint(channels=(3,)))
    assert (r.augment.horizontal_flip, r.augment.vertical_flip) == (hflip, vflip)
    if modality == "chest_xray":
        assert "no flips" in r.reasons["augment.preset"] and r.augment.rotate_degrees <= 10
    if modality == "dermoscopy":
        assert r.augment.rotate_degrees == 90 and r.augment.color_jitter > 0


# ------------------------------------------------------------------------------------------- network, channels


@pytest.mark.parametrize("channels, expected", [((1,), 1), ((3,), 3), ((1, 3), 3)])
def test_input_channels_from_the_data(channels, expected):
    assert initialize_recipe(spec(), fingerprint(channels=channels)).model.in_channels == expected


def test_cpu_uses_a_small_cnn_gpu_a_resnet():
    fp = fingerprint(side=256)
    cpu, gpu = initialize_recipe(spec(), fp), initialize_recipe(spec(), fp, gpu=True)
    assert cpu.model.architecture == "small_cnn" and gpu.model.architecture == "resnet18"
    assert cpu.data.batch_size == 64 and gpu.data.batch_size >= 64  # fitted to the GPU's memory
    assert "GiB" in gpu.reasons["data.batch_size"]
    assert cpu.optim.lr > gpu.optim.lr


def test_seed_is_carried():
    assert initialize_recipe(spec(), fingerprint(), seed=7).seed == 7
