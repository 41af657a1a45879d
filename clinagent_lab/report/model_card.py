"""The ``model-card`` section: the TRIPOD+AI and CLAIM items a session can fill, and those it cannot.

Each item names the checklist topics it answers (TRIPOD+AI 2024 and CLAIM 2024 section headings). What the
session cannot know (clinical setting, reference standard, ethics approval, external validation...) is listed
under "not available from this session" rather than guessed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .context import ReportContext
from .markup import traced
from .test_results import METRIC_LABELS

__all__ = ["NOT_AVAILABLE", "CardItem", "card_items", "model_card_section"]


@dataclass(frozen=True)
class CardItem:
    item: str
    reference: str
    #: text, or inline parts (text and traced numbers) the template shows one after the other
    content: str | list[Any]


#: items no session can fill from its own records, with the checklist entries they belong to
NOT_AVAILABLE: tuple[tuple[str, str], ...] = (
    ("Clinical setting, intended users and place in the care pathway", "TRIPOD+AI: background, objectives; CLAIM: introduction"),
    ("Eligibility criteria and how participants were recruited", "TRIPOD+AI: participants; CLAIM: data (eligibility)"),
    ("Reference standard: how labels were established, by whom, and their agreement",
     "TRIPOD+AI: outcome; CLAIM: ground truth"),
    ("Dates of data collection and the population's demographics", "TRIPOD+AI: data, participants; CLAIM: data, results (data)"),
    ("Ethics approval and consent", "TRIPOD+AI: ethical approval; CLAIM: study design"),
    ("Sample-size justification", "TRIPOD+AI: sample size; CLAIM: data partitions"),
    ("External validation on data from another site or time", "TRIPOD+AI: analytical methods, results; CLAIM: evaluation"),
    ("Fairness across demographic groups not present as metadata columns", "TRIPOD+AI: fairness; CLAIM: evaluation"),
    ("Clinical utility (decision curve, impact on patients)", "TRIPOD+AI: discussion (usability); CLAIM: discussion"),
    ("Funding and conflicts of interest", "TRIPOD+AI: funding, conflicts of interest; CLAIM: other information"),
)


def _intended_use(ctx: ReportContext) -> str:
    spec = ctx.session.spec
    target = ", ".join(spec.target_classes) or "the classes in the data"
    return (f"{spec.objective or spec.task_type.replace('_', ' ')} ({spec.modality.replace('_', ' ')} images); "
            f"output: {spec.output_format}; classes costly to miss: {target}. A research model built from "
            "the request above; not a medical device.")


def _performance(ctx: ReportContext) -> str | list[Any]:
    final = ctx.session.final_test
    if final is None:
        return "not available: the test split has not been evaluated (validation numbers are not a performance claim)"
    parts: list[Any] = []
    for key in ("primary", "auroc", "auroc_macro", "sensitivity", "specificity"):
        value = final.metrics.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            continue
        ci = ctx.intervals.get(key)
        span = f" (95% CI {ci.low:.3f}–{ci.high:.3f})" if ci is not None and ci.low is not None else ""
        label = METRIC_LABELS.get(key, key) if key != "primary" else f"primary ({final.metrics.get('primary_metric')})"
        parts += [f"{label} ", traced(value, ["final_test", "metrics", key]), f"{span}; "]
    return parts + ["test images: ", traced(final.n_samples, ["final_test", "n_samples"])]


def _subgroups(ctx: ReportContext) -> str:
    final = ctx.session.final_test
    confs = list((final.metrics.get("confounders") or {}) if final else [])
    named = [c.name for c in ctx.session.spec.confounders]
    if not named:
        return "no confounder or subgroup was named or found in the metadata"
    where = "test section" if confs else "iterations (validation only)"
    return f"confounders examined: {', '.join(named)}; per-group error rates and reliance in the {where}"


def _limitations(ctx: ReportContext) -> list[str]:
    s, fp = ctx.session, ctx.session.fingerprint
    out = ["single dataset, internal split only: no external validation"]
    test_n = sum((fp.split_counts.get("test") or {}).values())
    if test_n < 200:
        out.append(f"small test split ({test_n} images): wide confidence intervals")
    if fp.group_column is None:
        out.append("no patient ids: images of one patient may sit in different splits")
    flagged = [a.column for a in fp.associations if a.flagged]
    if flagged:
        out.append(f"metadata that predicts the label on its own: {', '.join(flagged)}")
    if s.final_test is None:
        out.append("no test evaluation yet: numbers are validation numbers")
    if "synth" in (fp.root or "").lower() or "synthetic" in (fp.root or "").lower():
        out.append("the data look synthetic: numbers say nothing about clinical performance")
    return out


def card_items(ctx: ReportContext) -> list[CardItem]:
    """The filled model-card items."""
    s, fp = ctx.session, ctx.session.fingerprint
    best = s.best()
    splits = ", ".join(f"{k} {sum(v.values())}" for k, v in fp.split_counts.items())
    model = "no model kept" if best is None else (
        f"{best.recipe.model.architecture} ({best.recipe.model.in_channels} channels, {best.recipe.data.image_size} px), "
        f"{best.recipe.training.max_epochs} epochs, {best.recipe.optim.name} lr {best.recipe.optim.lr:g}, "
        f"loss {best.recipe.loss.name}, mitigation {best.recipe.debias.method}; selected in iteration {best.index} "
        f"of {len(s.iterations)} on the validation split")
    return [
        CardItem("Intended use", "TRIPOD+AI: objectives; CLAIM: introduction", _intended_use(ctx)),
        CardItem("Data source", "TRIPOD+AI: data; CLAIM: data", f"format {s.data_format or fp.format} at {fp.root}; "
                                                          f"{fp.n_images} images"),
        CardItem("Outcome / labels", "TRIPOD+AI: outcome; CLAIM: ground truth", f"classes {', '.join(fp.classes)} as labelled in the "
                                                              "data"),
        CardItem("Data partitions", "TRIPOD+AI: data preparation; CLAIM: data partitions", f"{splits}; {fp.split_rule}; "
                 + (f"grouped by {fp.group_column}" if fp.group_column else "no patient ids")
                 + ("; no image or patient in two splits (checked)" if fp.leakage_checked else "")),
        CardItem("Missing data", "TRIPOD+AI: missing data; CLAIM: data", "; ".join(f"{a.column}: {a.n_missing} missing"
                                                                     for a in fp.associations) or "no metadata"),
        CardItem("Model and training", "TRIPOD+AI: analytical methods; CLAIM: model, training", model),
        CardItem("Performance with uncertainty", "TRIPOD+AI: model performance; CLAIM: evaluation, results", _performance(ctx)),
        CardItem("Calibration", "TRIPOD+AI: model performance; CLAIM: evaluation",
                 "see the test section (reliability, ECE, slope, intercept)" if s.final_test else "not available"),
        CardItem("Subgroups and shortcuts", "TRIPOD+AI: fairness; CLAIM: evaluation", _subgroups(ctx)),
        CardItem("Limitations", "TRIPOD+AI: limitations; CLAIM: discussion", "; ".join(_limitations(ctx))),
        CardItem("Reproducibility", "TRIPOD+AI: open science; CLAIM: other information", "see the reproducibility section: versions, "
                                                                    "seeds, data hash, recipe and commands"),
    ]


def model_card_section(ctx: ReportContext) -> dict[str, Any]:
    return {"items": card_items(ctx), "not_available": NOT_AVAILABLE}
