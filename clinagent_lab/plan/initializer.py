"""Task initializer: TaskSpec + DatasetFingerprint -> the first Recipe, every choice with a one-line reason.

Like nnU-Net's planner: read the fingerprint, decide input size, network, batch size, loss and sampler from
the data, and fit the number of epochs to the time budget using a measured (or estimated) throughput.
"""

from __future__ import annotations

from typing import Any

from ..data.base import DatasetFingerprint
from ..data.cache import usable_cores
from ..errors import RecipeError, SpecError
from ..models.weights import hub_cache_dir, resolve_weights
from ..recipe import (
    AugmentConfig,
    DataConfig,
    DebiasConfig,
    EvalConfig,
    LossConfig,
    ModelConfig,
    OptimConfig,
    Recipe,
    SupervisionConfig,
    TrainingConfig,
    apply_patch,
)
from ..spec import TaskSpec
from ..tasks import get_backend
from .hardware import Hardware, training_settings

__all__ = ["initialize_recipe", "positive_class_index", "fit_epochs", "ESTIMATED_THROUGHPUT",
           "ESTIMATED_GPU_THROUGHPUT", "estimated_throughput", "operating_rule", "AUGMENT_BY_MODALITY", "median_side",
           "MIN_IMAGE_SIZE"]

#: images/s for one training step on 2 CPU cores at 32x32, by architecture (measured with
#: ``benchmarks/throughput.py``; scaled by pixel count for other sizes). Used when no measurement is given.
ESTIMATED_THROUGHPUT = {"small_cnn": 900.0, "resnet18": 160.0, "resnet34": 90.0, "resnet50": 45.0,
                        "efficientnet_b0": 120.0, "convnext_atto": 110.0, "fasterrcnn_mobilenet": 12.0, "fasterrcnn_small_cnn": 30.0,
                        "retinanet_resnet18": 8.0}

#: training images/s on one mid-range GPU (T4 / A10 class) with mixed precision at 224x224, loading included, by
#: architecture: an order-of-magnitude estimate for planning the first iteration on a GPU (scaled by pixel count
#: for other sizes); the epoch planner re-fits the epochs from the run's own first steps. The CPU table above would
#: make a GPU look ~300 times slower than it is (and subsample its training split).
ESTIMATED_GPU_THROUGHPUT = {"small_cnn": 4000.0, "resnet10t": 1500.0, "resnet18": 1200.0, "resnet34": 700.0,
                            "resnet50": 400.0, "efficientnet_b0": 500.0, "convnext_atto": 800.0,
                            "convnext_tiny": 300.0, "fasterrcnn_mobilenet": 40.0, "fasterrcnn_small_cnn": 60.0,
                            "retinanet_resnet18": 30.0}

#: seconds an iteration spends outside training: kernel start, imports, data loading, evaluation
STARTUP_S = 20.0

#: augmentation defaults by modality, with the reason shown to the clinician
AUGMENT_BY_MODALITY: dict[str, tuple[dict[str, Any], str]] = {
    "dermoscopy": ({"preset": "medium", "horizontal_flip": True, "vertical_flip": True, "rotate_degrees": 90.0,
                    "color_jitter": 0.1}, "dermoscopy has no canonical orientation: flips, 90° rotations and mild "
                                           "colour jitter are label-preserving"),
    "chest_xray": ({"preset": "light", "horizontal_flip": False, "vertical_flip": False, "rotate_degrees": 7.0,
                    "scale": 0.1}, "chest radiographs have anatomical left/right: no flips, small rotations and "
                                   "scaling only"),
    "musculoskeletal_xray": ({"preset": "light", "horizontal_flip": True, "rotate_degrees": 15.0},
                             "left and right wrists mirror each other: horizontal flips and moderate rotations"),
    "other": ({"preset": "light", "horizontal_flip": True, "rotate_degrees": 10.0},
              "generic light augmentation (flip, small rotation) for an unspecified modality"),
}


def positive_class_index(spec: TaskSpec, classes: list[str]) -> int | None:
    """Index of the first target class found in ``classes``; binary tasks default to index 1."""
    lowered = [c.lower() for c in classes]
    for target in spec.target_classes:
        if target.lower() in lowered:
            return lowered.index(target.lower())
    cls = spec.primary_metric.params.get("class")
    if isinstance(cls, str) and cls.lower() in lowered:
        return lowered.index(cls.lower())
    return 1 if len(classes) == 2 else None


