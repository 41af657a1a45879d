"""Paired comparison of two models' validation predictions: the bootstrap interval of a metric's difference.

Both prediction tables are joined on ``image_id`` and the same rows (or, with patient ids, the same patients:
the cluster bootstrap of :func:`.bootstrap.bootstrap_ci`) are drawn for both models in every resample, so
the interval reflects how much the difference itself moves with the validation sample, not the scatter of
each model's metric on its own. The metric is the evaluator's selection value, computed as
:func:`.evaluate.evaluate_predictions` does (the primary metric at each model's own operating point, or the
first confounder's ``group_balanced_auroc`` / ``worst_group_auroc``) but without everything else it reports.

Example:
    >>> import numpy as np, pandas as pd
    >>> rng = np.random.default_rng(0)
    >>> y = rng.integers(0, 2, 200)
    >>> table = lambda p: pd.DataFrame({"image_id": range(200), "label": y, "prob_a": 1 - p, "prob_b": p})
    >>> good = np.clip(0.5 * y + 0.5 * rng.random(200), 0, 1)
    >>> same = np.clip(good + 0.01 * rng.standard_normal(200), 0, 1)
    >>> ci = paired_difference_ci(table(same), table(good), ["a", "b"], {"bootstrap": 0}, n_resamples=100)
    >>> ci.low < 0 < ci.high                         # a tiny difference is inside the noise
    True
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from ..errors import DataValidationError
from ..recipe import EvalConfig
from ._utils import fnum
from .bootstrap import BootstrapCI, bootstrap_ci
from .confounders import group_balanced_auroc, group_keys
from .metrics import classification_metrics, target_class_index

#: fewest positives and negatives a confounder group needs for its AUROC (as in ``confounder_metrics``)
MIN_GROUP_SIZE = 5

__all__ = ["PATIENT_COLUMNS", "paired_difference_ci", "patient_ids"]

#: columns that identify the patient of a prediction row, first found wins
PATIENT_COLUMNS = ("patient_id", "group_id")


def patient_ids(pred: pd.DataFrame) -> np.ndarray | None:
    """The patient id per row (:data:`PATIENT_COLUMNS`), or None when the table has none."""
    column = next((c for c in PATIENT_COLUMNS if c in pred.columns and pred[c].notna().all()), None)
    return None if column is None else pred[column].astype(str).to_numpy()


def _paired(candidate: pd.DataFrame, reference: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    for name, table in (("candidate", candidate), ("reference", reference)):
        if "image_id" not in table.columns:
            raise DataValidationError(f"{name} predictions have no 'image_id' column", where=f"{name} "
                                      "predictions", fix="write image_id with the predictions")
    ref = reference.drop_duplicates("image_id").set_index("image_id")
    cand = candidate.drop_duplicates("image_id").set_index("image_id")
    common = cand.index.intersection(ref.index)
    if len(common) < 2:
        raise DataValidationError(f"the two prediction tables share {len(common)} images", where="image_id",
                                  fix="compare predictions of the same validation split")
    return cand.loc[common].reset_index(), ref.loc[common].reset_index()


def _selection_function(cfg: EvalConfig, classes: list[str], confounders: dict[str, str]
                        ) -> Callable[[pd.DataFrame], float | None]:
    """``table -> selection value`` (None when undefined), mirroring ``evaluate._selection``."""
    from .evaluate import GROUP_SELECTION_METRICS  # evaluate imports this package: keep the import lazy

    name = cfg.selection_metric or cfg.primary_metric
    k = target_class_index(classes, cfg.metric_params, cfg.positive_class)
    column = next(iter(confounders.values()), None)
    if name in GROUP_SELECTION_METRICS and column is not None and k is not None:
        def group_value(table: pd.DataFrame) -> float | None:
            y = table["label"].to_numpy() == k
            score = table[f"prob_{classes[k]}"].to_numpy(float)
            keys, _ = group_keys(table[column].to_numpy(object))
            if name == "group_balanced_auroc":
                return group_balanced_auroc(y, score, keys)
            values = [float(roc_auc_score(y[keys == g], score[keys == g])) for g in np.unique(keys)
                      if min((y & (keys == g)).sum(), (~y & (keys == g)).sum()) >= MIN_GROUP_SIZE]
            return min(values) if values else None
        return group_value

    metric = cfg.primary_metric if name in GROUP_SELECTION_METRICS else name

    def plain_value(table: pd.DataFrame) -> float | None:
        y = table["label"].to_numpy().astype(np.int64)
        probs = np.column_stack([table[f"prob_{c}"].to_numpy(float) for c in classes])
        if len(np.unique(y)) < 2:
            return None
        m = classification_metrics(y, probs, classes, positive_class=cfg.positive_class,
                                   primary=cfg.primary_metric, metric_params=cfg.metric_params,
                                   operating_point=cfg.operating_point, operating_value=cfg.operating_value)
        v = m["primary"] if metric == cfg.primary_metric else m.get(metric)
        return fnum(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
    return plain_value


def paired_difference_ci(candidate: pd.DataFrame, reference: pd.DataFrame, classes: list[str],
                         eval_cfg: EvalConfig | dict[str, Any], *, confounders: dict[str, str] | None = None,
                         n_resamples: int = 200, confidence: float = 0.95, seed: int = 0) -> BootstrapCI:
    """Selection value of ``candidate`` minus that of ``reference``, with its paired bootstrap interval.

    Args:
        candidate: validation predictions of the new model (``image_id``, ``label``, ``prob_<class>``,
            confounder columns, optionally ``patient_id``/``group_id``).
        reference: those of the model it is compared with, on the same images.
        classes: class names in index order.
        eval_cfg: the evaluation section of the recipe (its ``selection_metric`` is the metric compared).
        confounders: confounder name -> column, as for :func:`.evaluate.evaluate_predictions`.
        n_resamples: bootstrap resamples.
        confidence: two-sided level of the interval.
        seed: seed of the resampling.

    Returns:
        :class:`.bootstrap.BootstrapCI` of the difference; ``n_skipped`` counts resamples on which either
        value was undefined. Whole patients are resampled when the candidate's table has patient ids.
    """
    cfg = eval_cfg if isinstance(eval_cfg, EvalConfig) else EvalConfig.model_validate(eval_cfg)
    cand, ref = _paired(candidate, reference)
    value = _selection_function(cfg, classes, confounders or {})

    def difference(_labels: np.ndarray, rows: np.ndarray) -> float | None:
        a, b = value(cand.iloc[rows]), value(ref.iloc[rows])
        return None if a is None or b is None else a - b

    rows = np.arange(len(cand))
    return bootstrap_ci(difference, cand["label"].to_numpy(), rows, groups=patient_ids(cand),
                        n_resamples=n_resamples, confidence=confidence, seed=seed)
