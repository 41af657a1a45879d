"""Box detectors: a registry of torchvision detection models and the Lightning module that trains them.

Every detector is randomly initialised (``weights=None, weights_backbone=None``: nothing is ever downloaded)
or loaded from ``recipe.model.pretrained_path`` (a local state_dict or Lightning checkpoint). Input size is
fixed by ``recipe.data.image_size`` (the detector's internal resize is set to it) and anchors scale with it,
so a 64 px run on CPU is quick.

Mixed supervision, teacher-student (``recipe.supervision.pseudo_label``): train a teacher on the box-annotated
images plus negatives, call :func:`pseudo_label` to predict ``fracture`` boxes on the unboxed positive
training images (keeping boxes with score >= ``pseudo_threshold``, and at least the top box since the image
label says there is a fracture), hand them to the datamodule and train the student on all.
``clinagent_lab.tasks.detection.fit`` does exactly this; the detection template notebook calls that ``fit``.

Example:
    >>> from clinagent_lab.recipe import Recipe
    >>> r = Recipe(task_type="detection", classes=["no_fracture", "fracture"],
    ...            model={"architecture": "fasterrcnn_small_cnn"}, data={"image_size": 32})
    >>> m = WristDetector(r.model_dump(), box_classes=["fracture", "text"])
    >>> import torch
    >>> out = m.eval()([torch.rand(3, 32, 32)])
    >>> sorted(out[0])
    ['boxes', 'labels', 'scores']
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import nn

from ..data.base import Box
from ..errors import RecipeError
from ..evaluation.detection import detection_metrics
from ..recipe import ModelConfig, Recipe
from ..registry import Registry

__all__ = ["DETECTORS", "WristDetector", "create_detector", "pseudo_label", "load_detector_weights",
           "anchor_sizes", "score_floor"]

#: builder(num_classes including background, image_size, model config) -> torchvision-style detection model
DetectorBuilder = Callable[[int, int, ModelConfig], nn.Module]
DETECTORS: Registry[DetectorBuilder] = Registry("detector")

#: Lowest score a detector reports (low, so mAP sees the whole precision-recall curve).
SCORE_THRESH = 0.01
DETECTIONS_PER_IMAGE = 50
#: gradient-norm clip; training detectors from scratch otherwise diverges now and then
GRAD_CLIP_NORM = 10.0


def anchor_sizes(image_size: int, fractions: tuple[float, ...] = (0.08, 0.16, 0.32, 0.64)) -> tuple[int, ...]:
    """Anchor sides in pixels as fractions of the input size (at least 2 px, distinct, increasing).

    Example:
        >>> anchor_sizes(64)
        (5, 10, 20, 41)
    """
    sizes = sorted({max(2, int(round(f * image_size))) for f in fractions})
    return tuple(sizes)


def _common(image_size: int) -> dict[str, Any]:
    return {"min_size": image_size, "max_size": image_size, "image_mean": [0.5, 0.5, 0.5],
            "image_std": [0.25, 0.25, 0.25]}


@DETECTORS.register("fasterrcnn_mobilenet")
def fasterrcnn_mobilenet(num_classes: int, image_size: int, cfg: ModelConfig) -> nn.Module:
    """Faster R-CNN on a MobileNetV3-Large FPN backbone (torchvision's mobile detector; anchors scaled to the
    input, a 256-wide box head and fewer sampled RoIs so it trains on CPU)."""
    from torchvision.models.detection import FasterRCNN  # the training stack takes seconds to import

    # the training stack takes seconds to import
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    # the training stack takes seconds to import
    from torchvision.models.detection.backbone_utils import mobilenet_backbone

    # the training stack takes seconds to import
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign  # the training stack takes seconds to import

    backbone = mobilenet_backbone(backbone_name="mobilenet_v3_large", weights=None, fpn=True,
                                  norm_layer=nn.BatchNorm2d, trainable_layers=6)
    anchors = AnchorGenerator((anchor_sizes(image_size),) * 3, ((0.5, 1.0, 2.0),) * 3)
    pool = MultiScaleRoIAlign(featmap_names=["0", "1"], output_size=7, sampling_ratio=1)
    hidden = 256
    return FasterRCNN(backbone, rpn_anchor_generator=anchors, box_roi_pool=pool,
                      box_head=TwoMLPHead(backbone.out_channels * 49, hidden),
                      box_predictor=FastRCNNPredictor(hidden, num_classes),
                      rpn_pre_nms_top_n_train=600, rpn_post_nms_top_n_train=300, rpn_batch_size_per_image=128,
                      box_batch_size_per_image=64, rpn_pre_nms_top_n_test=150, rpn_post_nms_top_n_test=150,
                      rpn_score_thresh=0.05,
                      box_score_thresh=SCORE_THRESH, box_detections_per_img=DETECTIONS_PER_IMAGE,
                      **_common(image_size))


@DETECTORS.register("fcos_resnet18")
def fcos_resnet18(num_classes: int, image_size: int, cfg: ModelConfig) -> nn.Module:
    """FCOS (anchor-free) on a ResNet-18 FPN backbone with P3-P7 (strides 8 to 128)."""
    from torchvision.models.detection import FCOS  # the training stack takes seconds to import

    # the training stack takes seconds to import
    from torchvision.models.detection.backbone_utils import resnet_fpn_backbone

    # the training stack takes seconds to import
    from torchvision.ops.feature_pyramid_network import LastLevelP6P7

    backbone = resnet_fpn_backbone(backbone_name="resnet18", weights=None, norm_layer=nn.BatchNorm2d,
                                   trainable_layers=5, returned_layers=[2, 3, 4],
                                   extra_blocks=LastLevelP6P7(256, 256))
    return FCOS(backbone, num_classes=num_classes, score_thresh=SCORE_THRESH, topk_candidates=200,
                detections_per_img=DETECTIONS_PER_IMAGE, **_common(image_size))


class _SmallBackbone(nn.Sequential):
    """Three stride-2 conv blocks (stride 8 overall); ``out_channels`` as torchvision detectors expect."""

    def __init__(self, width: float = 1.0) -> None:
        chans = [max(8, int(round(c * width))) for c in (16, 32, 64)]
        layers: list[nn.Module] = []
        prev = 3
        for c in chans:
            layers += [nn.Conv2d(prev, c, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c),
                       nn.ReLU(inplace=True), nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c),
                       nn.ReLU(inplace=True)]
            prev = c
        super().__init__(*layers)
        self.out_channels = prev


@DETECTORS.register("fasterrcnn_small_cnn")
def fasterrcnn_small_cnn(num_classes: int, image_size: int, cfg: ModelConfig) -> nn.Module:
    """Faster R-CNN on a compact 6-conv backbone, one feature map: the fastest choice on CPU at <= 128 px."""
    from torchvision.models.detection import FasterRCNN  # the training stack takes seconds to import

    # the training stack takes seconds to import
    from torchvision.models.detection.anchor_utils import AnchorGenerator

    # the training stack takes seconds to import
    from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
    from torchvision.ops import MultiScaleRoIAlign  # the training stack takes seconds to import

    backbone = _SmallBackbone(cfg.width)
    anchors = AnchorGenerator((anchor_sizes(image_size),), ((0.5, 1.0, 2.0),))
    pool = MultiScaleRoIAlign(featmap_names=["0"], output_size=7, sampling_ratio=1)
    hidden = 128
    return FasterRCNN(backbone, rpn_anchor_generator=anchors, box_roi_pool=pool,
                      box_head=TwoMLPHead(backbone.out_channels * 49, hidden),
                      box_predictor=FastRCNNPredictor(hidden, num_classes),
                      rpn_pre_nms_top_n_train=300, rpn_post_nms_top_n_train=150, rpn_pre_nms_top_n_test=150,
                      rpn_post_nms_top_n_test=100, rpn_batch_size_per_image=64, box_batch_size_per_image=32,
                      box_score_thresh=SCORE_THRESH, box_detections_per_img=DETECTIONS_PER_IMAGE,
                      **_common(image_size))


def load_detector_weights(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a local state_dict (or a Lightning checkpoint of :class:`WristDetector`) into ``model``.

    Raises:
        RecipeError: the file is missing or none of its tensors fit the model.
    """
    p = Path(path)
    if not p.is_file():
        raise RecipeError(f"pretrained weights not found: {p}", where="recipe model.pretrained_path",
                          fix="point at a local .pt/.pth/.ckpt file (weights are never downloaded)")
    state = torch.load(p, map_location="cpu", weights_only=False)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    state = {k.removeprefix("model."): v for k, v in state.items()}
    own = model.state_dict()
    fitting = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    if not fitting:
        raise RecipeError(f"no tensor in {p.name} fits the detector", where="recipe model.pretrained_path",
                          fix="use weights saved from the same detector architecture")
    model.load_state_dict(fitting, strict=False)
    if len(fitting) < len(own):
        warnings.warn(f"{len(own) - len(fitting)} of {len(own)} detector tensors kept their random "
                      f"initialisation (not in {p.name} or a different shape)", stacklevel=2)
    return model


