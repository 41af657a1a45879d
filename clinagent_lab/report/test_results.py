"""The ``test`` section: the once-only test evaluation of the best iteration, with its uncertainty.

Point estimates are the ones stored in ``session.json`` (``final_test.metrics``); intervals are computed by
:mod:`.stats`; ``templates/sections/test.html.j2`` lays it out. Before the final test the section says so plainly and shows nothing that looks like a test
result: validation numbers chose the model and are optimistic about it.
"""

from __future__ import annotations

from typing import Any

from .context import ReportContext
from .figures import reliability_figure, roc_figure
from .markup import fmt, traced
from .stats import target_index

__all__ = ["METRIC_LABELS", "operating_point_text", "test_section"]

METRIC_LABELS = {
    "primary": "primary metric",
    "auroc": "AUROC",
    "auroc_macro": "AUROC (macro, one-vs-rest)",
    "sensitivity": "sensitivity",
    "specificity": "specificity",
    "ppv": "positive predictive value",
    "npv": "negative predictive value",
    "balanced_accuracy": "balanced accuracy",
    "accuracy": "accuracy",
    "f1": "F1",
    "f1_macro": "F1 (macro)",
    "map50": "mAP@0.5",
    "image_auroc": "image-level AUROC",
}

_RULES = {
    "youden": "Youden's J (the threshold maximising sensitivity + specificity − 1)",
    "at_specificity": "the highest sensitivity with specificity ≥ {value}",
    "at_sensitivity": "the highest specificity with sensitivity ≥ {value}",
    "fixed": "a fixed threshold of {value}",
}

_FINAL = ["final_test", "metrics"]
#: confounders with more distinct values than this get no per-value table
MAX_GROUP_ROWS = 12


def operating_point_text(rule: str, value: float | None) -> str:
    """The operating-point rule in words."""
    return _RULES.get(rule, rule).format(value=fmt(value))


def _metric_rows(ctx: ReportContext) -> list[dict[str, Any]]:
    final = ctx.session.final_test
    best_pos = ctx.position(final.iteration)
    val = ctx.session.iterations[best_pos].val_metrics
    m = final.metrics
    names = [k for k in ("primary", "auroc", "auroc_macro", "map50", "sensitivity", "specificity", "ppv", "npv",
                         "balanced_accuracy", "accuracy", "f1", "f1_macro") if k in m and
             isinstance(m[k], (int, float)) and not isinstance(m[k], bool)]
    rows = []
    for key in names:
        label = METRIC_LABELS.get(key, key)
        if key == "primary":
            label = f"primary: {m.get('primary_metric', '')}"
        ci = ctx.intervals.get(key)
        rows.append({"key": key, "label": label, "test": traced(m[key], _FINAL + [key]),
                     "low": ci.low if ci is not None else None, "high": ci.high if ci is not None else None,
                     "validation": traced(val.get(key), ["iterations", best_pos, "val_metrics", key])
                     if key in val else "—"})
    return rows


def _ci_note(ctx: ReportContext) -> str:
    if ctx.settings is None:
        return "No bootstrap intervals: the test predictions are not a classification table."
    s = ctx.settings
    return (f"95% intervals: percentile bootstrap, {s.n_resamples} resamples (seed {s.seed}), resampling "
            f"{ctx.inputs.groups_source}; the threshold chosen on validation is held fixed. Resamples on "
            "which a metric is undefined (for example no positive case drawn) are skipped.")


def _operating(ctx: ReportContext) -> list[tuple[str, Any]]:
    final = ctx.session.final_test
    best_pos = ctx.position(final.iteration)
    it = ctx.session.iterations[best_pos]
    cfg, val, m = it.recipe.evaluation, it.val_metrics, final.metrics
    vsrc = ["iterations", best_pos, "val_metrics"]
    return [("rule (chosen on the validation split)", operating_point_text(cfg.operating_point, cfg.operating_value)),
            ("threshold (score ≥ threshold is called positive)", traced(val.get("threshold"), vsrc + ["threshold"])),
            ("validation sensitivity / specificity",
             [traced(val.get("sensitivity"), vsrc + ["sensitivity"]), " / ",
              traced(val.get("specificity"), vsrc + ["specificity"])]),
            ("test sensitivity / specificity at that threshold",
             [traced(m.get("sensitivity"), _FINAL + ["sensitivity"]), " / ",
              traced(m.get("specificity"), _FINAL + ["specificity"])])]


def _confusion(ctx: ReportContext) -> dict[str, Any] | None:
    """Header, rows and caption of the confusion matrix, or None."""
    m, classes = ctx.session.final_test.metrics, ctx.session.best().recipe.classes
    if isinstance(m.get("confusion"), dict):
        c, src = m["confusion"], _FINAL + ["confusion"]
        neg, pos = classes[0], classes[1]
        rows = [[f"true {neg}", traced(c["tn"], src + ["tn"]), traced(c["fp"], src + ["fp"])],
                [f"true {pos}", traced(c["fn"], src + ["fn"]), traced(c["tp"], src + ["tp"])]]
        return {"header": ["", f"predicted {neg}", f"predicted {pos}"], "rows": rows,
                "caption": "confusion matrix at the validation threshold"}
    if isinstance(m.get("confusion_matrix"), list):
        cm = m["confusion_matrix"]
        rows = [[f"true {classes[i]}"] + [traced(v, _FINAL + ["confusion_matrix", i, j]) for j, v in enumerate(row)]
                for i, row in enumerate(cm)]
        return {"header": [""] + [f"predicted {c}" for c in classes], "rows": rows,
                "caption": "confusion matrix (most probable class)"}
    return None


