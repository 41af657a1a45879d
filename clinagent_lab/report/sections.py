"""Report sections, in reading order, each an HTML fragment under a stable id.

``SECTIONS`` lists them: ``request``, ``data``, ``iterations``, ``test``, ``saliency`` (present only when the
iterations saved Grad-CAM maps), ``model-card``, ``reproducibility`` and ``seed-study`` (present only when a seed
study of the best iteration exists). A section builder takes the
:class:`~.context.ReportContext` and returns Markup, or None to leave the section out.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from ..recipe import recipe_diff
from .context import ReportContext
from .figures import iterations_figure
from .markup import Markup, bullets, esc, fmt, h3, kv_table, note, num, para, table

__all__ = ["SECTIONS", "Section", "data_section", "iterations_section", "request_section", "section_ids"]


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    build: Callable[[ReportContext], Markup | None]


# ------------------------------------------------------------------------------------------------- request


def _spec_rows(ctx: ReportContext) -> list[tuple[str, object]]:
    spec = ctx.session.spec
    metric = spec.primary_metric
    params = ", ".join(f"{k} = {v}" for k, v in metric.params.items())
    confounders = "; ".join(f"{c.name} (column {c.column or 'not found'}, {c.action})" for c in spec.confounders)
    budget = spec.budget
    return [
        ("objective", spec.objective or "—"),
        ("task type", spec.task_type),
        ("modality", spec.modality),
        ("classes", ", ".join(spec.classes or []) or "from the data"),
        ("target classes (costly to miss)", ", ".join(spec.target_classes) or "none named"),
        ("primary metric", f"{metric.name} ({metric.direction}{'; ' + params if params else ''})"),
        ("secondary metrics", ", ".join(spec.secondary_metrics) or "none"),
        ("risk preference", spec.risk_preference),
        ("confounders", confounders or "none"),
        ("supervision", spec.supervision.kind + (f" (boxes on {spec.supervision.box_fraction:.0%})"
                                                 if spec.supervision.box_fraction is not None else "")),
        ("output", spec.output_format),
        ("budget", f"{budget.max_iterations} iterations of at most {budget.iteration_minutes:g} min"
                   + (f", {budget.total_minutes:g} min in all" if budget.total_minutes else "")),
        ("target value", num(spec.target_value, ["spec", "target_value"]) if spec.target_value is not None
         else "none"),
        ("interpreted by", spec.parsed_by),
    ]


def _annotations(ctx: ReportContext) -> Markup:
    rows = [(i, a.kind, a.text or "—", json.dumps(a.value, sort_keys=True) if a.value else "—",
             a.iteration if a.iteration is not None else "—", a.applied_in if a.applied_in is not None else "not yet",
             a.created_at) for i, a in enumerate(ctx.session.annotations)]
    if not rows:
        return para("No clinician annotations were made in this session.", "muted")
    return table(["#", "kind", "text", "value", "on iteration", "acted on in iteration", "at"], rows)


def _interpreter(model_name: str) -> str:
    return "offline, by rules" if model_name in ("", "offline") else f"by {model_name}"


def request_section(ctx: ReportContext) -> Markup:
    s = ctx.session
    return Markup("").join([
        Markup(f'<blockquote class="request">{esc(s.request)}</blockquote>'),
        para(f"Session {s.id}, created {s.created_at}; interpreted {_interpreter(s.model_name)}."),
        h3("Task specification"), kv_table(_spec_rows(ctx)),
        h3("What the interpreter assumed"), bullets(s.spec.assumptions, "nothing was assumed"),
        h3("Open questions"), bullets(s.spec.questions, "none"),
        h3("Clinician annotations"), _annotations(ctx),
    ])


# ---------------------------------------------------------------------------------------------------- data


def _counts_table(ctx: ReportContext) -> Markup:
    fp = ctx.session.fingerprint
    splits = [s for s in ("train", "val", "test") if s in fp.split_counts] + \
        [s for s in fp.split_counts if s not in ("train", "val", "test")]
    rows = []
    for cls in fp.classes:
        rows.append([cls] + [num(fp.split_counts[s].get(cls, 0), ["fingerprint", "split_counts", s, cls])
                             if cls in fp.split_counts[s] else 0 for s in splits]
                    + [num(fp.class_counts.get(cls, 0), ["fingerprint", "class_counts", cls])])
    rows.append(["all"] + [sum(fp.split_counts[s].values()) for s in splits]
                + [num(fp.n_images, ["fingerprint", "n_images"])])
    return table(["class"] + splits + ["total"], rows, caption="images per split and class")


def _associations(ctx: ReportContext) -> Markup:
    fp = ctx.session.fingerprint
    if not fp.associations:
        return para("The data has no metadata columns to audit.", "muted")
    rows = []
    for i, a in enumerate(fp.associations):
        src = ["fingerprint", "associations", i]
        rows.append([a.column, a.kind, a.n_missing, a.n_levels if a.n_levels is not None else "—",
                     num(a.auroc, src + ["auroc"]), num(a.cramers_v, src + ["cramers_v"]),
                     num(a.p_value, src + ["p_value"]), "yes" if a.flagged else "no", a.note or ""])
    return Markup("").join([
        table(["column", "kind", "missing", "levels", "AUROC alone", "Cramér's V", "p", "flagged", "note"], rows,
              caption="shortcut audit: how well each metadata column predicts the label on its own"),
        note("An AUROC far from 0.5 means the column alone separates the classes: a model can learn it as a "
             "shortcut. Flagged columns deserve a look at the confounder results of the test section."),
    ])


def _sizes(sizes: dict) -> str:
    parts = []
    for axis in ("height", "width"):
        v = sizes.get(axis)
        if isinstance(v, dict):
            parts.append(f"{axis} {v.get('min')}–{v.get('max')} px (median {v.get('median')})")
    return "; ".join(parts) or ", ".join(f"{k} {v}" for k, v in sizes.items()) or "—"


def data_section(ctx: ReportContext) -> Markup:
    fp = ctx.session.fingerprint
    size_text = _sizes(fp.image_sizes or {})
    grouped = (f"yes: splits keep every {fp.group_column} in one split ({fp.n_groups} groups)"
               if fp.group_column else "no patient or group id in the data: each image is treated as its own "
                                       "patient")
    leakage = ("passed: no image and no patient appears in two splits" if fp.leakage_checked
               else "not run for this session")
    pairs = [("source format", ctx.session.data_format or fp.format), ("data location", fp.root),
             ("task type", fp.task_type), ("classes", ", ".join(fp.classes)),
             ("images", num(fp.n_images, ["fingerprint", "n_images"])),
             ("image sizes", size_text), ("channels", ", ".join(map(str, fp.channels))),
             ("split rule", fp.split_rule),
             ("split given by the dataset", "yes" if fp.splits_given else "no: made by clinagent"),
             ("grouped by patient", grouped), ("leakage check", leakage),
             ("class imbalance (train, largest / smallest)", num(fp.imbalance_ratio, ["fingerprint",
                                                                                        "imbalance_ratio"])),
             ("metadata columns", ", ".join(fp.metadata_columns) or "none"),
             ("data fingerprint (sha256)", Markup(f"<code>{esc(fp.content_hash or '—')}</code>"))]
    if fp.n_boxes is not None:
        pairs.append(("boxes", f"{fp.n_boxes} on {fmt(fp.box_fraction)} of the images "
                               f"({', '.join(fp.box_classes or [])})"))
    parts = [kv_table(pairs), _counts_table(ctx), h3("Shortcut audit"), _associations(ctx)]
    if fp.warnings:
        parts += [h3("Data warnings"), bullets(fp.warnings)]
    return Markup("").join(parts)


# ---------------------------------------------------------------------------------------------- iterations


def _changes(ctx: ReportContext, position: int) -> Markup:
    its = ctx.session.iterations
    if position == 0:
        return esc("first recipe (initializer)")
    diff = recipe_diff(its[position - 1].recipe, its[position].recipe)
    if not diff:
        return esc("no change")
    items = "".join(f"<li><code>{esc(k)}</code>: {esc(json.dumps(a, default=str))} → "
                    f"{esc(json.dumps(b, default=str))}</li>" for k, (a, b) in diff.items())
    return Markup(f'<ul class="changes">{items}</ul>')


def _decision(it) -> Markup:
    label = {"kept": "kept", "baseline": "kept (baseline)", "discarded": "discarded", "failed": "failed",
             "pending": "pending"}[it.decision]
    cls = "kept" if it.decision in ("kept", "baseline") else it.decision
    reason = it.decision_reason or ""
    if it.error and it.error.get("evalue"):
        reason += f" — {it.error.get('ename', 'error')}: {str(it.error['evalue'])[:300]}"
    return Markup(f'<span class="badge {esc(cls)}">{esc(label)}</span> {esc(reason)}')


def _iteration_rows(ctx: ReportContext) -> list[list[object]]:
    rows = []
    for pos, it in enumerate(ctx.session.iterations):
        src = ["iterations", pos]
        metric = it.val_metrics.get("selection_metric") or it.recipe.evaluation.primary_metric
        rows.append([it.index, it.idea or "—", _changes(ctx, pos), it.rationale,
                     Markup(f"{num(it.selection_value, src + ['selection_value'])}<br><small>{esc(metric)}</small>"),
                     num(it.val_metrics.get("primary"), src + ["val_metrics", "primary"])
                     if "primary" in it.val_metrics else "—",
                     _decision(it), f"{it.status}, {it.wall_s:.0f} s" if it.wall_s is not None else it.status])
    return rows


def _figure(ctx: ReportContext) -> Markup:
    its = [it for it in ctx.session.iterations if it.selection_value is not None]
    if not its:
        return para("No iteration produced a validation value yet.", "muted")
    selection = its[-1].val_metrics.get("selection_metric") or its[-1].recipe.evaluation.primary_metric
    primary = its[-1].recipe.evaluation.primary_metric
    svg = iterations_figure([it.index for it in its], [it.selection_value for it in its],
                            [it.val_metrics.get("primary") for it in its],
                            [it.decision in ("kept", "baseline") for it in its], selection, primary)
    return Markup(f"<figure>{svg}"
                  "<figcaption>Validation value of each successful iteration. Filled markers: the iteration "
                  "became the best so far; hollow: discarded. The test split played no part.</figcaption>"
                  "</figure>")


def iterations_section(ctx: ReportContext) -> Markup:
    s = ctx.session
    if not s.iterations:
        return para("No iteration has run yet.", "muted")
    best = f"iteration {s.best_iteration}" if s.best_iteration is not None else "none (no iteration succeeded)"
    return Markup("").join([
        para(f"{len(s.iterations)} iteration(s); best: {best}. Keep/discard compares the validation selection "
             "value with the best so far, after the constraints (less reliance on a mitigated confounder, the "
             "clinician's bounds)."),
        table(["#", "idea", "changes vs previous iteration", "rationale", "validation selection", "validation primary",
               "decision", "status"], _iteration_rows(ctx), cls="iterations"),
        _figure(ctx),
        para(f"Stopped: {s.stop_reason}." if s.stop_reason else f"Session status: {s.status}."),
    ])


# ------------------------------------------------------------------------------------------------ registry


def _sections() -> tuple[Section, ...]:
    from .model_card import model_card_section  # deferred: heavy (pandas)
    from .reproducibility import reproducibility_section, seed_study_section  # deferred: heavy (pandas)
    from .saliency import saliency_section  # the figure module (matplotlib): only when sections are built
    from .test_results import test_section  # deferred: heavy (pandas)

    return (
        Section("request", "Request", request_section),
        Section("data", "Data", data_section),
        Section("iterations", "Iterations", iterations_section),
        Section("test", "Test evaluation", test_section),
        Section("saliency", "Where the model looks", saliency_section),
        Section("model-card", "Model card", model_card_section),
        Section("reproducibility", "Reproducibility", reproducibility_section),
        Section("seed-study", "Seed study", seed_study_section),
    )


SECTIONS: tuple[Section, ...] = _sections()


def section_ids() -> list[str]:
    return [s.id for s in SECTIONS]
