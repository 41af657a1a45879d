"""Keep or discard: the decision rule that compares an iteration with the best so far.

The value compared is the evaluator's ``selection_value`` (the primary metric, or a metric a shortcut cannot
inflate when a confounder is to be mitigated). Constraints come first: with a mitigated confounder, an
iteration must rely on it less than the baseline did; clinician bounds (FPR in a group) must hold.
"""

from __future__ import annotations

from typing import Any

from ..records import Annotation, Iteration
from ..spec import TaskSpec

__all__ = ["selection_value", "reliance_score", "constraint_violations", "decide", "TRADE_TOLERANCE"]

#: how much selection value a mitigation may give up, relative to a best iteration that relies on a shortcut
TRADE_TOLERANCE = 0.02


def selection_value(metrics: dict[str, Any]) -> float | None:
    for key in ("selection_value", "primary"):
        value = metrics.get(key)
        if isinstance(value, (int, float)):
            return float(value)
    return None


def reliance_score(metrics: dict[str, Any], confounder: str) -> float | None:
    """|within-label correlation of the score with the confounder| + max(excess FPR, 0); None if undefined."""
    conf = (metrics.get("confounders") or {}).get(confounder) or {}
    corr = (conf.get("dependence") or {}).get("partial_correlation")
    excess = (conf.get("reliance") or {}).get("excess_fpr")
    if corr is None and excess is None:
        return None
    return abs(corr or 0.0) + max(excess or 0.0, 0.0)


def constraint_violations(it: Iteration, spec: TaskSpec, baseline: Iteration | None,
                          annotations: list[Annotation]) -> list[str]:
    out: list[str] = []
    if baseline is not None and baseline.index != it.index:
        for conf in spec.mitigated_confounders():
            base, new = reliance_score(baseline.val_metrics, conf.name), reliance_score(it.val_metrics, conf.name)
            if base is not None and new is not None and new >= base:
                out.append(f"relies on {conf.name} no less than the baseline (reliance {new:.3f} vs {base:.3f})")
    for a in annotations:
        if a.kind != "group_fpr_bound":
            continue
        conf = (it.val_metrics.get("confounders") or {}).get(str(a.value.get("confounder"))) or {}
        fpr = (conf.get("fpr_by_group") or {}).get(str(a.value.get("group")))
        bound = float(a.value.get("max_fpr", 1.0))
        if isinstance(fpr, (int, float)) and fpr > bound:
            out.append(f"FPR {fpr:.2f} in {a.value.get('confounder')}={a.value.get('group')} exceeds the "
                       f"clinician's bound {bound:.2f}")
    return out


def decide(it: Iteration, best: Iteration | None, baseline: Iteration | None, spec: TaskSpec,
           annotations: list[Annotation]) -> tuple[str, str]:
    """Return (decision, reason) for a finished iteration."""
    if it.status != "ok":
        return "failed", f"iteration ended with status '{it.status}'; the best iteration is unchanged"
    value = selection_value(it.val_metrics)
    if value is None:
        return "failed", "the evaluator returned no selection value"
    if best is None:
        return "baseline", f"first successful iteration: the baseline (selection value {value:.4f})"
    best_value = selection_value(best.val_metrics)
    best_value = float("-inf") if best_value is None else best_value
    violations = constraint_violations(it, spec, baseline, annotations)
    if violations:
        return "discarded", "constraint not met: " + "; ".join(violations)
    if value > best_value:
        return "kept", f"selection value {value:.4f} > best {best_value:.4f} (iteration {best.index})"
    # the best may break a bound the clinician set after it was kept (the baseline included: the reliance
    # comparison skips an iteration compared with itself, the clinician's bounds do not)
    best_violations = constraint_violations(best, spec, baseline, annotations)
    relied = [c.name for c in spec.mitigated_confounders() if _relies(best, c.name)]
    if (relied or best_violations) and value >= best_value - TRADE_TOLERANCE:
        gain = (f"less reliance on {', '.join(relied)} than iteration {best.index}, which relies on the shortcut"
                if relied else f"meeting the constraints iteration {best.index} breaks ("
                               f"{'; '.join(best_violations)})")
        return "kept", (f"traded {best_value - value:.4f} of selection value ({value:.4f} vs {best_value:.4f}) "
                        f"for {gain}")
    return "discarded", f"selection value {value:.4f} ≤ best {best_value:.4f} (iteration {best.index})"


def _relies(it: Iteration, name: str) -> bool:
    from .refiner import confounder_relies

    return confounder_relies(it.val_metrics, name)[0]