def _per_class(ctx: ReportContext) -> list[list[Any]]:
    per = ctx.session.final_test.metrics.get("per_class")
    if not isinstance(per, dict):
        return []
    return [[name] + [traced(v.get(k), _FINAL + ["per_class", name, k])
                      for k in ("auroc", "sensitivity", "specificity", "support")] for name, v in per.items()]


def _calibration(ctx: ReportContext) -> dict[str, Any] | None:
    cal = ctx.session.final_test.metrics.get("calibration")
    if not isinstance(cal, dict):
        return None
    src = _FINAL + ["calibration"]
    rel = cal.get("reliability") or {}
    pairs = [("expected calibration error (ECE, 10 bins)", traced(cal.get("ece"), src + ["ece"])),
             ("calibration slope (1 = ideal; < 1 over-confident)", traced(cal.get("slope"), src + ["slope"])),
             ("calibration intercept (0 = ideal)", traced(cal.get("intercept"), src + ["intercept"]))]
    edges = rel.get("bin_edges") or []
    rows = [[f"{edges[i]:.1f}–{edges[i + 1]:.1f}"]
            + [traced(rel[k][i], src + ["reliability", k, i]) for k in ("counts", "mean_predicted", "observed_fraction")]
            for i in range(len(edges) - 1) if rel["counts"][i]]
    return {"figure": reliability_figure(rel), "pairs": pairs, "rows": rows}


def _group_rows(conf: dict[str, Any], src: list[Any]) -> list[list[Any]]:
    rows = []
    for g in conf.get("groups") or {}:
        rows.append([g, traced(conf["groups"][g], src + ["groups", g])]
                    + [traced((conf.get(k) or {}).get(g), src + [k, g])
                       for k in ("fpr_by_group", "tpr_by_group", "auroc_by_group")])
    return rows


def _confounder(name: str, conf: dict[str, Any], src: list[Any]) -> dict[str, Any]:
    if "groups" not in conf:
        return {"name": name, "measured": False, "notes": conf.get("notes") or []}
    groups = conf.get("groups") or {}
    rel = conf.get("reliance") or {}
    summary: list[tuple[str, Any]] = [
        ("worst-group AUROC", traced(conf.get("worst_group_auroc"), src + ["worst_group_auroc"])),
        ("group-balanced AUROC", traced(conf.get("group_balanced_auroc"), src + ["group_balanced_auroc"]))]
    if rel:
        summary += [(f"excess false-positive rate when {name} = {conf.get('positive_value')}",
                     traced(rel.get("excess_fpr"), src + ["reliance", "excess_fpr"])),
                    (f"excess sensitivity when {name} = {conf.get('positive_value')}",
                     traced(rel.get("excess_tpr"), src + ["reliance", "excess_tpr"]))]
    dep, dep_p = conf.get("dependence") or {}, conf.get("dependence_p") or {}
    for measure in dep:
        summary.append((f"dependence of the score on {name} given the label: {measure.replace('_', ' ')} (p)",
                        [traced(dep[measure], src + ["dependence", measure]), " (p ",
                         traced(dep_p.get(measure), src + ["dependence_p", measure]), ")"]))
    return {"name": name, "measured": True, "n_groups": len(groups),
            "group_rows": _group_rows(conf, src) if len(groups) <= MAX_GROUP_ROWS else None,
            "summary": summary, "notes": conf.get("notes") or []}


def _roc(ctx: ReportContext) -> dict[str, Any] | None:
    if ctx.roc is None:
        return None
    m = ctx.session.final_test.metrics
    sens, spec = m.get("sensitivity"), m.get("specificity")
    operating = (1 - spec, sens) if isinstance(sens, (int, float)) and isinstance(spec, (int, float)) else None
    recipe = ctx.session.best().recipe
    return {"figure": roc_figure(ctx.roc, operating, fmt(m.get("auroc"))),
            "target": recipe.classes[target_index(recipe)]}


def _validation_only(ctx: ReportContext) -> dict[str, Any]:
    best = ctx.session.best()
    if best is None:
        return {"tested": False, "best": None}
    pos, val = ctx.position(best.index), best.val_metrics
    pairs = [(METRIC_LABELS.get(k, k), traced(val[k], ["iterations", pos, "val_metrics", k]))
             for k in ("primary", "auroc", "sensitivity", "specificity", "balanced_accuracy")
             if isinstance(val.get(k), (int, float))]
    return {"tested": False, "best": best.index, "pairs": pairs}


def test_section(ctx: ReportContext) -> dict[str, Any]:
    s = ctx.session
    final = s.final_test
    if final is None:
        return _validation_only(ctx)
    out: dict[str, Any] = {"tested": True, "final": final, "test_reads": s.test_reads,
                           "metrics": _metric_rows(ctx), "ci_note": _ci_note(ctx),
                           "classification": ctx.inputs.predictions is not None,
                           "notes": final.metrics.get("notes") or []}
    if out["classification"]:
        confs = final.metrics.get("confounders") or {}
        out.update(roc=_roc(ctx), operating=_operating(ctx), confusion=_confusion(ctx), per_class=_per_class(ctx),
                   calibration=_calibration(ctx),
                   confounders=[_confounder(n, c, _FINAL + ["confounders", n]) for n, c in confs.items()])
    return out


test_section.__test__ = False  # not a pytest test, despite its name
