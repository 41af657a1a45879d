"""Confounders: find shortcuts, measure how much a model relies on them.

For a confounder (chest drain, ruler, hospital...) and a model's scores this module reports, per group of
the confounder, the error rates at the operating threshold and the AUROC inside the group; AUROCs that pit
positives of one group against negatives of another (a drain-free pneumothorax against a drain-bearing
control is the case a drain detector gets wrong); the excess false-positive and true-positive rates of the
confounder-positive group; and the dependence of the score on the confounder given the label (see
:mod:`.dependence`). Selection metrics that do not reward the shortcut, ``worst_group_auroc`` and
``group_balanced_auroc``, come from here too.

Group values are reported as strings: integral floats lose their ``.0`` (a column with missing values is
read as float), missing values (None, NaN) are counted and either form the group ``"missing"`` or are
dropped (``missing="own_group"`` / ``"drop"``). Undefined values are None with a note saying why.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.stats.contingency import association
from sklearn.metrics import roc_auc_score

from ..errors import RecipeError
from ._utils import as_1d, check_same_length, fnum, jsonable
from .dependence import dependence_tests, encode_confounder
from .metrics import auroc

__all__ = ["confounder_metrics", "confounder_association", "group_keys", "positive_level", "MISSING"]

MISSING = "missing"
_POSITIVE_WORDS = {"1", "true", "yes", "y", "present", "positive", "pos"}
_MAX_CROSS_GROUPS = 10


# ---------------------------------------------------------------------------------------------- group values


def _is_missing(value: Any) -> bool:
    return value is None or (not isinstance(value, str) and bool(pd.isna(value)))


def _key(value: Any) -> str:
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    return str(value)


def group_keys(group) -> tuple[np.ndarray, np.ndarray]:
    """String keys for the group values and a mask of missing ones (key ``"missing"``)."""
    values = as_1d(np.asarray(list(group), dtype=object), "group")
    missing = np.array([_is_missing(v) for v in values], dtype=bool)
    keys = np.array([MISSING if m else _key(v) for v, m in zip(values, missing)], dtype=object)
    return keys, missing


def _numeric(keys: np.ndarray) -> np.ndarray | None:
    try:
        return np.array([float(k == "True") if k in ("True", "False") else float(k) for k in keys])
    except ValueError:
        return None


def _sorted_levels(keys: np.ndarray) -> list[str]:
    levels = sorted(set(keys.tolist()) - {MISSING})
    numeric = _numeric(np.array(levels, dtype=object))
    if numeric is not None:
        levels = [lv for _, lv in sorted(zip(numeric, levels))]
    return levels


def positive_level(levels: list[str]) -> str | None:
    """The confounder-positive value of a binary confounder: 1/True/"yes"..., else the larger code.

    Example:
        >>> positive_level(["no", "yes"]), positive_level(["0", "1"]), positive_level(["2", "7"])
        ('yes', '1', '7')
    """
    if len(levels) != 2:
        return None
    words = [lv for lv in levels if lv.lower() in _POSITIVE_WORDS]
    if len(words) == 1:
        return words[0]
    return levels[-1]  # levels are sorted (numerically when they are numbers)


# --------------------------------------------------------------------------------------------- group metrics


def _rate_or_note(hits: int, n: int, what: str, rate: str, key: str, min_size: int,
                  notes: list[str]) -> float | None:
    if n < min_size:
        notes.append(f"group {key} has {n} {what} (< {min_size}): {rate} undefined")
        return None
    return hits / n


def _per_group(y: np.ndarray, score: np.ndarray, keys: np.ndarray, levels: list[str], threshold: float | None,
               min_size: int, notes: list[str]) -> dict[str, dict[str, float | None]]:
    out: dict[str, dict[str, float | None]] = {"fpr": {}, "tpr": {}, "auroc": {}}
    if threshold is None:
        notes.append("no threshold given: FPR and TPR by group undefined")
    for key in levels:
        m = keys == key
        pos, neg = y & m, ~y & m
        n_pos, n_neg = int(pos.sum()), int(neg.sum())
        pred = score >= threshold if threshold is not None else None
        out["fpr"][key] = None if pred is None else _rate_or_note(int((pred & neg).sum()), n_neg, "negatives",
                                                                  "FPR", key, min_size, notes)
        out["tpr"][key] = None if pred is None else _rate_or_note(int((pred & pos).sum()), n_pos, "positives",
                                                                  "TPR", key, min_size, notes)
        if min(n_pos, n_neg) < min_size:
            notes.append(f"group {key} has {n_pos} positives and {n_neg} negatives (< {min_size}): "
                         "AUROC undefined")
            out["auroc"][key] = None
        else:
            out["auroc"][key] = auroc(y[m], score[m])
    return out


def _cross_group_auroc(y: np.ndarray, score: np.ndarray, keys: np.ndarray, levels: list[str],
                       min_size: int, notes: list[str]) -> dict[str, float | None]:
    if len(levels) > _MAX_CROSS_GROUPS:
        notes.append(f"{len(levels)} groups (> {_MAX_CROSS_GROUPS}): cross-group AUROC skipped")
        return {}
    out: dict[str, float | None] = {}
    for a in levels:
        pos = y & (keys == a)
        for b in levels:
            neg = ~y & (keys == b)
            name = f"pos|{a} vs neg|{b}"
            if min(pos.sum(), neg.sum()) < min_size:
                out[name] = None
                continue
            sel = pos | neg
            out[name] = auroc(y[sel], score[sel])
    return out


def _reliance(by_group: dict[str, dict[str, float | None]], levels: list[str],
              notes: list[str]) -> dict[str, float | None] | None:
    pos_key = positive_level(levels)
    if pos_key is None:
        notes.append(f"reliance needs a binary confounder ({len(levels)} values); see fpr_by_group")
        return None
    neg_key = next(lv for lv in levels if lv != pos_key)
    out: dict[str, float | None] = {}
    for rate in ("fpr", "tpr"):
        p, n = by_group[rate].get(pos_key), by_group[rate].get(neg_key)
        out[f"{rate}_confounder_pos"], out[f"{rate}_confounder_neg"] = p, n
        out[f"excess_{rate}"] = p - n if p is not None and n is not None else None
    return out


def group_balanced_auroc(y: np.ndarray, score: np.ndarray, keys: np.ndarray) -> float | None:
    """AUROC with every label x confounder cell weighted equally (each row by 1 / its cell's size), so that a
    score which ranks by the confounder gains nothing from the confounder's association with the label.
    None when only one label is present."""
    y = np.asarray(y, dtype=bool)
    keys = np.asarray(keys)
    if y.all() or not y.any():
        return None
    cells = np.char.add(np.where(y, "1|", "0|").astype(str), keys.astype(str))
    _, inverse, counts = np.unique(cells, return_inverse=True, return_counts=True)
    weights = 1.0 / counts[inverse]
    return float(roc_auc_score(y, score, sample_weight=weights))


# ------------------------------------------------------------------------------------------------ dependence


def _dependence(y: np.ndarray, score: np.ndarray, keys: np.ndarray, missing: np.ndarray, levels: list[str],
                n_permutations: int, seed: int, notes: list[str]) -> tuple[dict | None, dict | None]:
    if len(levels) < 2:
        notes.append("constant: nothing to measure")
        return None, None
    present = ~missing
    if missing.any():
        notes.append(f"dependence measured on the {int(present.sum())} rows with a confounder value")
    values = keys[present]
    pos_key = positive_level(levels)
    numeric = (values == pos_key).astype(float) if pos_key is not None else _numeric(values)
    if numeric is None:
        notes.append(f"partial_correlation needs a binary or numeric confounder ({len(levels)} categories)")
    enc = encode_confounder(values.astype(str), numeric)
    return dependence_tests(score[present], enc, y[present], n_permutations=n_permutations, seed=seed)


# ---------------------------------------------------------------------------------------------- entry points


def confounder_metrics(y_true, score, group, threshold: float | None, *, positive_label: Any = 1,
                       n_permutations: int = 200, seed: int = 0, min_group_size: int = 5,
                       missing: str = "own_group") -> dict[str, Any]:
    """Per-group error rates, cross-group AUROCs, reliance and dependence of ``score`` on ``group``.

    Args:
        y_true: labels; ``y_true == positive_label`` is the positive class.
        score: the model's score for the positive class.
        group: the confounder value per row (None/NaN = missing).
        threshold: operating threshold (``score >= threshold`` is positive), None to skip FPR/TPR.
        n_permutations: permutations for the dependence p-values (0 to skip them).
        seed: seed of the permutations.
        min_group_size: fewest negatives (positives) a group needs for its FPR (TPR); AUROC needs both.
        missing: ``"own_group"`` (missing values form group ``"missing"``) or ``"drop"``.

    Returns:
        JSON-ready dict: ``n``, ``n_missing``, ``missing``, ``groups`` {value: n}, ``positive_value``,
        ``fpr_by_group``, ``tpr_by_group``, ``auroc_by_group``, ``cross_group_auroc``
        {"pos|a vs neg|b": AUROC of group-a positives against group-b negatives}, ``reliance``,
        ``dependence``, ``dependence_p``, ``worst_group_auroc``, ``group_balanced_auroc``, ``notes``.
    """
    if missing not in ("own_group", "drop"):
        raise RecipeError(f"unknown missing-value policy '{missing}'", where="argument 'missing'",
                          fix="use 'own_group' or 'drop'")
    y = as_1d(y_true, "y_true") == positive_label
    score = as_1d(score, "score", dtype=float)
    keys, is_missing = group_keys(group)
    check_same_length(y_true=y, score=score, group=keys)
    notes: list[str] = []
    n_missing = int(is_missing.sum())
    if n_missing and missing == "drop":
        notes.append(f"{n_missing} rows with a missing confounder value dropped")
        keep = ~is_missing
        y, score, keys, is_missing = y[keep], score[keep], keys[keep], is_missing[keep]
    elif n_missing:
        notes.append(f"{n_missing} rows with a missing confounder value form the group '{MISSING}'")
    levels = _sorted_levels(keys)
    all_groups = levels + ([MISSING] if is_missing.any() else [])
    by_group = _per_group(y, score, keys, all_groups, threshold, min_group_size, notes)
    dependence, dependence_p = _dependence(y, score, keys, is_missing, levels, n_permutations, seed, notes)
    group_aurocs = [v for v in by_group["auroc"].values() if v is not None]
    result = {
        "n": int(len(y)),
        "n_missing": n_missing,
        "missing": missing,
        "groups": {k: int(np.sum(keys == k)) for k in all_groups},
        "positive_value": positive_level(levels),
        "threshold": fnum(threshold),
        "fpr_by_group": by_group["fpr"],
        "tpr_by_group": by_group["tpr"],
        "auroc_by_group": by_group["auroc"],
        "cross_group_auroc": _cross_group_auroc(y, score, keys, all_groups, min_group_size, notes),
        "reliance": _reliance(by_group, levels, notes) if len(levels) >= 2 else None,
        "dependence": dependence,
        "dependence_p": dependence_p,
        "worst_group_auroc": min(group_aurocs) if group_aurocs else None,
        "group_balanced_auroc": group_balanced_auroc(y, score, keys),
        "notes": notes,
    }
    return jsonable(result)


def confounder_association(y, group, *, positive_label: Any = 1) -> dict[str, Any]:
    """How well the confounder alone predicts the label: AUROC and Cramér's V (missing values dropped).

    The AUROC scores each row by its confounder value (binary: 1 = confounder-positive; numeric: the value;
    categorical: the label rate of its category, an in-sample upper bound). 0.5 = no association.

    Example:
        >>> out = confounder_association([0, 0, 1, 1], ["no", "no", "yes", "yes"])
        >>> out["auroc"], out["cramers_v"]
        (1.0, 1.0)
    """
    y = as_1d(y, "y") == positive_label
    keys, is_missing = group_keys(group)
    check_same_length(y=y, group=keys)
    y, keys = y[~is_missing], keys[~is_missing]
    levels = _sorted_levels(keys)
    if len(levels) < 2 or y.all() or not y.any():
        return {"auroc": None, "cramers_v": None, "n": int(len(y)),
                "notes": ["constant confounder or one label: nothing to measure"]}
    pos_key = positive_level(levels)
    score = (keys == pos_key).astype(float) if pos_key is not None else _numeric(keys)
    if score is None:
        rates = {lv: y[keys == lv].mean() for lv in levels}
        score = np.array([rates[k] for k in keys])
    table = np.array([[np.sum((keys == lv) & (y == c)) for c in (False, True)] for lv in levels])
    return {"auroc": auroc(y, score), "cramers_v": fnum(association(table, method="cramer")),
            "n": int(len(y)), "notes": []}
