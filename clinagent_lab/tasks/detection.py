"""Detection backend: datamodule, detector, teacher-student fit, box predictions and the frozen evaluation.

Predictions are a list of dicts, one per image: ``image_id``, ``boxes`` ([[x1, y1, x2, y2], ...] in original
pixels), ``scores``, ``labels`` (indices into the dataset's ``box_classes``), ``image_score`` (highest
target-class score; the image-level score for AUROC). They are saved as a JSON list.

Evaluation scores mAP@50 (and sensitivity at fixed false positives per image) on the images of the split that
have box annotation only (``n_annotated``); the image-level AUROC uses every image with a known label.

The iteration notebook trains with :func:`fit`, which runs teacher-student pseudo-labelling when
``recipe.supervision.pseudo_label`` is on::

    module = fit(module, datamodule, trainer)
"""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from ..data.base import LoadedDataset
from ..data.images import to_channels
from ..errors import DataValidationError, RecipeError
from ..evaluation.detection import detection_metrics
from ..fileio import atomic_write_text
from ..recipe import Recipe
from ..spec import TaskSpec

__all__ = ["make_datamodule", "make_module", "predict", "evaluate", "save_predictions", "load_predictions",
           "fit", "teacher_trainer_kwargs", "save_box_figure", "target_box_class", "DEFAULT_TARGET",
           "DEFAULT_FP_PER_IMAGE"]

DEFAULT_TARGET = "fracture"
DEFAULT_FP_PER_IMAGE = (0.5, 1, 2)


def _unsupported(hook: str, value: Any) -> None:
    if value is not None:
        raise RecipeError(f"the '{hook}' hook is not supported for detection", where=f"custom_code['{hook}']",
                          fix="remove this hook; detectors compute their own losses and use all "
                              "training images")


def target_box_class(spec: TaskSpec | None, box_classes: list[str]) -> str:
    """The box class that matters: the first of ``spec.target_classes`` that is a box class, else ``fracture``
    when present, else the first box class."""
    for name in (spec.target_classes if spec is not None else []):
        if name in box_classes:
            return name
    return DEFAULT_TARGET if DEFAULT_TARGET in box_classes else box_classes[0]


def make_datamodule(dataset: LoadedDataset, recipe: Recipe, spec: TaskSpec, include_test: bool = False,
                    extra_transforms: Callable[[bool], list] | None = None,
                    sample_weights: Callable[..., np.ndarray] | None = None) -> Any:
    """A :class:`~clinagent_lab.data.detection_datamodule.DetectionDataModule` (test split only if asked)."""
    # deferred: pulls in lightning, slow to import
    from ..data.detection_datamodule import DetectionDataModule

    _unsupported("sampler", sample_weights)
    return DetectionDataModule(dataset, recipe, include_test=include_test, extra_transforms=extra_transforms)


def make_module(recipe: Recipe, dataset: LoadedDataset, spec: TaskSpec, datamodule: Any = None,
                custom_model: Callable[..., Any] | None = None,
                custom_loss: Callable[..., Any] | None = None) -> Any:
    """A :class:`~clinagent_lab.models.detector.WristDetector` over the dataset's box classes.

    ``custom_model(recipe_dict, num_classes, in_channels)`` may return a torchvision-style detection model
    (loss dict in train mode, list of ``boxes/scores/labels`` dicts in eval); ``num_classes`` includes the
    background class 0.
    """
    # deferred: pulls in lightning, slow to import
    from ..models.detector import WristDetector

    _unsupported("loss", custom_loss)
    if not dataset.box_classes:
        raise DataValidationError(f"the {dataset.format} dataset has no box classes", where=str(dataset.root),
                                  fix="use a detection dataset")
    classes = list(dataset.box_classes)
    module = WristDetector(recipe.model_dump(mode="json"), box_classes=classes,
                           target_class=target_box_class(spec, classes))
    if custom_model is not None:
        module.set_custom_model(custom_model(recipe.model_dump(mode="json"), len(classes) + 1, 3))
    return module


def teacher_trainer_kwargs(recipe: Recipe) -> dict[str, Any]:
    """Trainer arguments for the teacher: the recipe's schedule, no checkpoints or logs, half the time
    budget."""
    t = recipe.training
    kwargs: dict[str, Any] = dict(max_epochs=t.max_epochs, accelerator=t.accelerator, devices=1,
                                  precision=t.precision, deterministic=t.lightning_deterministic(), logger=False,
                                  enable_checkpointing=False, enable_progress_bar=False,
                                  enable_model_summary=False, num_sanity_val_steps=0, limit_val_batches=0)
    if t.max_time_s:
        kwargs["max_time"] = {"seconds": int(max(1, t.max_time_s / 2))}
    if t.limit_train_batches is not None:
        kwargs["limit_train_batches"] = t.limit_train_batches
    return kwargs


