"""The ``test`` section: the once-only test evaluation of the best iteration, with its uncertainty.

Point estimates are the ones stored in ``session.json`` (``final_test.metrics``); intervals are computed by
:mod:`.stats`. Before the final test the section says so plainly and shows nothing that looks like a test
result: validation numbers chose the model and are optimistic about it.
"""

from __future__ import annotations

from typing import Any

from .context import ReportContext
from .figures import reliability_figure, roc_figure
from .markup import Markup, bullets, ci_text, esc, fmt, h3, kv_table, note, num, para, table
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


def _metric_rows(ctx: ReportContext) -> list[list[Any]]:
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
        rows.append([label, num(m[key], _FINAL + [key]),
                     ci_text(ci.low, ci.high, key) if ci is not None else ci_text(None, None, key),
                     num(val.get(key), ["iterations", best_pos, "val_metrics", key]) if key in val else "—"])
    return rows


def _ci_note(ctx: ReportContext) -> Markup:
    if ctx.settings is None:
        return note("No bootstrap intervals: the test predictions are not a classification table.")
    s = ctx.settings
    return note(f"95% intervals: percentile bootstrap, {s.n_resamples} resamples (seed {s.seed}), resampling "
                f"{ctx.inputs.groups_source}; the threshold chosen on validation is held fixed. Resamples on "
                "which a metric is undefined (for example no positive case drawn) are skipped.")


def _operating(ctx: ReportContext) -> Markup:
    final = ctx.session.final_test
    best_pos = ctx.position(final.iteration)
    it = ctx.session.iterations[best_pos]
    cfg, val, m = it.recipe.evaluation, it.val_metrics, final.metrics
    vsrc = ["iterations", best_pos, "val_metrics"]
    pairs = [("rule (chosen on the validation split)", operating_point_text(cfg.operating_point,
                                                                             cfg.operating_value)),
             ("threshold (score ≥ threshold is called positive)", num(val.get("threshold"), vsrc + ["threshold"])),
             ("validation sensitivity / specificity",
              Markup(f"{num(val.get('sensitivity'), vsrc + ['sensitivity'])} / "
                     f"{num(val.get('specificity'), vsrc + ['specificity'])}")),
             ("test sensitivity / specificity at that threshold",
              Markup(f"{num(m.get('sensitivity'), _FINAL + ['sensitivity'])} / "
                     f"{num(m.get('specificity'), _FINAL + ['specificity'])}"))]
    return kv_table(pairs)


def _confusion(ctx: ReportContext) -> Markup:
    m, classes = ctx.session.final_test.metrics, ctx.session.best().recipe.classes
    if isinstance(m.get("confusion"), dict):
        c, src = m["confusion"], _FINAL + ["confusion"]
        neg, pos = classes[0], classes[1]
        rows = [[f"true {neg}", num(c["tn"], src + ["tn"]), num(c["fp"], src + ["fp"])],
                [f"true {pos}", num(c["fn"], src + ["fn"]), num(c["tp"], src + ["tp"])]]
        return table(["", f"predicted {neg}", f"predicted {pos}"], rows, cls="confusion",
                     caption="confusion matrix at the validation threshold")
    if isinstance(m.get("confusion_matrix"), list):
        cm = m["confusion_matrix"]
        rows = [[f"true {classes[i]}"] + [num(v, _FINAL + ["confusion_matrix", i, j]) for j, v in enumerate(row)]
                for i, row in enumerate(cm)]
        return table([""] + [f"predicted {c}" for c in classes], rows, cls="confusion",
                     caption="confusion matrix (most probable class)")
    return para("No confusion matrix for this task.", "muted")