def create_detector(recipe: Recipe, num_box_classes: int) -> nn.Module:
    """Build ``recipe.model.architecture`` from :data:`DETECTORS` for ``num_box_classes`` (+ background)."""
    build = DETECTORS.get(recipe.model.architecture)
    model = build(num_box_classes + 1, recipe.data.image_size, recipe.model)
    if recipe.model.pretrained_path:
        load_detector_weights(model, recipe.model.pretrained_path)
    return model


@contextlib.contextmanager
def score_floor(model: nn.Module, value: float = 0.0, max_detections: int = 1000) -> Iterator[None]:
    """Temporarily report detections down to score ``value``, up to ``max_detections`` per image (torchvision
    Faster R-CNN, FCOS and RetinaNet keep these settings on the model or its ``roi_heads``)."""
    settings = {"score_thresh": value, "detections_per_img": max_detections}
    holders = [h for h in (getattr(model, "roi_heads", None), model) if h is not None]
    saved = [(h, name, getattr(h, name)) for h in holders for name in settings if hasattr(h, name)]
    for h, name, _ in saved:
        setattr(h, name, settings[name])
    try:
        yield
    finally:
        for h, name, old in saved:
            setattr(h, name, old)


def _to_original(boxes: torch.Tensor, meta: dict[str, Any]) -> np.ndarray:
    """Boxes from input-pixel coordinates back to the original image's pixels."""
    (h0, w0), (h1, w1) = meta["orig_size"], meta["size"]
    scale = np.array([w0 / w1, h0 / h1, w0 / w1, h0 / h1])
    return boxes.detach().cpu().double().numpy().reshape(-1, 4) * scale


