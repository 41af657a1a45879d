"""Frozen detection metrics: mAP@50 (COCO, per class), FROC-style sensitivity at fixed false positives per
image, and image-level AUROC of the target class.

Boxes are ``(x1, y1, x2, y2)`` in pixels; labels are indices into ``box_classes``. Predictions and targets are
lists of dicts (``image_id``, ``boxes``, ``labels`` and, for predictions, ``scores``); they are paired by
``image_id`` (by position when ids are absent). mAP counts only the images in ``targets`` (the images that
have box annotations); predictions for other images are ignored there but still count for the image-level
AUROC when ``image_labels`` covers them.

Example:
    >>> preds = [{"image_id": "a", "boxes": [[0, 0, 10, 10]], "scores": [0.9], "labels": [0]},
    ...          {"image_id": "b", "boxes": [[20, 20, 30, 30]], "scores": [0.8], "labels": [0]}]
    >>> targets = [{"image_id": "a", "boxes": [[0, 0, 10, 10]], "labels": [0]},
    ...            {"image_id": "b", "boxes": [[40, 40, 50, 50]], "labels": [0]}]
    >>> m = detection_metrics(preds, targets, ["fracture"])
    >>> round(m["map50"], 4)  # COCO 101-point interpolation: precision 1 up to recall 0.5 -> 51/101
    0.505
    >>> m["sensitivity_at_fp"]["0.5"]
    0.5
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..errors import DataValidationError
from ._utils import fnum

__all__ = ["detection_metrics", "mean_average_precision", "froc_sensitivity", "image_scores", "box_iou",
           "match_detections", "IOU_THRESHOLD"]

IOU_THRESHOLD = 0.5


def _boxes(value: Any, where: str) -> np.ndarray:
    arr = np.asarray([] if value is None else value, dtype=np.float64)
    if arr.size == 0:
        return np.zeros((0, 4))
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise DataValidationError(f"boxes must be N x 4, got shape {arr.shape}", where=where,
                                  fix="pass boxes as [[x1, y1, x2, y2], ...]")
    return arr


def _entry(item: Mapping[str, Any], where: str, with_scores: bool) -> dict[str, np.ndarray]:
    boxes = _boxes(item.get("boxes"), where)
    labels = np.asarray(item.get("labels", []), dtype=np.int64).reshape(-1)
    out = {"boxes": boxes, "labels": labels}
    if with_scores:
        out["scores"] = np.asarray(item.get("scores", []), dtype=np.float64).reshape(-1)
    lengths = {k: len(v) for k, v in out.items()}
    if len(set(lengths.values())) > 1:
        raise DataValidationError(f"boxes, labels and scores differ in length: {lengths}", where=where,
                                  fix="pass one label (and one score) per box")
    return out


def _pair(preds: Sequence[Mapping[str, Any]], targets: Sequence[Mapping[str, Any]]
          ) -> tuple[list[str], list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
    """Targets' image ids with the matching prediction (empty when an image has none) and target."""
    if all("image_id" in t for t in targets) and all("image_id" in p for p in preds):
        by_id = {str(p["image_id"]): p for p in preds}
        ids = [str(t["image_id"]) for t in targets]
        paired = [by_id.get(i, {}) for i in ids]
    else:
        if len(preds) != len(targets):
            raise DataValidationError(f"{len(preds)} predictions for {len(targets)} targets and no image ids",
                                      where="detection_metrics",
                                      fix="add image_id to predictions and targets")
        ids, paired = [str(i) for i in range(len(targets))], list(preds)
    p = [_entry(x, f"prediction for image {i}", True) for i, x in zip(ids, paired)]
    t = [_entry(x, f"target for image {i}", False) for i, x in zip(ids, targets)]
    return ids, p, t


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix (len(a) x len(b)) of ``x1, y1, x2, y2`` boxes.

    Example:
        >>> box_iou(np.array([[0, 0, 2, 2]]), np.array([[1, 0, 3, 2]])).round(4).tolist()
        [[0.3333]]
    """
    import torch  # the training stack takes seconds to import
    from torchvision.ops import box_iou as _box_iou  # the training stack takes seconds to import

    a, b = np.asarray(a, dtype=np.float64).reshape(-1, 4), np.asarray(b, dtype=np.float64).reshape(-1, 4)
    iou = _box_iou(torch.from_numpy(a), torch.from_numpy(b)).numpy()
    return np.nan_to_num(iou, nan=0.0)  # degenerate (zero-area) pairs: no overlap


def mean_average_precision(preds: list[dict[str, np.ndarray]], targets: list[dict[str, np.ndarray]],
                           n_classes: int) -> tuple[float | None, list[float | None]]:
    """COCO mAP at IoU 0.5 (torchmetrics, faster_coco_eval backend) and AP per class index.

    A class without ground-truth boxes has AP None; mAP averages the classes that have some (None if none do).
    """
    import torch  # the training stack takes seconds to import
    from torchmetrics.detection import MeanAveragePrecision  # the training stack takes seconds to import

    if not any(len(t["labels"]) for t in targets):
        return None, [None] * n_classes
    metric = MeanAveragePrecision(iou_type="bbox", iou_thresholds=[IOU_THRESHOLD], class_metrics=True,
                                  backend="faster_coco_eval")
    metric.update(
        [{"boxes": torch.as_tensor(p["boxes"], dtype=torch.float32),
          "scores": torch.as_tensor(p["scores"], dtype=torch.float32),
          "labels": torch.as_tensor(p["labels"], dtype=torch.int64)} for p in preds],
        [{"boxes": torch.as_tensor(t["boxes"], dtype=torch.float32),
          "labels": torch.as_tensor(t["labels"], dtype=torch.int64)} for t in targets])
    result = metric.compute()
    per_class: list[float | None] = [None] * n_classes
    classes = result["classes"].reshape(-1).tolist()
    values = result["map_per_class"].reshape(-1).tolist()
    for c, v in zip(classes, values):
        if 0 <= int(c) < n_classes and v >= 0:
            per_class[int(c)] = float(v)
    overall = float(result["map"])
    return (overall if overall >= 0 else None), per_class


def match_detections(pred_boxes: np.ndarray, pred_scores: np.ndarray, gt_boxes: np.ndarray,
                     iou_threshold: float = IOU_THRESHOLD) -> np.ndarray:
    """Per prediction: 1 true positive, 0 false positive, -1 ignored (another hit on an already found lesion).

    Predictions are taken in descending score order; each goes to the unmatched lesion it overlaps most
    (IoU >= ``iou_threshold``). As in FROC analyses (LUNA16), further hits on a found lesion neither count as
    finding it again nor as false positives.
    """
    status = np.zeros(len(pred_scores), dtype=np.int64)
    if not len(gt_boxes) or not len(pred_scores):
        return status
    iou = box_iou(pred_boxes, gt_boxes)
    found = np.zeros(len(gt_boxes), dtype=bool)
    for i in np.argsort(-pred_scores, kind="stable"):
        hits = iou[i] >= iou_threshold
        if not hits.any():
            continue
        free = np.where(hits & ~found, iou[i], -1.0)
        if free.max() >= 0:
            found[int(free.argmax())] = True
            status[i] = 1
        else:
            status[i] = -1
    return status


def froc_sensitivity(preds: list[dict[str, np.ndarray]], targets: list[dict[str, np.ndarray]], class_id: int,
                     fp_per_image: Sequence[float], iou_threshold: float = IOU_THRESHOLD
                     ) -> tuple[dict[str, float | None], int]:
    """Lesion-level sensitivity of class ``class_id`` at each mean number of false positives per image.

    Sweeps the score threshold; at each allowed FP rate ``f``, reports the highest sensitivity of any
    threshold whose false positives per image do not exceed ``f``. Returns the values (keyed ``str(f)``) and
    the lesion count; values are None when there are no lesions.
    """
    n_images = len(targets)
    scores_all, status_all = [], []
    n_lesions = 0
    for p, t in zip(preds, targets):
        keep = p["labels"] == class_id
        gt = t["boxes"][t["labels"] == class_id]
        n_lesions += len(gt)
        scores_all.append(p["scores"][keep])
        status_all.append(match_detections(p["boxes"][keep], p["scores"][keep], gt, iou_threshold))
    keys = [_fp_key(f) for f in fp_per_image]
    if n_lesions == 0 or n_images == 0:
        return {k: None for k in keys}, n_lesions
    scores = np.concatenate(scores_all) if scores_all else np.zeros(0)
    status = np.concatenate(status_all) if status_all else np.zeros(0, dtype=np.int64)
    order = np.argsort(-scores, kind="stable")
    scores, status = scores[order], status[order]
    tp, fp = np.cumsum(status == 1), np.cumsum(status == 0)
    last = np.r_[scores[1:] != scores[:-1], True] if len(scores) else np.zeros(0, dtype=bool)
    sens = np.r_[0.0, tp[last] / n_lesions]          # threshold above every score: nothing detected
    fppi = np.r_[0.0, fp[last] / n_images]
    return {k: float(sens[fppi <= f].max()) for k, f in zip(keys, fp_per_image)}, n_lesions


def _fp_key(value: float) -> str:
    return f"{float(value):g}"


def image_scores(preds: Sequence[Mapping[str, Any]], class_id: int) -> dict[str, float]:
    """image_id -> highest score of a ``class_id`` box (0 when the image has none)."""
    out = {}
    for p in preds:
        labels = np.asarray(p.get("labels", []), dtype=np.int64).reshape(-1)
        scores = np.asarray(p.get("scores", []), dtype=np.float64).reshape(-1)
        chosen = scores[labels == class_id]
        out[str(p["image_id"])] = float(chosen.max()) if len(chosen) else 0.0
    return out


def _image_auroc(preds: Sequence[Mapping[str, Any]], image_labels: Mapping[str, int], class_id: int
                 ) -> tuple[float | None, int]:
    from sklearn.metrics import roc_auc_score  # scikit-learn: heavy, only for this computation

    scores = image_scores(preds, class_id) if all("image_id" in p for p in preds) else {}
    ids = [i for i in scores if int(image_labels.get(i, -1)) in (0, 1)]
    y = np.array([int(image_labels[i]) for i in ids])
    if len(ids) == 0 or y.min() == y.max():
        return None, len(ids)
    return float(roc_auc_score(y, [scores[i] for i in ids])), len(ids)


def detection_metrics(preds: Sequence[Mapping[str, Any]], targets: Sequence[Mapping[str, Any]],
                      box_classes: Sequence[str], *, target_class: str = "fracture",
                      fp_per_image: Sequence[float] = (0.5, 1, 2),
                      image_labels: Mapping[str, int] | None = None) -> dict[str, Any]:
    """All detection metrics in one JSON-ready dict.

    Args:
        preds: per image ``{"image_id", "boxes", "scores", "labels"}``.
        targets: per *annotated* image ``{"image_id", "boxes", "labels"}`` (an empty list of boxes is an
            annotated image without findings).
        box_classes: class names; labels index into it.
        target_class: the class for sensitivity at FP and image AUROC (e.g. ``fracture``).
        fp_per_image: mean false positives per image at which to read sensitivity.
        image_labels: image_id -> 1/0 (-1 unknown) image-level labels for AUROC; default: from ``targets``
            (1 when the image has a ``target_class`` box).

    Returns:
        ``map50``, ``ap50_per_class`` {name: AP or None}, ``ap50_target``, ``sensitivity_at_fp`` {"0.5": ...},
        ``image_auroc`` (None if undefined), ``n_images`` (annotated images scored for mAP), ``n_lesions``,
        ``n_auroc_images``, ``target_class`` and ``primary`` (= map50).
    """
    names = list(box_classes)
    if target_class not in names:
        raise DataValidationError(f"target class '{target_class}' is not a box class",
                                  where="detection_metrics",
                                  fix=f"use one of {names}")
    class_id = names.index(target_class)
    ids, p, t = _pair(preds, targets)
    map50, per_class = mean_average_precision(p, t, len(names))
    sens, n_lesions = froc_sensitivity(p, t, class_id, fp_per_image)
    if image_labels is None:
        image_labels = {i: int((x["labels"] == class_id).any()) for i, x in zip(ids, t)}
    auroc, n_auroc = _image_auroc(preds, image_labels, class_id)
    ap = {name: fnum(v) for name, v in zip(names, per_class)}
    return {"map50": fnum(map50), "ap50_per_class": ap, "ap50_target": ap[target_class],
            "sensitivity_at_fp": sens, "image_auroc": auroc, "n_images": len(t), "n_lesions": int(n_lesions),
            "n_auroc_images": n_auroc, "target_class": target_class, "primary": fnum(map50)}