def fit(module: Any, datamodule: Any, trainer: Any, teacher_trainer: Any = None) -> Any:
    """Train ``module``; with ``recipe.supervision.pseudo_label``, teacher-student first.

    Teacher-student: a copy of ``module`` (the teacher) trains on the box-annotated images plus negatives with
    ``teacher_trainer`` (default: :func:`teacher_trainer_kwargs`); :func:`~clinagent_lab.models.detector
    .pseudo_label` predicts boxes for the unboxed positive training images; the student (``module``, starting
    from the teacher's weights) trains on everything with ``trainer``. ``module.pseudo_label_summary`` records
    what was added. The teacher and the pseudo-labelling count against the time budget of ``trainer`` (a
    callback with ``deduct(seconds)``, the notebook's time budget): the default teacher gets half of it, the
    student what is left. Returns the trained module.
    """
    import lightning as L  # the training stack takes seconds to import

    # deferred: pulls in lightning, slow to import
    from ..models.detector import pseudo_label

    recipe = module.recipe
    if not recipe.supervision.pseudo_label or not datamodule.unboxed_positive_rows("train"):
        trainer.fit(module, datamodule=datamodule)
        return module
    budget = next((cb for cb in trainer.callbacks if callable(getattr(cb, "deduct", None))), None)
    start = time.monotonic()
    teacher = copy.deepcopy(module)
    if teacher_trainer is None:
        kwargs = teacher_trainer_kwargs(recipe)
        if budget is not None and budget.seconds is not None:  # half of what the kernel has left, not the recipe's
            kwargs["max_time"] = {"seconds": int(max(1, budget.seconds / 2))}
        teacher_trainer = L.Trainer(**kwargs)
    teacher_trainer.fit(teacher, datamodule=datamodule)
    boxes = pseudo_label(teacher, datamodule)
    teacher_s = time.monotonic() - start
    if budget is not None:
        budget.deduct(teacher_s)
    datamodule.set_pseudo_boxes(boxes)
    module.load_state_dict(teacher.state_dict())
    module.pseudo_label_summary = {"images": len(boxes), "boxes": sum(len(v) for v in boxes.values()),
                                   "candidates": len(datamodule.unboxed_positive_rows("train")),
                                   "threshold": recipe.supervision.pseudo_threshold,
                                   "teacher_s": round(teacher_s, 1)}
    print(f"pseudo labels: {module.pseudo_label_summary}")
    trainer.fit(module, datamodule=datamodule)
    return module


def predict(module: Any, datamodule: Any, split: str) -> list[dict[str, Any]]:
    """Boxes for every image of ``split`` (original pixels), see the module docstring."""
    import torch  # the training stack takes seconds to import

    module.eval()
    out: list[dict[str, Any]] = []
    with torch.no_grad():
        for images, targets, metas in datamodule.dataloader_for(split):
            out.extend(module.predict_step(([im.to(module.device) for im in images], targets, metas)))
    labels = dict(zip(datamodule.dataset.table["image_id"].astype(str), datamodule.dataset.table["label"]))
    annotated = datamodule.dataset.boxes or {}
    for p in out:
        p["label"] = int(labels[p["image_id"]])
        p["annotated"] = p["image_id"] in annotated
    return out


def _targets(predictions: list[dict[str, Any]], dataset: LoadedDataset) -> list[dict[str, Any]]:
    boxes = dataset.boxes or {}
    return [{"image_id": p["image_id"], "boxes": [[b.x1, b.y1, b.x2, b.y2] for b in boxes[p["image_id"]]],
             "labels": [b.label for b in boxes[p["image_id"]]]}
            for p in predictions if p["image_id"] in boxes]


def _at_threshold(predictions: list[dict[str, Any]], labels: dict[str, int],
                  threshold: float) -> dict[str, Any]:
    y = np.array([labels[p["image_id"]] for p in predictions if labels.get(p["image_id"], -1) in (0, 1)])
    s = np.array([p["image_score"] for p in predictions if labels.get(p["image_id"], -1) in (0, 1)])
    pos, neg = y == 1, y == 0
    return {"threshold": float(threshold),
            "sensitivity": float((s[pos] >= threshold).mean()) if pos.any() else None,
            "specificity": float((s[neg] < threshold).mean()) if neg.any() else None}


