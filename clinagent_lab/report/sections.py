"""Report sections, in reading order, each under a stable id.

``SECTIONS`` lists them: ``request``, ``data``, ``iterations``, ``test``, ``saliency`` (present only when the
iterations saved Grad-CAM maps), ``model-card``, ``reproducibility`` and ``seed-study`` (present only when a seed
study of the best iteration exists). A section builder takes the :class:`~.context.ReportContext` and returns
the data its template (``templates/sections/<id>.html.j2``) lays out, or None to leave the section out.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..recipe import recipe_diff
from .context import ReportContext
from .figures import iterations_figure
from .markup import Code, fmt, traced

__all__ = ["SECTIONS", "Section", "data_section", "iterations_section", "request_section", "section_ids"]


@dataclass(frozen=True)
class Section:
    id: str
    title: str
    build: Callable[[ReportContext], dict[str, Any] | None]

    @property
    def template(self) -> str:
        return f"sections/{self.id}.html.j2"


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
        ("target value", traced(spec.target_value, ["spec", "target_value"]) if spec.target_value is not None
         else "none"),
        ("interpreted by", spec.parsed_by),
    ]


def _annotations(ctx: ReportContext) -> list[tuple[Any, ...]]:
    return [(i, a.kind, a.text or "—", json.dumps(a.value, sort_keys=True) if a.value else "—",
             a.iteration if a.iteration is not None else "—", a.applied_in if a.applied_in is not None else "not yet",
             a.created_at) for i, a in enumerate(ctx.session.annotations)]


def _interpreter(model_name: str) -> str:
    return "offline, by rules" if model_name in ("", "offline") else f"by {model_name}"


def request_section(ctx: ReportContext) -> dict[str, Any]:
    s = ctx.session
    return {"request": s.request, "session": s, "interpreter": _interpreter(s.model_name),
            "spec_rows": _spec_rows(ctx), "assumptions": s.spec.assumptions, "questions": s.spec.questions,
            "annotations": _annotations(ctx)}


# ---------------------------------------------------------------------------------------------------- data


def _counts(ctx: ReportContext) -> tuple[list[str], list[list[Any]]]:
    fp = ctx.session.fingerprint
    splits = [s for s in ("train", "val", "test") if s in fp.split_counts] + \
        [s for s in fp.split_counts if s not in ("train", "val", "test")]
    rows = []
    for cls in fp.classes:
        rows.append([cls] + [traced(fp.split_counts[s].get(cls, 0), ["fingerprint", "split_counts", s, cls])
                             if cls in fp.split_counts[s] else 0 for s in splits]
                    + [traced(fp.class_counts.get(cls, 0), ["fingerprint", "class_counts", cls])])
    rows.append(["all"] + [sum(fp.split_counts[s].values()) for s in splits]
                + [traced(fp.n_images, ["fingerprint", "n_images"])])
    return ["class"] + splits + ["total"], rows


def _associations(ctx: ReportContext) -> list[list[Any]]:
    rows = []
    for i, a in enumerate(ctx.session.fingerprint.associations):
        src = ["fingerprint", "associations", i]
        rows.append([a.column, a.kind, a.n_missing, a.n_levels if a.n_levels is not None else "—",
                     traced(a.auroc, src + ["auroc"]), traced(a.cramers_v, src + ["cramers_v"]),
                     traced(a.p_value, src + ["p_value"]), "yes" if a.flagged else "no", a.note or ""])
    return rows


def _sizes(sizes: dict) -> str:
    parts = []
    for axis in ("height", "width"):
        v = sizes.get(axis)
        if isinstance(v, dict):
            parts.append(f"{axis} {v.get('min')}–{v.get('max')} px (median {v.get('median')})")
    return "; ".join(parts) or ", ".join(f"{k} {v}" for k, v in sizes.items()) or "—"


def data_section(ctx: ReportContext) -> dict[str, Any]:
    fp = ctx.session.fingerprint
    size_text = _sizes(fp.image_sizes or {})
    grouped = (f"yes: splits keep every {fp.group_column} in one split ({fp.n_groups} groups)"
               if fp.group_column else "no patient or group id in the data: each image is treated as its own "
                                       "patient")
    leakage = ("passed: no image and no patient appears in two splits" if fp.leakage_checked
               else "not run for this session")
    pairs = [("source format", ctx.session.data_format or fp.format), ("data location", fp.root),
             ("task type", fp.task_type), ("classes", ", ".join(fp.classes)),
             ("images", traced(fp.n_images, ["fingerprint", "n_images"])),
             ("image sizes", size_text), ("channels", ", ".join(map(str, fp.channels))),
             ("split rule", fp.split_rule),
             ("split given by the dataset", "yes" if fp.splits_given else "no: made by clinagent"),
             ("grouped by patient", grouped), ("leakage check", leakage),
             ("class imbalance (train, largest / smallest)", traced(fp.imbalance_ratio, ["fingerprint",
                                                                                           "imbalance_ratio"])),
             ("metadata columns", ", ".join(fp.metadata_columns) or "none"),
             ("data fingerprint (sha256)", Code(fp.content_hash or "—"))]
    if fp.n_boxes is not None:
        pairs.append(("boxes", f"{fp.n_boxes} on {fmt(fp.box_fraction)} of the images "
                               f"({', '.join(fp.box_classes or [])})"))
    header, rows = _counts(ctx)
    return {"pairs": pairs, "counts_header": header, "counts": rows, "associations": _associations(ctx),
            "warnings": fp.warnings}


# ---------------------------------------------------------------------------------------------- iterations


def _changes(ctx: ReportContext, position: int) -> str | list[tuple[str, str, str]]:
    """Text (first recipe, no change) or (field, before, after) per changed recipe field, as JSON."""
    its = ctx.session.iterations
    if position == 0:
        return "first recipe (initializer)"
    diff = recipe_diff(its[position - 1].recipe, its[position].recipe)
    if not diff:
        return "no change"
    return [(k, json.dumps(a, default=str), json.dumps(b, default=str)) for k, (a, b) in diff.items()]


_DECISIONS = {"kept": "kept", "baseline": "kept (baseline)", "discarded": "discarded", "failed": "failed",
              "pending": "pending"}


def _decision(it) -> dict[str, str]:
    reason = it.decision_reason or ""
    if it.error and it.error.get("evalue"):
        reason += f" — {it.error.get('ename', 'error')}: {str(it.error['evalue'])[:300]}"
    return {"label": _DECISIONS[it.decision], "cls": "kept" if it.decision in ("kept", "baseline") else it.decision,
            "reason": reason}


def _iteration_rows(ctx: ReportContext) -> list[dict[str, Any]]:
    rows = []
    for pos, it in enumerate(ctx.session.iterations):
        src = ["iterations", pos]
        rows.append({
            "index": it.index, "idea": it.idea or "—", "changes": _changes(ctx, pos), "rationale": it.rationale,
            "selection": traced(it.selection_value, src + ["selection_value"]),
            "selection_metric": it.val_metrics.get("selection_metric") or it.recipe.evaluation.primary_metric,
            "primary": traced(it.val_metrics.get("primary"), src + ["val_metrics", "primary"])
            if "primary" in it.val_metrics else "—",
            "decision": _decision(it),
            "status": f"{it.status}, {it.wall_s:.0f} s" if it.wall_s is not None else it.status})
    return rows


def _figure(ctx: ReportContext) -> Any:
    its = [it for it in ctx.session.iterations if it.selection_value is not None]
    if not its:
        return None
    selection = its[-1].val_metrics.get("selection_metric") or its[-1].recipe.evaluation.primary_metric
    primary = its[-1].recipe.evaluation.primary_metric
    return iterations_figure([it.index for it in its], [it.selection_value for it in its],
                             [it.val_metrics.get("primary") for it in its],
                             [it.decision in ("kept", "baseline") for it in its], selection, primary)


def iterations_section(ctx: ReportContext) -> dict[str, Any]:
    s = ctx.session
    if not s.iterations:
        return {"rows": []}
    best = f"iteration {s.best_iteration}" if s.best_iteration is not None else "none (no iteration succeeded)"
    ending = f"Stopped: {s.stop_reason}." if s.stop_reason else f"Session status: {s.status}."
    return {"count": len(s.iterations), "best": best, "rows": _iteration_rows(ctx), "figure": _figure(ctx),
            "ending": ending}


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