class WristDetector(L.LightningModule):
    """Lightning module around a torchvision detector; logs ``val_map50`` from the frozen evaluator.

    Args:
        recipe: the Recipe as a dict (saved as hyperparameters, so ``load_from_checkpoint`` rebuilds it).
        box_classes: box class names; detector label ``k + 1`` is ``box_classes[k]``.
        target_class: the class whose score gives the image-level score (e.g. ``fracture``).
    """

    def __init__(self, recipe: dict[str, Any], box_classes: list[str],
                 target_class: str = "fracture") -> None:
        super().__init__()
        self.save_hyperparameters()
        self.recipe = Recipe.model_validate(recipe)
        self.box_classes = list(box_classes)
        self.target_class = target_class if target_class in self.box_classes else self.box_classes[0]
        self.target_id = self.box_classes.index(self.target_class)
        self.model = create_detector(self.recipe, len(self.box_classes))
        self._val_preds: list[dict[str, Any]] = []
        self._val_targets: list[dict[str, Any]] = []
        self._val_labels: dict[str, int] = {}

    def set_custom_model(self, model: nn.Module) -> None:
        """Replace the detector by a hook-built torchvision-style model (losses in train, boxes in eval)."""
        self.model = model

    def forward(self, images: list[torch.Tensor],
                targets: list[dict[str, torch.Tensor]] | None = None) -> Any:
        return self.model(images, targets)

    # --- training -------------------------------------------------------------------------------------
    def training_step(self, batch: tuple[list, list, list], batch_idx: int) -> torch.Tensor:
        images, targets, _ = batch
        losses = self.model(images, targets)
        loss = sum(losses.values())
        self.log("train_loss", loss, prog_bar=True, batch_size=len(images))
        for name, value in losses.items():
            self.log(f"train_{name}", value, batch_size=len(images))
        return loss

    def configure_gradient_clipping(self, optimizer: Any, gradient_clip_val: float | None = None,
                                    gradient_clip_algorithm: str | None = None) -> None:
        self.clip_gradients(optimizer, gradient_clip_val=gradient_clip_val or GRAD_CLIP_NORM,
                            gradient_clip_algorithm=gradient_clip_algorithm or "norm")

    # --- prediction -----------------------------------------------------------------------------------
    def predict_step(self, batch: tuple[list, list, list], batch_idx: int = 0,
                     dataloader_idx: int = 0) -> list[dict[str, Any]]:
        """Per image: ``image_id``, ``boxes`` (original pixels), ``scores``, ``labels`` (box class index),
        ``image_score`` (highest target-class score, 0 if none)."""
        images, _, metas = batch
        outputs = self.model(images)
        out = []
        for result, meta in zip(outputs, metas):
            labels = result["labels"].detach().cpu().numpy().astype(int) - 1
            scores = result["scores"].detach().cpu().double().numpy()
            target = scores[labels == self.target_id]
            out.append({"image_id": meta["image_id"], "boxes": _to_original(result["boxes"], meta).tolist(),
                        "scores": scores.tolist(), "labels": labels.tolist(),
                        "image_score": float(target.max()) if len(target) else 0.0})
        return out

    # --- validation -----------------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self._val_preds, self._val_targets, self._val_labels = [], [], {}

    def validation_step(self, batch: tuple[list, list, list], batch_idx: int) -> None:
        _, targets, metas = batch
        self._val_preds.extend(self.predict_step(batch, batch_idx))
        for target, meta in zip(targets, metas):
            self._val_labels[meta["image_id"]] = meta["label"]
            if meta["annotated"]:
                self._val_targets.append({"image_id": meta["image_id"],
                                          "boxes": _to_original(target["boxes"], meta).tolist(),
                                          "labels": (target["labels"].cpu().numpy() - 1).tolist()})

    def on_validation_epoch_end(self) -> None:

        if not self._val_preds:
            return
        metrics = detection_metrics(self._val_preds, self._val_targets, self.box_classes,
                                    target_class=self.target_class, image_labels=self._val_labels)
        nan = float("nan")
        self.log("val_map50", nan if metrics["map50"] is None else metrics["map50"], prog_bar=True)
        self.log("val_image_auroc", nan if metrics["image_auroc"] is None else metrics["image_auroc"])
        sens = metrics["sensitivity_at_fp"].get("1")
        self.log("val_sensitivity_at_1fp", nan if sens is None else sens)

    # --- optimisation ---------------------------------------------------------------------------------
    def configure_optimizers(self) -> Any:
        o = self.recipe.optim
        params = [p for p in self.parameters() if p.requires_grad]
        if o.name == "sgd":
            optimizer = torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
        elif o.name == "adam":
            optimizer = torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
        else:
            optimizer = torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
        if o.schedule == "none":
            return optimizer
        if o.schedule == "cosine":
            epochs = max(1, self.trainer.max_epochs or 1)
            scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
        steps = max(2, int(self.trainer.estimated_stepping_batches))
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=o.lr, total_steps=steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}


