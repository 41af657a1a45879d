"""The frozen evaluator: one entry point from a predictions table to the metrics that decide keep/discard.

Notebooks write their predictions as a table (``image_id``, ``label``, ``prob_<class>`` per class and the
confounder columns); the engine and the notebooks both call :func:`evaluate_predictions` on it, so the
numbers a clinician sees are the numbers that steer the search. Iterations cannot change this code:
:func:`evaluator_hash` fingerprints the package source and the engine refuses results from another one.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataValidationError, UnknownNameError
from ..recipe import EvalConfig
from ..tasks import GROUP_SELECTION_METRICS  # selection metrics read from the confounder results
from ._utils import fnum, jsonable
from .bootstrap import bootstrap_ci
from .calibration import calibration_slope_intercept, expected_calibration_error, reliability_curve
from .confounders import confounder_metrics
from .metrics import classification_metrics, target_class_index

__all__ = ["EVALUATOR_VERSION", "GROUP_SELECTION_METRICS", "evaluator_hash", "evaluate_predictions"]

EVALUATOR_VERSION = "1"



def evaluator_hash() -> str:
    """sha256 over the evaluation package's ``.py`` files (relative name and bytes, sorted by name)."""
    digest = hashlib.sha256()
    root = Path(__file__).resolve().parent
    for path in sorted(root.rglob("*.py")):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()


def _column(pred: pd.DataFrame, name: str, purpose: str) -> pd.Series:
    if name not in pred.columns:
        raise DataValidationError(f"predictions have no column '{name}' ({purpose})",
                                  where=f"predictions column '{name}'",
                                  fix=f"write '{name}' in the predictions table; columns present: "
                                      f"{', '.join(map(str, pred.columns))}")
    return pred[name]


def _arrays(pred: pd.DataFrame, classes: list[str]) -> tuple[np.ndarray, np.ndarray]:
    label = _column(pred, "label", "the true class index")
    if label.isna().any():
        raise DataValidationError(f"{int(label.isna().sum())} rows have no label", where="predictions column "
                                  "'label'", fix="evaluate only labelled images")
    probs = np.column_stack([_column(pred, f"prob_{c}", f"probability of '{c}'").to_numpy(float)
                             for c in classes]) if classes else np.zeros((len(pred), 0))
    return label.to_numpy().astype(np.int64), probs