def _per_class(ctx: ReportContext) -> Markup:
    per = ctx.session.final_test.metrics.get("per_class")
    if not isinstance(per, dict):
        return Markup("")
    rows = [[name, num(v.get("auroc"), _FINAL + ["per_class", name, "auroc"]),
             num(v.get("sensitivity"), _FINAL + ["per_class", name, "sensitivity"]),
             num(v.get("specificity"), _FINAL + ["per_class", name, "specificity"]),
             num(v.get("support"), _FINAL + ["per_class", name, "support"])] for name, v in per.items()]
    return Markup("").join([h3("Per class"), table(["class", "AUROC (one vs rest)", "sensitivity (recall)",
                                                    "specificity", "test images"], rows)])


def _calibration(ctx: ReportContext) -> Markup:
    cal = ctx.session.final_test.metrics.get("calibration")
    if not isinstance(cal, dict):
        return para("Calibration is not available for this task.", "muted")
    src = _FINAL + ["calibration"]
    rel = cal.get("reliability") or {}
    pairs = [("expected calibration error (ECE, 10 bins)", num(cal.get("ece"), src + ["ece"])),
             ("calibration slope (1 = ideal; < 1 over-confident)", num(cal.get("slope"), src + ["slope"])),
             ("calibration intercept (0 = ideal)", num(cal.get("intercept"), src + ["intercept"]))]
    edges = rel.get("bin_edges") or []
    rows = [[f"{edges[i]:.1f}–{edges[i + 1]:.1f}", num(rel["counts"][i], src + ["reliability", "counts", i]),
             num(rel["mean_predicted"][i], src + ["reliability", "mean_predicted", i]),
             num(rel["observed_fraction"][i], src + ["reliability", "observed_fraction", i])]
            for i in range(len(edges) - 1) if rel["counts"][i]]
    return Markup("").join([
        Markup(f'<div class="figrow"><figure>{reliability_figure(rel)}<figcaption>Points above the diagonal: '
               "more positives than predicted.</figcaption></figure><div>"), kv_table(pairs),
        table(["bin", "images", "mean predicted", "observed positive"], rows), Markup("</div></div>")])


def _group_table(conf: dict[str, Any], src: list[Any]) -> Markup:
    groups = list((conf.get("groups") or {}).keys())
    rows = []
    for g in groups:
        rows.append([g, num(conf["groups"][g], src + ["groups", g]),
                     num((conf.get("fpr_by_group") or {}).get(g), src + ["fpr_by_group", g]),
                     num((conf.get("tpr_by_group") or {}).get(g), src + ["tpr_by_group", g]),
                     num((conf.get("auroc_by_group") or {}).get(g), src + ["auroc_by_group", g])])
    return table(["value", "test images", "false-positive rate", "sensitivity", "AUROC within group"], rows)


def _confounder(name: str, conf: dict[str, Any], src: list[Any]) -> Markup:
    parts = [h3(f"Confounder: {name}")]
    if "groups" not in conf:
        return Markup("").join(parts + [bullets(conf.get("notes") or [], "no results")])
    groups = conf.get("groups") or {}
    if len(groups) <= MAX_GROUP_ROWS:
        parts.append(_group_table(conf, src))
    else:
        parts.append(note(f"{len(groups)} distinct values (a numeric confounder): the per-value table is left "
                          "out; the dependence measures below use the values as numbers."))
    rel = conf.get("reliance") or {}
    summary = [("worst-group AUROC", num(conf.get("worst_group_auroc"), src + ["worst_group_auroc"])),
               ("group-balanced AUROC", num(conf.get("group_balanced_auroc"), src + ["group_balanced_auroc"]))]
    if rel:
        summary += [(f"excess false-positive rate when {name} = {conf.get('positive_value')}",
                     num(rel.get("excess_fpr"), src + ["reliance", "excess_fpr"])),
                    (f"excess sensitivity when {name} = {conf.get('positive_value')}",
                     num(rel.get("excess_tpr"), src + ["reliance", "excess_tpr"]))]
    dep, dep_p = conf.get("dependence") or {}, conf.get("dependence_p") or {}
    for measure in dep:
        summary.append((f"dependence of the score on {name} given the label: {measure.replace('_', ' ')} (p)",
                        Markup(f"{num(dep[measure], src + ['dependence', measure])} "
                               f"(p {num(dep_p.get(measure), src + ['dependence_p', measure])})")))
    parts.append(kv_table(summary))
    if conf.get("notes"):
        parts.append(Markup(f"<details><summary>{len(conf['notes'])} note(s) from the evaluator</summary>"
                            f"{bullets(conf['notes'])}</details>"))
    return Markup("").join(parts)


