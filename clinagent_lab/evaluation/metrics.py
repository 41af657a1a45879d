"""Classification metrics for one set of predictions: AUROC, operating-point metrics, multiclass summaries.

AUROC comes from ``torchmetrics`` (imported when first needed, so importing this module stays light);
threshold-dependent counts are plain numpy. Every value in the returned dict is a Python float, int, str,
list or dict; a value that is undefined on these data (for example AUROC with one class present) is ``None``
and the reason is written to ``notes``. NaN never appears.

Primary metrics are looked up by name in :data:`PRIMARY_METRICS` (the names of ``spec.MetricName``
except the detection metric ``map50``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from sklearn.metrics import confusion_matrix, f1_score

from ..errors import DataValidationError, RecipeError, UnknownNameError
from ._utils import as_1d, fnum
from .operating_point import (
    choose_threshold,
    confusion_counts,
    sensitivity_at_specificity,
    specificity_at_sensitivity,
)

__all__ = [
    "auroc",
    "threshold_metrics",
    "binary_metrics",
    "classification_metrics",
    "target_class_index",
    "PRIMARY_METRICS",
]


def auroc(y, score) -> float | None:
    """Area under the ROC curve (``torchmetrics`` ``binary_auroc``); None when a class is absent.

    Example:
        >>> round(auroc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]), 4)
        0.75
        >>> auroc([1, 1], [0.2, 0.3]) is None
        True
    """
    y = as_1d(y, "y").astype(bool)
    if y.all() or not y.any():
        return None
    import torch  # the training stack takes seconds to import

    # the training stack takes seconds to import
    from torchmetrics.functional.classification import binary_auroc

    value = binary_auroc(torch.as_tensor(as_1d(score, "score", dtype=float)),
                         torch.as_tensor(y.astype(np.int64)), validate_args=False)
    return fnum(value.item())


def _ratio(num: float, den: float) -> float | None:
    return float(num) / float(den) if den > 0 else None


def threshold_metrics(y, score, threshold: float | None) -> dict[str, Any]:
    """Sensitivity, specificity, PPV, NPV, accuracy, balanced accuracy and F1 at ``score >= threshold``.

    All values are None when ``threshold`` is None; each is None when its denominator is zero.
    """
    keys = ("sensitivity", "specificity", "ppv", "npv", "accuracy", "balanced_accuracy", "f1")
    if threshold is None:
        return dict.fromkeys(keys) | {"confusion": None}
    c = confusion_counts(y, score, threshold)
    tp, fp, tn, fn = c["tp"], c["fp"], c["tn"], c["fn"]
    sens, spec = _ratio(tp, tp + fn), _ratio(tn, tn + fp)
    return {
        "sensitivity": sens,
        "specificity": spec,
        "ppv": _ratio(tp, tp + fp),
        "npv": _ratio(tn, tn + fn),
        "accuracy": _ratio(tp + tn, tp + tn + fp + fn),
        "balanced_accuracy": (sens + spec) / 2 if sens is not None and spec is not None else None,
        "f1": _ratio(2 * tp, 2 * tp + fp + fn),
        "confusion": c,
    }


def binary_metrics(y, score, *, operating_point: str = "youden", operating_value: float | None = None,
                   threshold: float | None = None) -> dict[str, Any]:
    """AUROC plus the operating-point metrics for a binary problem (``y`` truthy = positive).

    The threshold is chosen on these data by ``operating_point`` unless ``threshold`` is given (on the test
    split the engine passes the threshold chosen on validation).
    """
    y = as_1d(y, "y").astype(bool)
    score = as_1d(score, "score", dtype=float)
    if threshold is None:
        threshold = choose_threshold(y, score, operating_point, operating_value)
    out: dict[str, Any] = {"auroc": auroc(y, score), "threshold": fnum(threshold)}
    out.update(threshold_metrics(y, score, threshold))
    out["n"] = int(len(y))
    out["prevalence"] = _ratio(int(y.sum()), len(y))
    return out


# ------------------------------------------------------------------------------------------- primary metrics


@dataclass
class _Context:
    """What a primary-metric function may read."""

    result: dict[str, Any]
    target: dict[str, Any] | None  # binary metrics of the target class (binary task: the positive class)
    y: np.ndarray | None  # target-vs-rest labels
    score: np.ndarray | None  # target-class score
    notes: list[str] = field(default_factory=list)


def _param(params: dict[str, Any], key: str, metric: str) -> float:
    if key not in params:
        raise RecipeError(f"primary metric '{metric}' needs parameter '{key}'",
                          where="evaluation.metric_params", fix=f"add {key} (e.g. 0.8) to metric_params")
    return float(params[key])


def _need_target(ctx: _Context, metric: str) -> None:
    if ctx.target is None:
        raise RecipeError(f"primary metric '{metric}' needs a target class in a multiclass task",
                          where="evaluation.metric_params",
                          fix="add \"class\": <class name> to metric_params (or set positive_class)")


def _primary_auroc(ctx: _Context, params: dict[str, Any]) -> float | None:
    return ctx.target["auroc"] if ctx.target is not None else ctx.result.get("auroc_macro")


def _primary_sens_at_spec(ctx: _Context, params: dict[str, Any]) -> float | None:
    _need_target(ctx, "sensitivity_at_specificity")
    spec = _param(params, "specificity", "sensitivity_at_specificity")
    return sensitivity_at_specificity(ctx.y, ctx.score, spec)


def _primary_spec_at_sens(ctx: _Context, params: dict[str, Any]) -> float | None:
    _need_target(ctx, "specificity_at_sensitivity")
    sens = _param(params, "sensitivity", "specificity_at_sensitivity")
    return specificity_at_sensitivity(ctx.y, ctx.score, sens)


def _primary_balanced_accuracy(ctx: _Context, params: dict[str, Any]) -> float | None:
    return ctx.result.get("balanced_accuracy")


def _primary_f1(ctx: _Context, params: dict[str, Any]) -> float | None:
    return ctx.target["f1"] if ctx.target is not None else ctx.result.get("f1_macro")


#: Primary metric name -> function of (context, params). Multiclass without a target class: ``auroc`` is the
#: macro AUROC, ``f1`` the macro F1, ``balanced_accuracy`` sklearn's balanced accuracy of the argmax.
PRIMARY_METRICS: dict[str, Callable[[_Context, dict[str, Any]], float | None]] = {
    "auroc": _primary_auroc,
    "sensitivity_at_specificity": _primary_sens_at_spec,
    "specificity_at_sensitivity": _primary_spec_at_sens,
    "balanced_accuracy": _primary_balanced_accuracy,
    "f1": _primary_f1,
}


# ------------------------------------------------------------------------------------------------ multiclass


def _confusion_matrix(y: np.ndarray, pred: np.ndarray, n_classes: int) -> np.ndarray:
    return confusion_matrix(y, pred, labels=np.arange(n_classes))


def _per_class(y: np.ndarray, probs: np.ndarray, cm: np.ndarray, classes: list[str]) -> dict[str, Any]:
    n = int(cm.sum())
    out: dict[str, Any] = {}
    for k, name in enumerate(classes):
        support = int(cm[k].sum())
        tp = int(cm[k, k])
        fp = int(cm[:, k].sum()) - tp
        out[name] = {"auroc": auroc(y == k, probs[:, k]), "sensitivity": _ratio(tp, support),
                     "specificity": _ratio(n - support - fp, n - support), "support": support}
    return out


def _f1_macro(y: np.ndarray, pred: np.ndarray) -> float | None:
    """Macro F1 over the labels present in ``y`` or in the predictions (sklearn's default)."""
    return float(f1_score(y, pred, average="macro")) if len(y) else None


def _multiclass_summary(y: np.ndarray, probs: np.ndarray, classes: list[str],
                        notes: list[str]) -> dict[str, Any]:
    pred = probs.argmax(axis=1)
    cm = _confusion_matrix(y, pred, len(classes))
    per_class = _per_class(y, probs, cm, classes)
    aurocs = {name: v["auroc"] for name, v in per_class.items()}
    defined = [v for v in aurocs.values() if v is not None]
    missing = [name for name, v in aurocs.items() if v is None]
    if missing:
        notes.append(f"AUROC undefined for {', '.join(missing)} (class absent or alone); "
                     "auroc_macro averages the other classes")
    recalls = [v["sensitivity"] for v in per_class.values() if v["sensitivity"] is not None]
    return {
        "auroc_macro": float(np.mean(defined)) if defined else None,
        "balanced_accuracy": float(np.mean(recalls)) if recalls else None,
        "accuracy": _ratio(np.trace(cm), cm.sum()),
        "f1_macro": _f1_macro(y, pred),
        "per_class": per_class,
        "confusion_matrix": cm.tolist(),
        "n": int(len(y)),
    }


# ----------------------------------------------------------------------------------------------- entry point


def _check_inputs(y_true, probs, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    probs = np.asarray(probs, dtype=float)
    if probs.ndim != 2 or probs.shape[1] != len(classes):
        raise DataValidationError(f"probabilities have shape {probs.shape}, expected (N, {len(classes)})",
                                  where="argument 'probs'", fix="pass one column per class, in class order")
    if not np.isfinite(probs).all():
        raise DataValidationError("probabilities contain NaN or infinity", where="argument 'probs'",
                                  fix="check the model output for numerical problems")
    y = as_1d(y_true, "y_true")
    if len(y) != len(probs):
        raise DataValidationError(f"{len(y)} labels but {len(probs)} probability rows",
                                  where="arguments 'y_true'/'probs'", fix="pass one row per image")
    if len(y) and (not np.all(np.equal(np.mod(y, 1), 0)) or y.min() < 0 or y.max() >= len(classes)):
        raise DataValidationError(f"labels must be integers in [0, {len(classes) - 1}]",
                                  where="argument 'y_true'", fix="encode labels as class indices")
    return y.astype(np.int64), probs


def target_class_index(classes: list[str], metric_params: dict[str, Any] | None,
                       positive_class: int | None) -> int | None:
    """Index of the class the task targets: ``metric_params["class"]`` (a name), else ``positive_class``,
    else 1 for a binary task and None for a multiclass one."""
    params = metric_params or {}
    if positive_class is None and len(classes) == 2:
        positive_class = 1
    if "class" in params:
        name = params["class"]
        if name not in classes:
            raise UnknownNameError("class", str(name), list(classes))
        return classes.index(name)
    if positive_class is not None:
        if not 0 <= positive_class < len(classes):
            raise RecipeError(f"positive_class {positive_class} is out of range for {len(classes)} classes",
                              where="evaluation.positive_class", fix="use a class index")
        return int(positive_class)
    return None


def classification_metrics(y_true, probs, classes: list[str], *, positive_class: int | None = None,
                           primary: str = "auroc", metric_params: dict | None = None,
                           operating_point: str = "youden", operating_value: float | None = None,
                           threshold: float | None = None) -> dict[str, Any]:
    """All classification metrics for one split, as a JSON-ready dict.

    Binary (two classes): the score is ``probs[:, positive_class]`` (default 1); keys ``auroc``,
    ``threshold``, ``sensitivity``, ``specificity``, ``ppv``, ``npv``, ``accuracy``, ``balanced_accuracy``,
    ``f1``, ``confusion``, ``n``, ``prevalence``.

    Multiclass: ``auroc_macro`` (mean one-vs-rest AUROC over classes where it is defined),
    ``balanced_accuracy`` (as ``sklearn.metrics.balanced_accuracy_score`` of the argmax), ``accuracy``,
    ``f1_macro``, ``per_class`` {name: {auroc, sensitivity, specificity, support}} and ``confusion_matrix``.
    With a target class (``metric_params["class"]``, a class name, else ``positive_class``) the one-vs-rest
    ``auroc``, ``sensitivity``, ``specificity`` and ``threshold`` of that class are added at the top level and
    the full binary set under ``target``.

    Always: ``primary_metric`` (its name), ``primary`` (its value), the value again under its own name, and
    ``notes`` (why something is None).

    Example:
        >>> import numpy as np
        >>> p1 = np.array([0.1, 0.4, 0.35, 0.8])
        >>> m = classification_metrics([0, 0, 1, 1], np.c_[1 - p1, p1], ["benign", "malignant"])
        >>> m["auroc"], m["threshold"], m["sensitivity"], m["specificity"]
        (0.75, 0.8, 0.5, 1.0)
    """
    if primary not in PRIMARY_METRICS:
        raise UnknownNameError("classification metric", primary, list(PRIMARY_METRICS))
    params = dict(metric_params or {})
    y, probs = _check_inputs(y_true, probs, classes)
    notes: list[str] = []
    binary = len(classes) == 2
    k = target_class_index(classes, params, positive_class)
    result: dict[str, Any] = {} if binary else _multiclass_summary(y, probs, classes, notes)
    target = None
    y_k = score_k = None
    if k is not None:
        y_k, score_k = y == k, probs[:, k]
        target = binary_metrics(y_k, score_k, operating_point=operating_point,
                                operating_value=operating_value, threshold=threshold)
        if target["auroc"] is None:
            chosen = "" if threshold is not None else " and no threshold can be chosen"
            notes.append(f"only one class present for '{classes[k]}': AUROC is undefined{chosen}")
        if binary:
            result.update(target)
        else:
            result.update({key: target[key] for key in ("auroc", "sensitivity", "specificity", "threshold")})
            result["target"] = {"class": classes[k], **target}
    value = PRIMARY_METRICS[primary](_Context(result, target, y_k, score_k), params)
    result[primary] = fnum(value)
    result["primary_metric"] = primary
    result["primary"] = fnum(value)
    result["notes"] = notes
    return result