def _confounders(pred: pd.DataFrame, y: np.ndarray, probs: np.ndarray, k: int | None, threshold: float | None,
                 mapping: dict[str, str], n_permutations: int, seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, column in mapping.items():
        values = _column(pred, column, f"confounder '{name}'")
        if k is None:
            out[name] = {"notes": ["multiclass task without a target class (metric_params.class): "
                                   "confounder metrics skipped"]}
            continue
        out[name] = confounder_metrics(y == k, probs[:, k], values.to_numpy(object), threshold,
                                       positive_label=True, n_permutations=n_permutations, seed=seed)
    return out


def _selection(cfg: EvalConfig, metrics: dict[str, Any], conf: dict[str, Any],
               mapping: dict[str, str]) -> dict[str, Any]:
    name = cfg.selection_metric or cfg.primary_metric
    if name == cfg.primary_metric:
        return {"selection_metric": name, "selection_value": metrics["primary"]}
    if name in GROUP_SELECTION_METRICS:
        first = next(iter(mapping), None)
        value = conf.get(first, {}).get(name) if first is not None else None
        if value is not None:
            return {"selection_metric": name, "selection_value": value, "selection_confounder": first}
        why = "no confounder column given" if first is None else f"{name} undefined for '{first}'"
        return {"selection_metric": cfg.primary_metric, "selection_value": metrics["primary"],
                "selection_note": f"{why}: selected on the primary metric instead"}
    if isinstance(metrics.get(name), (int, float)) and not isinstance(metrics.get(name), bool):
        return {"selection_metric": name, "selection_value": metrics[name]}
    known = list(GROUP_SELECTION_METRICS) + [k for k, v in metrics.items() if isinstance(v, float)]
    raise UnknownNameError("selection metric", name, known)


def _metrics(y: np.ndarray, probs: np.ndarray, classes: list[str], cfg: EvalConfig,
             threshold: float | None) -> dict[str, Any]:
    return classification_metrics(y, probs, classes, positive_class=cfg.positive_class,
                                  primary=cfg.primary_metric, metric_params=cfg.metric_params,
                                  operating_point=cfg.operating_point, operating_value=cfg.operating_value,
                                  threshold=threshold)


def _intervals(y: np.ndarray, probs: np.ndarray, classes: list[str], cfg: EvalConfig, metrics: dict[str, Any],
               groups: np.ndarray | None, seed: int) -> dict[str, Any]:
    target_threshold = metrics.get("threshold")

    def primary(yy: np.ndarray, pp: np.ndarray) -> float | None:
        return _metrics(yy, pp, classes, cfg, target_threshold)["primary"]

    ci = bootstrap_ci(primary, y, probs, groups=groups, n_resamples=cfg.bootstrap, seed=seed)
    return {"primary": ci.to_dict() | {"resampled": "patients" if groups is not None else "rows"}}


def _calibration(y_k: np.ndarray, p_k: np.ndarray) -> dict[str, Any]:
    slope, intercept = calibration_slope_intercept(y_k, p_k)
    return {"ece": expected_calibration_error(y_k, p_k), "slope": slope, "intercept": intercept,
            "reliability": reliability_curve(y_k, p_k).to_dict()}


def evaluate_predictions(pred: pd.DataFrame, classes: list[str], eval_cfg: EvalConfig | dict[str, Any], *,
                         confounders: dict[str, str] | None = None, threshold: float | None = None,
                         n_permutations: int = 200, seed: int = 0,
                         patient_column: str | None = "patient_id") -> dict[str, Any]:
    """Evaluate one split's predictions the way every iteration is judged.

    Args:
        pred: one row per image with ``label`` (class index), ``prob_<class>`` per class and the confounder
            columns.
        classes: class names, in index order.
        eval_cfg: the recipe's evaluation section (primary metric, operating point, bootstrap, selection).
        confounders: confounder name -> column in ``pred``; the first one is the one selection uses for
            ``worst_group_auroc`` / ``group_balanced_auroc``.
        threshold: a fixed threshold (the validation one, when evaluating the test split).
        n_permutations: permutations for the confounder dependence p-values.
        seed: seed for permutations and bootstrap.
        patient_column: when this column is present, bootstrap intervals resample whole patients.

    Returns:
        JSON-ready dict: the classification metrics (:func:`classification_metrics`), ``confounders``
        {name: :func:`confounder_metrics`}, ``calibration`` of the target class, ``ci`` (bootstrap interval
        of the primary metric, when ``eval_cfg.bootstrap > 0``), ``selection_metric`` and
        ``selection_value`` (what decides keep/discard), ``evaluator_version`` and ``evaluator_hash``.
    """
    cfg = eval_cfg if isinstance(eval_cfg, EvalConfig) else EvalConfig.model_validate(eval_cfg)
    mapping = dict(confounders or {})
    y, probs = _arrays(pred, classes)
    metrics = _metrics(y, probs, classes, cfg, threshold)
    k = target_class_index(classes, cfg.metric_params, cfg.positive_class)
    result = dict(metrics)
    result["confounders"] = _confounders(pred, y, probs, k, metrics.get("threshold"), mapping,
                                         n_permutations, seed)
    if k is not None:
        result["calibration"] = _calibration(y == k, probs[:, k])
    if cfg.bootstrap > 0:
        groups = pred[patient_column].to_numpy() if patient_column and patient_column in pred else None
        result["ci"] = _intervals(y, probs, classes, cfg, metrics, groups, seed)
    result.update(_selection(cfg, metrics, result["confounders"], mapping))
    result["selection_value"] = fnum(result["selection_value"])
    result["evaluator_version"] = EVALUATOR_VERSION
    result["evaluator_hash"] = evaluator_hash()
    return jsonable(result)
