"""Keep or discard: the decision rule that compares an iteration with the best so far.

The value compared is the evaluator's ``selection_value`` (the primary metric, or a metric a shortcut cannot
inflate when a confounder is to be mitigated). Constraints come first: with a mitigated confounder, an
iteration must rely on it less than the baseline did; clinician bounds (FPR in a group) must hold.

Then the difference to the best so far is judged against validation noise: the paired bootstrap interval of
the difference (:func:`clinagent_lab.evaluation.paired_difference_ci`, whole patients resampled where the
predictions carry patient ids; the recipe's ``evaluation.bootstrap`` resamples and seed) from both
iterations' ``val_predictions.csv``. The rule, stated in every rationale:

1. better beyond noise (the interval above 0): kept;
2. the best relies on a mitigated shortcut or breaks a clinician's bound, and the candidate gives up at most
   ``TRADE_TOLERANCE``: kept for the lower reliance (or for meeting the bound);
3. within noise (the interval covers 0): a tie, which goes to the **less reliant** model (reliance on a
   mitigated confounder lower by at least ``RELIANCE_MARGIN``), otherwise to the best so far (keeping it
   changes nothing; a change needs evidence);
4. worse beyond noise: discarded.

Without both prediction tables (or with ``evaluation.bootstrap = 0``) the point values are compared, and the
rationale says that no interval was computed.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ClinagentError
from ..records import Annotation, Iteration
from ..spec import TaskSpec
from .refiner import confounder_relies

__all__ = ["selection_value", "reliance_score", "constraint_violations", "decide", "difference_to_best",
           "format_difference", "TRADE_TOLERANCE", "RELIANCE_MARGIN", "PREDICTIONS_FILE"]

log = logging.getLogger(__name__)

#: how much selection value a mitigation may give up, relative to a best iteration that relies on a shortcut
TRADE_TOLERANCE = 0.02
#: how much lower a candidate's reliance must be to win a tie on it
RELIANCE_MARGIN = 0.02
#: the validation predictions an iteration writes into its output folder
PREDICTIONS_FILE = "val_predictions.csv"
_METRIC_NAMES = {"group_balanced_auroc": "group-balanced AUROC", "worst_group_auroc": "worst-group AUROC",
                 "auroc": "AUROC"}


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


def _predictions(it: Iteration) -> Any:
    if not it.output_dir:
        return None
    path = Path(it.output_dir) / PREDICTIONS_FILE
    return pd.read_csv(path) if path.is_file() else None


def difference_to_best(it: Iteration, best: Iteration, spec: TaskSpec) -> Any:
    """Paired bootstrap interval (:class:`~clinagent_lab.evaluation.BootstrapCI`) of ``it``'s selection value
    minus ``best``'s on validation, or None without both prediction tables or with bootstrapping off."""
    from ..evaluation.compare import paired_difference_ci  # scikit-learn: only when deciding

    cfg = it.recipe.evaluation
    if cfg.bootstrap <= 0:
        return None
    candidate, reference = _predictions(it), _predictions(best)
    if candidate is None or reference is None:
        return None
    confounders = {c.name: c.column for c in spec.confounders if c.column and c.column in candidate.columns}
    try:
        return paired_difference_ci(candidate, reference, list(it.recipe.classes), cfg, confounders=confounders,
                                    n_resamples=cfg.bootstrap, seed=it.recipe.seed)
    except (ClinagentError, KeyError, ValueError) as exc:  # unreadable tables: decide on the point values
        log.warning("no interval for iteration %d vs %d: %s", it.index, best.index, exc)
        return None


def _signed(x: float) -> str:
    digits = 3 if x == 0 or abs(x) >= 0.0005 else 4  # a bound just off zero must not read as zero
    return f"{x:+.{digits}f}".replace("-", "\u2212")


def format_difference(ci: Any, metric: str | None) -> str:
    """``"group-balanced AUROC difference −0.001, 95 % CI −0.012 to +0.009"`` (None: no interval)."""
    name = _METRIC_NAMES.get(metric or "", metric or "selection value")
    if ci is None or ci.point is None:
        return f"{name}: no interval (paired validation predictions missing or bootstrap off)"
    if ci.low is None or ci.high is None:
        return f"{name} difference {_signed(ci.point)} (interval undefined)"
    return (f"{name} difference {_signed(ci.point)}, {ci.confidence:.0%} CI {_signed(ci.low)} to "
            f"{_signed(ci.high)}").replace("%", " %")


def _less_reliant(it: Iteration, best: Iteration, spec: TaskSpec) -> str | None:
    """``"chest_drain (0.110 vs 0.480)"`` when ``it`` relies on a mitigated confounder clearly less."""
    for conf in spec.mitigated_confounders():
        new, old = reliance_score(it.val_metrics, conf.name), reliance_score(best.val_metrics, conf.name)
        if new is not None and old is not None and new <= old - RELIANCE_MARGIN:
            return f"{conf.name} ({new:.3f} vs {old:.3f})"
    return None


def decide(it: Iteration, best: Iteration | None, baseline: Iteration | None, spec: TaskSpec,
           annotations: list[Annotation]) -> tuple[str, str]:
    """Return (decision, reason) for a finished iteration (the rule is in the module docstring)."""
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
    ci = difference_to_best(it, best, spec)
    noise = format_difference(ci, it.val_metrics.get("selection_metric"))
    if ci is not None and ci.low is not None and ci.high is not None:
        better, worse = ci.low > 0, ci.high < 0
    else:  # no interval: the point values decide
        better, worse = value > best_value, value < best_value
    versus = f"iteration {best.index}"
    points = f"selection value {value:.4f} %s best {best_value:.4f} ({versus})"
    if better:
        beyond = " beyond validation noise" if ci is not None else ""
        return "kept", f"{points % '>'}{beyond}; {noise}"
    # the best may break a bound the clinician set after it was kept (the baseline included: the reliance
    # comparison skips an iteration compared with itself, the clinician's bounds do not)
    best_violations = constraint_violations(best, spec, baseline, annotations)
    relied = [c.name for c in spec.mitigated_confounders() if _relies(best, c.name)]
    if (relied or best_violations) and value >= best_value - TRADE_TOLERANCE:
        gain = (f"less reliance on {', '.join(relied)} than {versus}, which relies on the shortcut"
                if relied else f"meeting the constraints {versus} breaks ({'; '.join(best_violations)})")
        if value >= best_value:  # higher, though not beyond validation noise: nothing was given up
            return "kept", (f"kept for {gain}; selection value {value:.4f} vs {best_value:.4f}, higher but within "
                            f"validation noise; {noise}")
        return "kept", (f"traded {best_value - value:.4f} of selection value ({value:.4f} vs {best_value:.4f}) "
                        f"for {gain}; {noise}")
    if not worse:
        lower = _less_reliant(it, best, spec)
        if lower is not None:
            return "kept", f"kept for lower reliance on {lower}, within validation noise; {noise}"
        return "discarded", (f"{points % '≤'}, not better beyond validation noise; a tie goes to the less "
                             f"reliant model, else to the best so far; {noise}")
    return "discarded", f"{points % '≤'}, worse beyond validation noise; {noise}"


def _relies(it: Iteration, name: str) -> bool:
    return confounder_relies(it.val_metrics, name)[0]