def operating_rule(spec: TaskSpec) -> tuple[str, float | None, str]:
    """Operating-point rule from the primary metric and the risk preference."""
    m = spec.primary_metric
    if m.name == "sensitivity_at_specificity":
        v = float(m.params["specificity"])
        return "at_specificity", v, f"the request fixes specificity at {v:.0%}: threshold chosen on validation"
    if m.name == "specificity_at_sensitivity":
        v = float(m.params["sensitivity"])
        return "at_sensitivity", v, f"the request fixes sensitivity at {v:.0%}: threshold chosen on validation"
    if spec.risk_preference == "sensitivity":
        return "at_sensitivity", 0.9, "missing a positive is costly: operate at 90% sensitivity (validation)"
    if spec.risk_preference == "specificity":
        return "at_specificity", 0.9, "false alarms are costly: operate at 90% specificity (validation)"
    return "youden", None, "no preference stated: Youden's J (max sensitivity + specificity) on validation"


def fit_epochs(n_train: int, n_val: int, throughput: float, budget_s: float, *, lo: int = 1,
               hi: int = 60, share: float = 0.7) -> tuple[int, float]:
    """Epochs that fit ``share`` of the budget at ``throughput`` images/s; returns (epochs, seconds per epoch)."""
    per_epoch = n_train / throughput + n_val / (3.0 * throughput) + 0.3
    return max(lo, min(hi, int(share * budget_s / per_epoch))), per_epoch


def estimated_throughput(arch: str, size: int, gpu: bool = False) -> float:
    """Training images/s of ``arch`` at ``size`` px from the tables (a GPU's, or 2 CPU cores'), when unmeasured.

    Example:
        >>> round(estimated_throughput("resnet18", 224, gpu=True)), round(estimated_throughput("resnet18", 64))
        (1200, 40)
    """
    if gpu:
        family = arch.split(":", 1)[-1].split(".", 1)[0]  # "timm:resnet18.a1_in1k" -> "resnet18"
        return ESTIMATED_GPU_THROUGHPUT.get(family, 300.0) * (224.0 * 224.0) / float(size * size)
    return ESTIMATED_THROUGHPUT.get(arch, 100.0) * (32.0 * 32.0) / float(size * size)


def median_side(fp: DatasetFingerprint, default: int = 64) -> int:
    """The shorter median side of the images (fingerprint ``image_sizes`` {height|width: {median}})."""
    sizes = fp.image_sizes or {}
    try:
        return int(min(sizes["height"]["median"], sizes["width"]["median"]))
    except (KeyError, TypeError):
        return default


#: smallest input side the Recipe schema allows (``DataConfig.image_size``)
MIN_IMAGE_SIZE = 8


def _image_size(fp: DatasetFingerprint, cap: int) -> tuple[int, str]:
    med = median_side(fp)
    if med < MIN_IMAGE_SIZE:
        return MIN_IMAGE_SIZE, f"images are {med} px (median): raised to the {MIN_IMAGE_SIZE} px minimum"
    if med <= cap:
        return med, f"images are {med} px (median): trained at their own size, no upsampling"
    return cap, f"images are {med} px (median): downsampled to {cap} px to fit the CPU time budget; the " \
                f"refiner may raise it"


def _loss_and_sampler(fp: DatasetFingerprint, boxes: bool) -> tuple[LossConfig, str, dict[str, str]]:
    ratio = fp.imbalance_ratio
    if boxes:
        return LossConfig(name="ce"), "random", {"loss.name": "detector losses (classification + box regression)"}
    if ratio <= 1.5:
        return LossConfig(name="ce"), "random", {
            "loss.name": f"classes are balanced (largest/smallest = {ratio:.1f}): plain cross-entropy",
            "data.sampler": "balanced classes: random sampling"}
    if ratio <= 10:
        return LossConfig(name="weighted_ce"), "random", {
            "loss.name": f"moderate imbalance ({ratio:.1f}:1): cross-entropy weighted by inverse class frequency",
            "data.sampler": "weights in the loss already rebalance: random sampling"}
    return LossConfig(name="ce"), "class_balanced", {
        "loss.name": "strong imbalance: rebalanced by sampling, so the loss stays unweighted",
        "data.sampler": f"strong imbalance ({ratio:.0f}:1): class-balanced sampling so rare classes are seen"}


