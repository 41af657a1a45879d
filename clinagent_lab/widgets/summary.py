"""What a clinician asks first of an iteration, in one sentence, and the full metric table folded away.

"At the chosen threshold (0.412): sensitivity 0.91 (95 % CI 0.86–0.95), specificity 0.78 (95 % CI 0.71–0.84);
12 of 117 negatives without chest drain flagged, 31 of 117 with chest drain." The intervals are Wilson score
intervals on the validation counts (scipy); the flagged counts come from the validation predictions at the
iteration's threshold, one clause per confounder of the spec.

Both are plain HTML, so an exported notebook (or one opened without a kernel) reads the same.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from ..evaluation.confounders import group_keys
from .templating import render
from .static import format_value

__all__ = ["clinician_sentence", "clinician_summary_html", "metric_table_html", "wilson_interval"]


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion ``k / n`` (None when ``n`` is 0).

    >>> [round(x, 3) for x in wilson_interval(45, 50)]
    [0.786, 0.957]
    """
    if n <= 0:
        return None
    from scipy.stats import binomtest  # scipy.stats takes a second to import: only when a sentence is written

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def _rate(name: str, k: int, n: int) -> str:
    ci = wilson_interval(k, n)
    if ci is None:
        return f"{name} n/a"
    return f"{name} {format_value(k / n, 2)} (95 % CI {format_value(ci[0], 2)}–{format_value(ci[1], 2)})"


def _flagged_clauses(predictions: pd.DataFrame, positive: int, score: str, threshold: float,
                     confounders: dict[str, Any], columns: dict[str, str]) -> list[str]:
    """'12 of 117 negatives without chest drain flagged, 31 of 117 with chest drain' per binary confounder."""
    out = []
    negative = predictions["label"].to_numpy() != positive
    flagged = predictions[score].to_numpy() >= threshold
    for name, entry in confounders.items():
        column = columns.get(name, name)
        if column not in predictions or not isinstance(entry, dict):
            continue
        keys, missing = group_keys(predictions[column])  # the evaluator's keys: 1.0 and 1 are both "1"
        marked = pd.Series(keys == str(entry.get("positive_value", 1)))
        known = ~missing
        words = name.replace("_", " ")
        parts = []
        for present, text in ((False, f"negatives without {words}"), (True, f"with {words}")):
            cell = negative & known & (marked.to_numpy() == present)
            parts.append(f"{int((flagged & cell).sum())} of {int(cell.sum())} {text}")
        out.append(f"{parts[0]} flagged, {parts[1]}")
    return out


def clinician_sentence(metrics: dict[str, Any], predictions: pd.DataFrame | None = None, *,
                       classes: list[str] | None = None, positive: int | None = None,
                       confounder_columns: dict[str, str] | None = None) -> str:
    """The sentence a clinician reads first (plain text); empty when the metrics carry no confusion counts.

    >>> clinician_sentence({"confusion": {"tp": 91, "fn": 9, "tn": 78, "fp": 22}, "threshold": 0.5})
    'At the chosen threshold (0.500): sensitivity 0.91 (95 % CI 0.84–0.95), specificity 0.78 (95 % CI 0.69–0.85).'
    """
    c = metrics.get("confusion") or {}
    if not all(isinstance(c.get(k), (int, float)) for k in ("tp", "fn", "tn", "fp")):
        return ""
    tp, fn, tn, fp = (int(c[k]) for k in ("tp", "fn", "tn", "fp"))
    threshold = metrics.get("threshold")
    where = f" ({format_value(float(threshold))})" if isinstance(threshold, (int, float)) else ""
    text = (f"At the chosen threshold{where}: {_rate('sensitivity', tp, tp + fn)}, "
            f"{_rate('specificity', tn, tn + fp)}")
    if predictions is not None and classes and positive is not None and isinstance(threshold, (int, float)):
        score = f"prob_{classes[positive]}"
        if score in predictions:
            clauses = _flagged_clauses(predictions, positive, score, float(threshold),
                                       metrics.get("confounders") or {}, confounder_columns or {})
            if clauses:
                text += "; " + "; ".join(clauses)
    return text + "."


def clinician_summary_html(title: str, sentence: str, extra: list[str]) -> str:
    """The heading, the sentence in bold type, then one muted line of the selection figures."""
    return render("summary.html.j2", title=title, sentence=sentence, extra=extra)


def _flat(prefix: str, value: Any, rows: list[tuple[str, str]]) -> None:
    if isinstance(value, dict):
        for k, v in value.items():
            _flat(f"{prefix}.{k}" if prefix else str(k), v, rows)
    elif isinstance(value, (int, float, np.floating)) and not isinstance(value, bool):
        rows.append((prefix, format_value(float(value), 4) if isinstance(value, float) else str(value)))
    elif isinstance(value, str) and len(value) < 80:
        rows.append((prefix, value))


def metric_table_html(metrics: dict[str, Any]) -> str:
    """Every validation metric, folded under a ``<details>`` (closed), one row per dotted key."""
    rows: list[tuple[str, str]] = []
    _flat("", {k: v for k, v in metrics.items() if k not in ("calibration",)}, rows)
    return render("metrics.html.j2", rows=rows)