def evaluate(predictions: list[dict[str, Any]], recipe: Recipe, spec: TaskSpec,
             dataset: LoadedDataset | None = None, threshold: float | None = None) -> dict[str, Any]:
    """Frozen detection metrics of ``predictions`` against ``dataset``'s boxes (annotated images only for
    mAP).

    Returns :func:`~clinagent_lab.evaluation.detection.detection_metrics` plus ``n_annotated`` (images scored
    for mAP), ``n_predicted``, ``auroc`` (= ``image_auroc``), ``primary`` (the spec's primary metric:
    ``map50`` or the image-level ``auroc``) and, with ``threshold``, image-level sensitivity/specificity at
    that score.
    """

    if dataset is None or not dataset.box_classes:
        raise DataValidationError("detection evaluation needs the dataset with its boxes", where="evaluate",
                                  fix="pass the loaded dataset")
    classes = list(dataset.box_classes)
    target = target_box_class(spec, classes)
    labels = {str(i): int(y) for i, y in zip(dataset.table["image_id"], dataset.table["label"])}
    fp = tuple(recipe.evaluation.metric_params.get("fp_per_image", DEFAULT_FP_PER_IMAGE))
    metrics = detection_metrics(predictions, _targets(predictions, dataset), classes, target_class=target,
                                fp_per_image=fp, image_labels={p["image_id"]: labels.get(p["image_id"], -1)
                                                               for p in predictions})
    metrics["n_annotated"] = metrics["n_images"]
    metrics["n_predicted"] = len(predictions)
    metrics["auroc"] = metrics["image_auroc"]
    name = spec.primary_metric.name
    metrics["primary_metric"] = name if name in ("map50", "auroc") else "map50"
    metrics["primary"] = metrics[metrics["primary_metric"]]
    if threshold is not None:
        metrics["operating_point"] = _at_threshold(predictions, labels, threshold)
    return metrics


def save_predictions(predictions: list[dict[str, Any]], path: str | Path) -> Path:
    """Write predictions as a JSON list (atomically)."""

    atomic_write_text(Path(path), json.dumps(predictions, indent=1))
    return Path(path)


def load_predictions(path: str | Path) -> list[dict[str, Any]]:
    """Read predictions written by :func:`save_predictions`."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, list):
        raise DataValidationError("detection predictions must be a JSON list", where=str(path),
                                  fix="write them with save_predictions")
    return data


def save_box_figure(dataset: LoadedDataset, predictions: list[dict[str, Any]], path: str | Path, n: int = 6,
                    min_score: float = 0.3, scale: int = 4) -> Path:
    """A PNG strip of up to ``n`` images (annotated positives first): ground-truth boxes green, predicted
    boxes of at least ``min_score`` red with their score."""
    from PIL import Image, ImageDraw  # only image files need it


    rows = {str(i): k for k, i in enumerate(dataset.table["image_id"])}
    boxes = dataset.boxes or {}
    ranked = sorted(predictions, key=lambda p: (p["image_id"] not in boxes, -int(p.get("label", 0) == 1)))[:n]
    tiles = []
    for p in ranked:
        image = Image.fromarray(to_channels(dataset.read_image(rows[p["image_id"]]), 3))
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
        draw = ImageDraw.Draw(image)
        for b in boxes.get(p["image_id"], []):
            draw.rectangle([b.x1 * scale, b.y1 * scale, b.x2 * scale, b.y2 * scale], outline=(0, 200, 0),
                           width=2)
        for box, score in zip(p["boxes"], p["scores"]):
            if score >= min_score:
                draw.rectangle([c * scale for c in box], outline=(230, 0, 0), width=1)
                draw.text((box[0] * scale + 2, box[1] * scale + 1), f"{score:.2f}", fill=(230, 0, 0))
        tiles.append(image)
    width = sum(t.width for t in tiles) or 1
    strip = Image.new("RGB", (width, max((t.height for t in tiles), default=1)))
    x = 0
    for tile in tiles:
        strip.paste(tile, (x, 0))
        x += tile.width
    strip.save(path)
    return Path(path)


def load_checkpoint(path: str | Path, recipe: Recipe, model_hooks: dict[str, Any] | None = None) -> Any:
    """The detector saved at ``path`` (detection recipes take no custom model hook)."""
    # deferred: pulls in lightning, slow to import
    from ..models.detector import WristDetector

    return WristDetector.load_from_checkpoint(str(path), map_location="cpu", weights_only=False)