def initialize_recipe(spec: TaskSpec, fp: DatasetFingerprint, *, seed: int = 0, budget_s: float | None = None,
                      throughput: float | None = None, gpu: bool = False, size_cap: int | None = None,
                      hardware: Hardware | None = None, pretrained: str | None = "auto") -> Recipe:
    """Write the baseline Recipe.

    Args:
        spec: the grounded TaskSpec (classes known).
        fp: the dataset fingerprint.
        budget_s: seconds for one iteration (default: ``spec.budget.iteration_minutes``).
        throughput: measured training images/s for the chosen network at the chosen size, if known.
        gpu: whether a GPU will train it (allows larger inputs and networks); implied by ``hardware``.
        size_cap: largest input side to use (default 64 on CPU, 224 on GPU).
        hardware: the machine (:func:`~clinagent_lab.plan.hardware.detect_hardware`): precision, devices,
            loader workers, pinned memory, channels_last and the batch size follow it. Default: this CPU.
        pretrained: ``"auto"`` uses ImageNet weights found in the local cache (:data:`PREFERRED_PRETRAINED`),
            a timm name or file path uses those weights, None trains from scratch.
    """
    backend = get_backend(spec.task_type)
    if not fp.classes or len(fp.classes) < 2 and not backend.has_boxes:
        raise SpecError("the data has fewer than two classes", where=fp.root, fix="point at labelled data")
    budget = budget_s or spec.budget.iteration_minutes * 60.0
    reasons: dict[str, str] = {}
    task_type = spec.task_type
    hw = hardware or _default_hardware(gpu)
    gpu = hw.gpu
    boxes = backend.has_boxes
    weights = _pretrained_choice(pretrained, gpu, boxes, reasons)
    if weights is not None and weights.input_size and not size_cap:
        size_cap = weights.input_size if gpu else max(PRETRAINED_CPU_SIZE, 64)
    cap = size_cap or (backend.gpu_image_cap if gpu else backend.cpu_image_cap)
    size, reasons["data.image_size"] = _image_size(fp, cap)
    channels = 3 if max(fp.channels or [1]) >= 3 else 1
    reasons["model.in_channels"] = f"images have {channels} channel(s)"

    arch, why = backend.architectures["gpu" if gpu else "cpu"]
    reasons["model.architecture"] = why.format(size=size)
    if weights is not None and weights.architecture:
        arch = f"timm:{weights.architecture}"
        reasons["model.architecture"] = (f"{weights.architecture} to match the ImageNet-pretrained weights "
                                         f"'{weights.name}' found in the local cache")
    batch = backend.batch_size or (64 if size <= 64 else (32 if size <= 128 else 16))
    reasons["data.batch_size"] = f"{batch} images per step at {size} px fits memory and keeps steps frequent"

    loss, sampler, loss_reasons = _loss_and_sampler(fp, boxes)
    reasons.update(loss_reasons)

    modality = spec.modality if spec.modality in AUGMENT_BY_MODALITY else "other"
    aug, reasons["augment.preset"] = AUGMENT_BY_MODALITY[modality]

    n_train = fp.split_counts.get("train", {})
    n_val = fp.split_counts.get("val", {})
    n_tr, n_va = sum(n_train.values()), sum(n_val.values())
    rate = throughput or estimated_throughput(arch, size, gpu)
    train_budget = max(5.0, budget - STARTUP_S)
    max_time = max(5.0, 0.85 * budget - STARTUP_S)
    subsample = _subsample(n_tr, rate, train_budget, boxes)
    if subsample is not None:
        n_tr = subsample
        reasons["data.max_train_samples"] = (
            f"a full epoch of {sum(n_train.values())} images at ~{rate:.0f} images/s would not leave "
            f"{MIN_EPOCHS} epochs in the budget: the first iterations train on a seeded subsample of {subsample}; "
            f"a longer budget (or a GPU) trains on all")
    epochs, per_epoch = fit_epochs(n_tr, n_va, rate, train_budget)
    reasons["training.max_epochs"] = f"{epochs} epochs fit 70% of the {budget / 60:.1f}-minute budget at " \
                                     f"~{per_epoch:.1f} s/epoch ({'measured' if throughput else 'estimated'})"
    reasons["training.max_time_s"] = (f"Lightning stops cleanly after {max_time:.0f} s of training (budget minus "
                                      f"kernel start-up and evaluation); the executor kills at 100%")

    rule, value, reasons["evaluation.operating_point"] = operating_rule(spec)
    positive = positive_class_index(spec, fp.classes)
    metric_params = dict(spec.primary_metric.params)
    if "class" in metric_params and positive is not None:
        metric_params["class"] = fp.classes[positive]
    reasons["evaluation.primary_metric"] = (f"the request's primary metric: {spec.primary_metric.name}"
                                            + (f" {metric_params}" if metric_params else ""))
    if positive is not None:
        reasons["evaluation.positive_class"] = (
            f"'{fp.classes[positive]}' is the target class (costly to miss): operating point and confounder "
            f"metrics are computed for it")
    selection = None
    mitigated = spec.mitigated_confounders()
    if mitigated:
        selection = "group_balanced_auroc"
        reasons["evaluation.selection_metric"] = (
            f"'{mitigated[0].name}' is to be mitigated: keep/discard uses AUROC on a label x {mitigated[0].name} "
            f"balanced reweighting of validation, which a shortcut cannot inflate")
    reasons["optim.lr"] = "AdamW with a one-cycle schedule: robust default for training from scratch"
    if backend.head_dropout:
        reasons["model.dropout"] = (f"light dropout ({backend.head_dropout}) before the classifier head: small "
                                    f"datasets over-fit")
    lr = 3e-3 if arch == "small_cnn" else 1e-3
    supervision = SupervisionConfig(kind=spec.supervision.kind, box_fraction=spec.supervision.box_fraction
                                    if spec.supervision.box_fraction is not None else fp.box_fraction)
    if boxes:
        reasons["supervision.kind"] = (f"{supervision.kind} supervision; boxes on "
                                       f"{(supervision.box_fraction or 0):.0%} of images")
    settings, setting_reasons = training_settings(hw, arch, size)
    if boxes:
        settings.pop("data.batch_size", None)
        setting_reasons.pop("data.batch_size", None)
        settings["training.channels_last"] = False
    reasons.update(setting_reasons)
    recipe = Recipe(
        task_type=task_type, classes=list(fp.classes), seed=seed,
        model=ModelConfig(architecture=arch, in_channels=channels, dropout=backend.head_dropout,
                          pretrained=weights.name if weights else None,
                          pretrained_sha256=weights.sha256 if weights else None),
        data=DataConfig(image_size=size, batch_size=batch, sampler=sampler, max_train_samples=subsample),
        augment=AugmentConfig(**aug),
        optim=OptimConfig(name="adamw", lr=lr, weight_decay=1e-4, schedule="onecycle"),
        loss=loss,
        training=TrainingConfig(max_epochs=epochs, max_time_s=round(max_time, 1),
                                early_stopping_patience=None),
        debias=DebiasConfig(),
        evaluation=EvalConfig(primary_metric=spec.primary_metric.name, metric_params=metric_params,
                              positive_class=positive, operating_point=rule, operating_value=value,
                              bootstrap=200, selection_metric=selection),
        supervision=supervision,
        reasons=reasons,
    )
    return apply_patch(recipe, settings)