def pseudo_label(teacher: WristDetector, datamodule: Any,
                 threshold: float | None = None) -> dict[str, list[Box]]:
    """Predict target-class boxes for the unboxed positive training images of ``datamodule``.

    Keeps boxes with score >= ``threshold`` (default ``recipe.supervision.pseudo_threshold``); when none
    passes, keeps the single top-scoring box, because the image label says the finding is there. Images where
    the teacher finds no target-class box at all get no entry (they stay out of the box loss).

    Returns:
        image_id -> boxes in original pixels with ``label`` = the target class index.
    """
    thr = teacher.recipe.supervision.pseudo_threshold if threshold is None else float(threshold)
    rows = datamodule.unboxed_positive_rows("train")
    out: dict[str, list[Box]] = {}
    if not rows:
        return out
    was_training = teacher.training
    teacher.eval()
    with torch.no_grad(), score_floor(teacher.model, 0.0):
        for batch in datamodule.rows_loader(rows):
            images = [im.to(teacher.device) for im in batch[0]]
            for pred in teacher.predict_step((images, batch[1], batch[2])):
                boxes = np.asarray(pred["boxes"], dtype=np.float64).reshape(-1, 4)
                scores, labels = np.asarray(pred["scores"]), np.asarray(pred["labels"])
                mine = np.flatnonzero(labels == teacher.target_id)
                if not len(mine):
                    continue
                keep = mine[scores[mine] >= thr]
                if not len(keep):
                    keep = mine[[int(np.argmax(scores[mine]))]]
                out[pred["image_id"]] = [Box(*map(float, boxes[k]), label=teacher.target_id) for k in keep]
    teacher.train(was_training)
    return out