def _confounders(ctx: ReportContext) -> Markup:
    confs = ctx.session.final_test.metrics.get("confounders") or {}
    if not confs:
        return para("No confounder was named or found in the data, so reliance was not measured.", "muted")
    intro = note("Reliance: how much more often the model calls a case positive when the confounder is present "
                 "(excess false-positive rate). Dependence: whether the score still varies with the confounder "
                 "among cases with the same label (0 = no dependence; small p = unlikely by chance).")
    return Markup("").join([intro] + [_confounder(n, c, _FINAL + ["confounders", n]) for n, c in confs.items()])


def _roc(ctx: ReportContext) -> Markup:
    if ctx.roc is None:
        return para("No ROC curve: the target class is absent from the test split, or the task is multiclass "
                    "without a target class.", "muted")
    m = ctx.session.final_test.metrics
    sens, spec = m.get("sensitivity"), m.get("specificity")
    operating = (1 - spec, sens) if isinstance(sens, (int, float)) and isinstance(spec, (int, float)) else None
    k = target_index(ctx.session.best().recipe)
    target = ctx.session.best().recipe.classes[k]
    return Markup(f"<figure>{roc_figure(ctx.roc, operating, fmt(m.get('auroc')))}<figcaption>Target class: "
                  f"{esc(target)}. The marker is the operating point chosen on validation, applied to the test "
                  "split.</figcaption></figure>")


def _validation_only(ctx: ReportContext) -> Markup:
    best = ctx.session.best()
    parts = [Markup('<p class="warning"><strong>Validation only.</strong> The test split has not been evaluated '
                    "in this session. Every number in this report comes from the validation split, which was used "
                    "to choose the model and therefore flatters it. Run the final evaluation (sidebar: Finish; "
                    "Python: <code>engine.finish()</code>) to get the unbiased test estimate.</p>")]
    if best is not None:
        pos = ctx.position(best.index)
        val = best.val_metrics
        pairs = [(METRIC_LABELS.get(k, k), num(val[k], ["iterations", pos, "val_metrics", k]))
                 for k in ("primary", "auroc", "sensitivity", "specificity", "balanced_accuracy")
                 if isinstance(val.get(k), (int, float))]
        parts += [h3(f"Best iteration so far: {best.index} (validation)"), kv_table(pairs)]
    return Markup("").join(parts)


def test_section(ctx: ReportContext) -> Markup:
    s = ctx.session
    final = s.final_test
    if final is None:
        return _validation_only(ctx)
    head = para(f"The best iteration ({final.iteration}) was evaluated on the held-out test split once, at "
                f"{final.evaluated_at}, on {final.n_samples} images; the session records {s.test_reads} read(s) "
                "of the test split.")
    parts = [head, table(["metric", "test", "95% CI", "validation"], _metric_rows(ctx), id_="test-metrics"),
             _ci_note(ctx)]
    if ctx.inputs.predictions is None:
        parts.append(note("ROC, calibration and confounder views are shown for classification tasks."))
        return Markup("").join(parts)
    parts += [h3("ROC"), _roc(ctx), h3("Operating point"), _operating(ctx), h3("Confusion matrix"),
              _confusion(ctx), _per_class(ctx), h3("Calibration"), _calibration(ctx),
              h3("Per group and confounder reliance"), _confounders(ctx)]
    if final.metrics.get("notes"):
        parts += [h3("Notes from the evaluator"), bullets(final.metrics["notes"])]
    return Markup("").join(parts)


test_section.__test__ = False  # not a pytest test, despite its name
