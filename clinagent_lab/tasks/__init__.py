"""Task backends: everything that differs between task types, in one place.

A :class:`TaskBackend` is a light descriptor (no torch import): its template notebook, the metric its modules
log for checkpointing, its predictions files, its Lightning module, whether it plans epochs to a time budget,
the primary metrics it can be selected on, and the refiner ideas that apply to it. Its heavy half lives in an
implementation module (``tasks/classification.py``, ``tasks/detection.py``) that the notebooks import, with
these callables (reached as attributes of the backend, imported on first use):

- ``make_datamodule(dataset, recipe, spec, include_test=False)`` -> LightningDataModule (train/val only unless
  ``include_test``; the test split is read only by the final evaluation);
- ``make_module(recipe, dataset, spec)`` -> LightningModule;
- ``predict(module, datamodule, split)`` -> predictions (a DataFrame for classification);
- ``evaluate(predictions, recipe, spec, dataset, threshold=None)`` -> metrics dict (library code, frozen);
- ``save_predictions(predictions, path)`` / ``load_predictions(path)``;
- ``load_checkpoint(path, recipe, model_hooks)`` -> the module saved by an iteration, custom model hooks applied.

Example:
    >>> backend = get_backend("detection")
    >>> backend.monitor, backend.predictions_file, backend.has_boxes
    ('val_map50', 'val_predictions.json', True)
    >>> get_backend("binary_classification").allows_metric("map50")
    False
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any

from ..names import DETECTOR_NAMES, MODEL_NAMES
from ..registry import Registry

__all__ = ["TaskBackend", "TASKS", "get_backend", "task_types", "GROUP_SELECTION_METRICS"]

#: selection metrics that need the confounder groups at validation time (logged by modules that know them)
GROUP_SELECTION_METRICS = ("worst_group_auroc", "group_balanced_auroc")

_CALLABLES = ("make_datamodule", "make_module", "predict", "evaluate", "save_predictions", "load_predictions",
              "load_checkpoint")


@dataclass(frozen=True)
class TaskBackend:
    """What a task type needs, as data. See the module docstring."""

    name: str
    #: template notebook under ``notebooks/templates``
    template: str
    #: implementation module with the callables listed in the module docstring (imports torch)
    module: str
    #: ``module:Class`` of the LightningModule its checkpoints load into
    lightning_module: str
    #: the validation metric the module logs, and checkpoints are chosen on by default
    monitor: str
    #: validation / test predictions file names in the run folder
    predictions_file: str
    test_predictions_file: str
    #: primary metrics a spec of this type may choose
    metrics: tuple[str, ...]
    #: images carry boxes (detection)
    has_boxes: bool = False
    #: the epoch count is fitted to the time budget inside the kernel (else the recipe's epochs are trained)
    plans_epochs: bool = True
    #: confounder-group metrics can select checkpoints (the module knows the groups at validation time)
    group_selection: bool = True
    #: can train in several processes (DDP, ``training.devices > 1``)
    ddp: bool = True
    #: the task-specific refiner rules that apply to this task type (``plan.refiner`` rule names)
    refiner_rules: tuple[str, ...] = ()
    #: initializer defaults: largest input side on CPU / GPU
    cpu_image_cap: int = 64
    gpu_image_cap: int = 224
    #: initializer defaults: the network on a GPU and on a CPU, each with the reason a clinician reads
    architectures: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: the names ``model.architecture`` may take (the light list of this task's model registry, ``names.py``)
    model_names: tuple[str, ...] = MODEL_NAMES
    #: ``model.architecture`` of a Recipe that names none ("": ``ModelConfig``'s default)
    default_architecture: str = ""
    #: initializer defaults: a fixed batch size (None: chosen from the input size), dropout before the head
    batch_size: int | None = None
    head_dropout: float = 0.1

    def __getattr__(self, name: str) -> Any:
        if name in _CALLABLES:
            return getattr(importlib.import_module(self.module), name)
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    def allows_metric(self, metric: str) -> bool:
        return metric in self.metrics

    def monitors(self, recipe: Any) -> list[str]:
        """Validation metrics an iteration's checkpoint is chosen on, first to last: the keep/discard metric
        when it is a confounder-group metric and the module can log it, then :attr:`monitor`."""
        selection = recipe.evaluation.selection_metric
        group = self.group_selection and selection in GROUP_SELECTION_METRICS
        return ([f"val_{selection}"] if group else []) + [self.monitor]

    def load_module(self, checkpoint: str) -> Any:
        """The LightningModule saved in ``checkpoint`` (on the CPU)."""
        module_name, cls_name = self.lightning_module.split(":")
        cls = getattr(importlib.import_module(module_name), cls_name)
        return cls.load_from_checkpoint(checkpoint, map_location="cpu", weights_only=False)


TASKS: Registry[TaskBackend] = Registry("task type")

_CLASSIFICATION = dict(
    template="classification.ipynb", module="clinagent_lab.tasks.classification",
    lightning_module="clinagent_lab.models.classifier:ImageClassifier", monitor="val_auroc",
    predictions_file="val_predictions.csv", test_predictions_file="test_predictions.csv",
    metrics=("auroc", "sensitivity_at_specificity", "specificity_at_sensitivity", "balanced_accuracy", "f1"),
    refiner_rules=("target_class_weight", "rebalance_classes", "label_smoothing"),
    architectures={
        "gpu": ("resnet18", "ResNet-18: a strong, well-understood baseline that a GPU trains fast"),
        "cpu": ("small_cnn", "a compact 4-block CNN: at {size} px on CPU it trains many epochs within the budget, "
                             "where a ResNet would manage few")},
)
TASKS.register("binary_classification", TaskBackend(name="binary_classification", **_CLASSIFICATION))
TASKS.register("multiclass_classification", TaskBackend(name="multiclass_classification", **_CLASSIFICATION))
TASKS.register("detection", TaskBackend(
    name="detection", template="detection.ipynb", module="clinagent_lab.tasks.detection",
    lightning_module="clinagent_lab.models.detector:WristDetector", monitor="val_map50",
    predictions_file="val_predictions.json", test_predictions_file="test_predictions.json",
    metrics=("map50", "auroc"), has_boxes=True, plans_epochs=False, group_selection=False, ddp=False,
    refiner_rules=("pseudo_labels",), cpu_image_cap=128, batch_size=8, head_dropout=0.0,
    model_names=DETECTOR_NAMES, default_architecture="fasterrcnn_small_cnn",
    architectures={
        "gpu": ("fasterrcnn_mobilenet", "Faster R-CNN with a MobileNetV3 backbone (torchvision), randomly "
                                        "initialised (no downloads)"),
        "cpu": ("fasterrcnn_small_cnn", "Faster R-CNN on a compact CNN trunk: trains from scratch on CPU within "
                                        "minutes, where MobileNet-based detectors learn little; no downloads")}))


def get_backend(task_type: str) -> TaskBackend:
    return TASKS.get(task_type)


def task_types() -> list[str]:
    return TASKS.names()
