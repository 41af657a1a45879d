"""Frozen detection metrics against hand-computed values and an independent COCO implementation."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from clinagent_lab.errors import DataValidationError
from clinagent_lab.evaluation.detection import box_iou, detection_metrics, match_detections

CLASSES = ["fracture", "text", "metal"]


def _pred(image_id, boxes, scores, labels):
    return {"image_id": image_id, "boxes": boxes, "scores": scores, "labels": labels}


def _gt(image_id, boxes, labels):
    return {"image_id": image_id, "boxes": boxes, "labels": labels}


def test_map50_one_hit_one_miss_is_51_over_101() -> None:
    # Ranked: TP (precision 1, recall 0.5), then FP. COCO's 101-point interpolated precision is 1 at the 51
    # recall points 0.00..0.50 and 0 at the 50 points 0.51..1.00: AP = 51/101, not 0.5.
    preds = [_pred("a", [[0, 0, 10, 10]], [0.9], [0]), _pred("b", [[20, 20, 30, 30]], [0.8], [0])]
    targets = [_gt("a", [[0, 0, 10, 10]], [0]), _gt("b", [[40, 40, 50, 50]], [0])]
    m = detection_metrics(preds, targets, CLASSES)
    assert m["map50"] == pytest.approx(51 / 101, abs=1e-6)
    assert m["primary"] == m["map50"]
    assert m["ap50_per_class"] == {"fracture": pytest.approx(51 / 101, abs=1e-6), "text": None, "metal": None}
    assert m["n_images"] == 2 and m["n_lesions"] == 2


def test_map50_iou_threshold_is_inclusive_of_half_overlap() -> None:
    # [0,0,10,10] vs [0,0,10,20]: IoU exactly 0.5 counts as a hit at IoU 0.5.
    assert box_iou(np.array([[0, 0, 10, 10]]), np.array([[0, 0, 10, 20]]))[0, 0] == pytest.approx(0.5)
    target = [_gt("a", [[0, 0, 10, 20]], [0])]
    m = detection_metrics([_pred("a", [[0, 0, 10, 10]], [0.9], [0])], target, CLASSES)
    assert m["map50"] == pytest.approx(1.0)
    m = detection_metrics([_pred("a", [[0, 0, 10, 9]], [0.9], [0])], target, CLASSES)
    assert m["map50"] == pytest.approx(0.0)


def test_per_class_ap_and_mean_over_classes_with_ground_truth() -> None:
    preds = [_pred("a", [[0, 0, 10, 10], [30, 30, 40, 40]], [0.9, 0.7], [0, 1]),
             _pred("b", [[0, 0, 8, 8]], [0.6], [2])]            # metal predicted where there is none
    targets = [_gt("a", [[0, 0, 10, 10], [60, 60, 70, 70]], [0, 1]), _gt("b", [], [])]
    m = detection_metrics(preds, targets, CLASSES)
    assert m["ap50_per_class"]["fracture"] == pytest.approx(1.0)
    assert m["ap50_per_class"]["text"] == pytest.approx(0.0)
    assert m["ap50_per_class"]["metal"] is None                # no ground truth: undefined, not 0
    assert m["map50"] == pytest.approx(0.5)
    assert m["ap50_target"] == pytest.approx(1.0)


def test_no_annotated_images_gives_undefined_map() -> None:
    m = detection_metrics([_pred("a", [[0, 0, 1, 1]], [0.5], [0])], [], CLASSES)
    assert m["map50"] is None and m["primary"] is None and m["n_images"] == 0
    assert m["sensitivity_at_fp"] == {"0.5": None, "1": None, "2": None}


def test_images_without_predictions_count_as_misses() -> None:
    preds = [_pred("a", [[0, 0, 10, 10]], [0.9], [0])]
    targets = [_gt("a", [[0, 0, 10, 10]], [0]), _gt("b", [[0, 0, 10, 10]], [0])]
    m = detection_metrics(preds, targets, CLASSES)
    assert m["map50"] == pytest.approx(51 / 101, abs=1e-6)


def test_sensitivity_at_false_positives_per_image_by_hand() -> None:
    # image a: lesions L1, L2; predictions TP(L1) .9, duplicate on L1 .85 (ignored), FP .8, TP(L2) .6
    # image b: lesion L3; predictions FP .7, TP(L3) .3.   3 lesions, 2 images.
    # threshold .9: sens 1/3, FP/img 0 | .8: 1/3, .5 | .7: 1/3, 1 | .6: 2/3, 1 | .3: 3/3, 1
    preds = [_pred("a", [[0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]],
                   [0.9, 0.85, 0.8, 0.6], [0, 0, 0, 0]),
             _pred("b", [[40, 40, 50, 50], [5, 5, 15, 15]], [0.7, 0.3], [0, 0])]
    targets = [_gt("a", [[0, 0, 10, 10], [20, 20, 30, 30]], [0, 0]), _gt("b", [[5, 5, 15, 15]], [0])]
    m = detection_metrics(preds, targets, CLASSES, fp_per_image=(0.25, 0.5, 1, 2))
    assert m["sensitivity_at_fp"] == {"0.25": pytest.approx(1 / 3), "0.5": pytest.approx(1 / 3),
                                      "1": pytest.approx(1.0), "2": pytest.approx(1.0)}
    assert m["n_lesions"] == 3


def test_sensitivity_ignores_other_classes() -> None:
    # a confident text box elsewhere is no fracture false positive
    preds = [_pred("a", [[50, 50, 60, 60], [0, 0, 10, 10]], [0.99, 0.5], [1, 0])]
    targets = [_gt("a", [[0, 0, 10, 10]], [0])]
    m = detection_metrics(preds, targets, CLASSES, fp_per_image=(0,))
    assert m["sensitivity_at_fp"] == {"0": 1.0}


def test_match_detections_statuses() -> None:
    status = match_detections(np.array([[0, 0, 10, 10], [1, 0, 11, 10], [30, 30, 40, 40]], dtype=float),
                              np.array([0.5, 0.9, 0.7]), np.array([[0, 0, 10, 10]], dtype=float))
    assert status.tolist() == [-1, 1, 0]  # the higher-scored overlapping box takes the lesion


def test_image_auroc_matches_sklearn_on_max_target_score() -> None:
    rng = np.random.default_rng(0)
    preds, labels, expected = [], {}, []
    for i in range(30):
        n = int(rng.integers(0, 4))
        cls = rng.integers(0, 3, size=n).tolist()
        scores = rng.random(n).round(3).tolist()
        preds.append(_pred(str(i), [[0, 0, 5, 5]] * n, scores, cls))
        labels[str(i)] = int(rng.random() < 0.5)
        expected.append(max([s for s, c in zip(scores, cls) if c == 0], default=0.0))
    labels["29"] = -1  # unknown label: left out
    m = detection_metrics(preds, [], CLASSES, image_labels=labels)
    y = [labels[str(i)] for i in range(29)]
    assert m["image_auroc"] == pytest.approx(roc_auc_score(y, expected[:29]))
    assert m["n_auroc_images"] == 29
    one_class = detection_metrics(preds, [], CLASSES, image_labels={k: 1 for k in labels})
    assert one_class["image_auroc"] is None


def test_map50_matches_pycocotools_on_random_boxes() -> None:
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(7)
    preds, targets = [], []
    images, annotations, detections = [], [], []
    for i in range(8):
        n = int(rng.integers(1, 4))
        xy = rng.uniform(0, 40, size=(n, 2))
        wh = rng.uniform(5, 20, size=(n, 2))
        gt = np.c_[xy, xy + wh]
        gl = rng.integers(0, 3, size=n)
        jitter = gt + rng.normal(0, 3, size=gt.shape)
        extra = np.c_[rng.uniform(0, 40, size=(2, 2)), rng.uniform(45, 60, size=(2, 2))]
        pb = np.r_[jitter, extra]
        pl = np.r_[gl, rng.integers(0, 3, size=2)]
        ps = rng.random(len(pb)).round(4)
        targets.append(_gt(f"im{i}", gt.tolist(), gl.tolist()))
        preds.append(_pred(f"im{i}", pb.tolist(), ps.tolist(), pl.tolist()))
        images.append({"id": i, "width": 64, "height": 64})
        for b, c in zip(gt, gl):
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": int(c),
                                "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]],
                                "area": float((b[2] - b[0]) * (b[3] - b[1])), "iscrowd": 0})
        for b, c, s in zip(pb, pl, ps):
            detections.append({"image_id": i, "category_id": int(c), "score": float(s),
                               "bbox": [b[0], b[1], b[2] - b[0], b[3] - b[1]]})
    coco = COCO()
    coco.dataset = {"images": images, "annotations": annotations, "categories": [{"id": k} for k in range(3)]}
    coco.createIndex()
    evaluator = COCOeval(coco, coco.loadRes(detections), "bbox")
    evaluator.params.iouThrs = np.array([0.5])
    evaluator.evaluate()
    evaluator.accumulate()
    # axes: IoU (.5), 101 recalls, classes, area range (all), max detections (100)
    precision = evaluator.eval["precision"][0, :, :, 0, -1]
    per_class = [float(precision[:, k][precision[:, k] > -1].mean()) for k in range(3)]
    m = detection_metrics(preds, targets, CLASSES)
    assert [m["ap50_per_class"][c] for c in CLASSES] == pytest.approx(per_class, abs=1e-6)
    assert m["map50"] == pytest.approx(np.mean(per_class), abs=1e-6)


def test_bad_inputs_raise_clear_errors() -> None:
    with pytest.raises(DataValidationError, match="not a box class"):
        detection_metrics([], [], CLASSES, target_class="tumour")
    with pytest.raises(DataValidationError, match="N x 4"):
        detection_metrics([_pred("a", [[0, 0, 1]], [0.5], [0])], [_gt("a", [[0, 0, 1, 1]], [0])], CLASSES)
    with pytest.raises(DataValidationError, match="differ in length"):
        detection_metrics([_pred("a", [[0, 0, 1, 1]], [0.5, 0.4], [0])], [_gt("a", [[0, 0, 1, 1]], [0])],
                          CLASSES)