PREFERRED_PRETRAINED = {
    "cpu": ("resnet10t.c3_in1k", "resnet18.a1_in1k", "mobilenetv3_small_100.lamb_in1k", "efficientnet_b0.ra_in1k"),
    "gpu": ("convnext_tiny.in12k_ft_in1k", "efficientnet_b0.ra_in1k", "resnet50.a1_in1k", "resnet18.a1_in1k",
            "resnet10t.c3_in1k"),
}
"""ImageNet weights the initializer looks for in the local cache, best first, by hardware."""

#: input side for a pretrained network on CPU (ImageNet features need more pixels than 28-64 px to help)
PRETRAINED_CPU_SIZE = 96
#: epochs the first iteration should fit; fewer and the train split is subsampled (CPU)
MIN_EPOCHS = 3


def _default_hardware(gpu: bool) -> Hardware:
    if gpu:
        return Hardware(accelerator="gpu", devices=1, cores=usable_cores(), gpu_name="GPU", gpu_memory_gib=16.0)
    return Hardware(accelerator="cpu", devices=1, cores=usable_cores())


def _pretrained_choice(pretrained: str | None, gpu: bool, boxes: bool, reasons: dict[str, str]) -> Any:
    """The weights to start from (resolved offline), with the reason either way (detectors load their own)."""
    if pretrained is None or boxes:
        return None
    if pretrained != "auto":
        found = resolve_weights(pretrained)
        reasons["model.pretrained"] = f"ImageNet-pretrained weights as asked: {found.name} (sha256 " \
                                      f"{found.sha256[:12]}…), read from {'the local cache' if found.kind == 'hub' else 'a local file'}"
        return found
    for name in PREFERRED_PRETRAINED["gpu" if gpu else "cpu"]:
        try:
            found = resolve_weights(name)
        except RecipeError:
            continue
        reasons["model.pretrained"] = (f"ImageNet-pretrained {found.name} is in the local cache (sha256 "
                                       f"{found.sha256[:12]}…): starting from its features converges in fewer "
                                       f"epochs and usually generalises better than training from scratch")
        return found
    best = PREFERRED_PRETRAINED["gpu" if gpu else "cpu"][0]
    reasons["model.pretrained"] = (
        f"no ImageNet-pretrained weights in the local cache ({hub_cache_dir()}): training from scratch. "
        f"`clinagent weights pull {best}` on a machine with a network would let the model start from ImageNet "
        f"features: usually fewer epochs to the same AUROC and better results on datasets of a few thousand images")
    return None


def _subsample(n_train: int, rate: float, train_budget: float, boxes: bool) -> int | None:
    """Training images that leave :data:`MIN_EPOCHS` epochs in the budget, when the whole split does not."""
    if boxes or n_train <= 0:
        return None
    fits = int(0.7 * train_budget * rate / MIN_EPOCHS)
    if n_train <= fits:
        return None
    return max(256, fits // 64 * 64)
