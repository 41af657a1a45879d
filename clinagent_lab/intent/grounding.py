"""Ground a parsed :class:`TaskSpec` in the data: real class names, columns, box share, shortcut audit.

The parser speaks clinical language ("melanoma", "chest drains"); the data has ``MEL`` and a column called
``drain``. :func:`ground_spec` maps one onto the other, sets the task type from the number of classes, and
turns each metadata column that predicts the label on its own into a question. Every decision lands in
``assumptions``; anything it cannot map lands in ``questions``.

Example:
    >>> match_class("melanoma", ["MEL", "NV", "BCC"]), match_class("pneumothorax", ["0", "1"])
    (['MEL'], ['1'])
    >>> find_column("chest_drain", ["image_quality", "has_chest_tube"])
    'has_chest_tube'
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from rapidfuzz import fuzz, process

from ..spec import Question, TaskSpec
from ..tasks import get_backend
from . import questions as ask
from .vocabulary import (CLASS_GROUPS, CLASS_SYNONYMS, COLUMN_RULES, GENERIC_CONDITIONS, NORMAL_CLASS_NAMES,
                         POSITIVE_CLASS_NAMES, ColumnRule)

if TYPE_CHECKING:
    from ..data.base import ColumnAssociation, DatasetFingerprint

__all__ = ["ground_spec", "match_class", "positive_class", "find_column", "confounder_for_column",
           "GROUNDING"]

Draft = dict[str, Any]
_OPERATING_METRICS = ("sensitivity_at_specificity", "specificity_at_sensitivity")
_ADDED = "Column '{column}' predicts the label on its own: added"


def _norm(name: str) -> str:
    """``"Basal Cell-Carcinoma"`` -> ``"basal_cell_carcinoma"``; ``"PatientSex"`` -> ``"patient_sex"``."""
    name = re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", str(name))
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def _condition_of_class(class_name: str) -> str | None:
    norm = _norm(class_name)
    return next((c for c, syns in CLASS_SYNONYMS.items() if norm in syns), None)


def positive_class(classes: Sequence[str]) -> str | None:
    """The non-normal class of a binary dataset ("1", "pneumothorax" next to "normal"), else None.

    Example:
        >>> positive_class(["normal", "pneumonia"]), positive_class(["MEL", "NV", "BCC"])
        ('pneumonia', None)
    """
    if len(classes) != 2:
        return None
    named = [c for c in classes if _norm(c) in POSITIVE_CLASS_NAMES]
    if len(named) == 1:
        return named[0]
    normal = [c for c in classes if _norm(c) in NORMAL_CLASS_NAMES or re.match(r"^(?:no|non|not)_", _norm(c))]
    if len(normal) == 1:
        return next(c for c in classes if c != normal[0])
    return None


def match_class(name: str, classes: Sequence[str]) -> list[str]:
    """The dataset classes a clinical (or dataset) class name stands for; empty when none fits.

    Tried in order: the name itself, its synonyms (:data:`CLASS_SYNONYMS`), a group (``malignant`` -> MEL,
    BCC, SCC), in a binary dataset the non-normal class (unless that class names a different finding), and
    a close spelling.
    """
    by_norm = {_norm(c): c for c in classes}
    norm = _norm(name)
    if norm in by_norm:
        return [by_norm[norm]]
    for synonym in CLASS_SYNONYMS.get(name, ()):
        if synonym in by_norm:
            return [by_norm[synonym]]
    group = [by_norm[s] for s in CLASS_GROUPS.get(name, ()) if s in by_norm]
    if group:
        return group
    positive = positive_class(classes)
    if positive is not None:
        other = _condition_of_class(positive)
        if other is None or other == name or other in GENERIC_CONDITIONS or name in GENERIC_CONDITIONS:
            return [positive]
    close = process.extractOne(norm, list(by_norm), scorer=fuzz.ratio, score_cutoff=80)
    return [by_norm[close[0]]] if close else []


def _rule_for(name: str) -> ColumnRule:
    return COLUMN_RULES.get(name, ColumnRule((name,)))


def _matches_by_name(rule: ColumnRule, norm_col: str) -> bool:
    return norm_col in rule.names


def _matches_by_token(rule: ColumnRule, norm_col: str) -> bool:
    words = norm_col.split("_")
    if any(word in rule.exclude for word in words):
        return False
    padded = f"_{norm_col}_"
    return any(f"_{token}_" in padded for token in rule.tokens)


def find_column(name: str, columns: Sequence[str]) -> str | None:
    """The metadata column that holds confounder ``name``, or None.

    Tried in order: a column named exactly so, a column named by a synonym (``drain``, ``chest_tube``,
    ``gender``, ``age_approx``), a column whose words contain a telling word (``has_chest_tube``), and a close
    spelling. ``anatom_site_general`` is never taken for ``site`` (the hospital), only for ``anatom_site``.
    """
    rule = _rule_for(name)
    norms = [(col, _norm(col)) for col in columns]
    for col, norm in norms:
        if norm == name:
            return col
    for synonym in rule.names:
        for col, norm in norms:
            if norm == synonym:
                return col
    for col, norm in norms:
        if _matches_by_token(rule, norm):
            return col
    close = process.extractOne(name, [n for _, n in norms], scorer=fuzz.ratio, score_cutoff=85)
    return next((col for col, norm in norms if close and norm == close[0]), None)


def confounder_for_column(column: str) -> str:
    """The confounder a column stands for (``drain`` -> ``chest_drain``), else the column in snake_case."""
    norm = _norm(column)
    for name, rule in COLUMN_RULES.items():
        if norm == name or _matches_by_name(rule, norm):
            return name
    for name, rule in COLUMN_RULES.items():
        if _matches_by_token(rule, norm):
            return name
    return norm or "column"


def _strength(assoc: ColumnAssociation) -> str:
    if assoc.auroc is not None:
        return f"with AUROC {assoc.auroc:.2f}"
    if assoc.cramers_v is not None:
        return f"with Cramér's V {assoc.cramers_v:.2f}"
    return "strongly"


def _is_constant(assoc: ColumnAssociation) -> bool:
    return "constant" in assoc.note.lower() or assoc.n_levels == 1


# -- grounding steps, in order ----------------------------------------------------------------------------


def _provenance(d: Draft, fp: DatasetFingerprint) -> None:
    d["assumptions"].append(f"Grounded in the data: format {fp.format}, {fp.n_images} images, "
                            f"classes {', '.join(fp.classes)}.")


def _drop_detection(d: Draft, fp: DatasetFingerprint) -> None:
    d["questions"].append(ask.note("boxes_missing", f"You asked for boxes, but the data (format {fp.format}) has "
                                   "no box annotations: the task is set to classification. Add box annotations "
                                   "to train a detector."))
    d["output_format"] = "probabilities"
    d["supervision"] = {"kind": "full", "box_fraction": None}
    if d["primary_metric"]["name"] == "map50":
        d["primary_metric"] = {"name": "auroc", "direction": "maximize", "params": {}}


def _classes_and_task(d: Draft, fp: DatasetFingerprint) -> None:
    d["classes"] = list(fp.classes)
    data_has_boxes = get_backend(fp.task_type).has_boxes or bool(fp.n_boxes)
    requested = d["task_type"]
    if requested == "detection":
        if data_has_boxes:
            return
        _drop_detection(d, fp)
    elif data_has_boxes:
        d["assumptions"].append("The data also has boxes; ask for detection ('with boxes') to use them.")
    if len(fp.classes) < 2:
        d["questions"].append(ask.note("single_class", f"The data has a single class "
                                       f"({', '.join(fp.classes) or 'none'}): there is nothing to tell apart. "
                                       "Check the labels."))
        d["task_type"] = "binary_classification" if requested == "detection" else requested
        return
    task = "binary_classification" if len(fp.classes) == 2 else "multiclass_classification"
    if task != requested and requested != "detection":
        d["assumptions"].append(f"Task: {task}, because the data has {len(fp.classes)} classes "
                                f"(the request suggested {requested}).")
    d["task_type"] = task


def _class_pool(d: Draft, fp: DatasetFingerprint) -> list[str]:
    if d["task_type"] == "detection" and fp.box_classes:
        return list(fp.box_classes)
    return list(fp.classes)


def _targets(d: Draft, fp: DatasetFingerprint) -> None:
    pool = _class_pool(d, fp)
    mapped: list[str] = []
    mapping: dict[str, list[str]] = {}
    for target in d["target_classes"]:
        found = match_class(target, pool)
        mapping[target] = found
        if found:
            mapped.extend(found)
            if found != [target]:
                d["assumptions"].append(f"Target '{target}' is class {', '.join(found)} in the data.")
        else:
            d["questions"].append(ask.class_choice(
                f"target_class:{target}", f"The target '{target}' matches no class in the data "
                f"({', '.join(pool)}): which class is it?", "target_classes", pool))
    if not d["target_classes"]:
        positive = positive_class(pool)
        if positive is not None:
            mapped.append(positive)
            d["assumptions"].append(f"No target named: the positive class is '{positive}'.")
        elif d["task_type"] == "multiclass_classification":
            d["assumptions"].append("No target class named: all classes weigh equally.")
    d["target_classes"] = list(dict.fromkeys(mapped))
    d["_class_mapping"] = mapping


def _metric_class(d: Draft, fp: DatasetFingerprint) -> None:
    params = d["primary_metric"]["params"]
    pool = _class_pool(d, fp)
    if "class" in params:
        wanted = str(params["class"])
        found = d["_class_mapping"].get(wanted) or match_class(wanted, pool)
        if found:
            params["class"] = found[0]
            if found[0] != wanted:
                d["assumptions"].append(f"Metric class '{wanted}' is '{found[0]}' in the data.")
        else:
            d["questions"].append(ask.class_choice(
                "metric_class", f"The metric's class '{wanted}' matches no class in the data ({', '.join(pool)}): "
                "which class should it be measured for?", "primary_metric.params.class", pool))
    elif d["primary_metric"]["name"] in _OPERATING_METRICS and d["target_classes"]:
        params["class"] = d["target_classes"][0]
        d["assumptions"].append(f"The operating point is measured for class '{params['class']}'.")


def _ground_confounder(conf: dict[str, Any], d: Draft, fp: DatasetFingerprint) -> None:
    name = conf["name"]
    column = conf["column"]
    if column not in fp.metadata_columns:
        column = find_column(name, fp.metadata_columns)
    if column is None:
        cols = ", ".join(fp.metadata_columns) or "none"
        text = f"You asked about {name} but the data has no column for it (columns: {cols}). Add a column or " \
               "drop the confounder."
        d["questions"].append(ask.class_choice(f"confounder_column:{name}", text, f"confounders.{name}.column",
                                               fp.metadata_columns) if fp.metadata_columns else
                              ask.note(f"confounder_column:{name}", text))
        conf["column"] = None
        return
    conf["column"] = column
    d["assumptions"].append(f"Confounder {name} is column '{column}'.")
    assoc = fp.association(column)
    if assoc is None:
        d["assumptions"].append(f"No association with the label was computed for '{column}'.")
    elif _is_constant(assoc):
        d["assumptions"].append(f"Column '{column}' is constant in this data ({assoc.note or 'one value'}): "
                                f"there is nothing to mitigate; {name} is only reported.")
        conf["action"] = "report"
    elif assoc.flagged and _open(d, f"confounder_action:{name}"):
        _mitigate_by_default(conf, column, assoc, d)
    elif assoc.flagged:
        d["assumptions"].append(f"'{column}' predicts the label {_strength(assoc)} on its own: the concern "
                                f"is real; action {conf['action']}.")
    else:
        d["assumptions"].append(f"'{column}' predicts the label only weakly on its own ({_strength(assoc)}); "
                                f"kept action '{conf['action']}' as asked.")


def _qid(question: Question | dict[str, Any]) -> str:
    return question.id if isinstance(question, Question) else question["id"]


def _open(d: Draft, question_id: str) -> bool:
    return any(_qid(q) == question_id for q in d["questions"])


def _mitigate_by_default(conf: dict[str, Any], column: str, assoc: ColumnAssociation, d: Draft) -> None:
    """A confounder the clinician named without saying what to do, which the data shows is a real shortcut:
    mitigated (the safe side: selection then does not reward it), the question kept open with that default."""
    name = conf["name"]
    conf["action"] = "mitigate"
    d["assumptions"].append(f"Confounder {name}: mitigate by default, because column '{column}' predicts the "
                            f"label {_strength(assoc)} on its own and no action was stated; answer the question "
                            "to change it.")
    qid = f"confounder_action:{name}"
    d["questions"] = [ask.confounder_action(name, "mitigate", f"You mentioned {name.replace('_', ' ')}, and "
                                            f"'{column}' predicts the label {_strength(assoc)}: keep the model "
                                            "from using it (default) or only report its effect?")
                      if _qid(q) == qid else q for q in d["questions"]]


def _was_added(column: str | None, d: Draft) -> bool:
    return column is not None and any(a.startswith(_ADDED.format(column=column)) for a in d["assumptions"])


def _confounders(d: Draft, fp: DatasetFingerprint) -> None:
    for conf in d["confounders"]:
        if not _was_added(conf["column"], d):
            _ground_confounder(conf, d, fp)


def _unique_name(preferred: str, fallback: str, taken: set[str]) -> str:
    for candidate in (preferred, fallback):
        if candidate not in taken:
            return candidate
    return next(f"{fallback}_{i}" for i in range(2, len(taken) + 3) if f"{fallback}_{i}" not in taken)


def _flagged_associations(d: Draft, fp: DatasetFingerprint) -> None:
    used = {c["column"] for c in d["confounders"] if c["column"]}
    names = {c["name"] for c in d["confounders"]}
    for assoc in fp.associations:
        if not assoc.flagged or assoc.column in used or _is_constant(assoc):
            continue
        if _was_added(assoc.column, d):
            continue  # offered before and since removed by the clinician: leave it out
        name = _unique_name(confounder_for_column(assoc.column), _norm(assoc.column) or "column", names)
        d["questions"].append(ask.confounder_action(name, "report", f"`{assoc.column}` predicts the label "
                                                    f"{_strength(assoc)} on its own: mitigate, report, or ignore?",
                                                    ignorable=True))
        d["confounders"].append({"name": name, "column": assoc.column, "action": "report"})
        added = _ADDED.format(column=assoc.column)
        d["assumptions"].append(f"{added} as confounder {name} (action report).")
        used.add(assoc.column)
        names.add(name)


def _supervision(d: Draft, fp: DatasetFingerprint) -> None:
    if d["task_type"] != "detection" or fp.box_fraction is None:
        return
    sup = d["supervision"]
    data = fp.box_fraction
    if data <= 0.0:
        d["questions"].append(ask.note("no_boxes", "The data has no boxes at all: a detector cannot be "
                                       "trained. Add box annotations."))
        return
    if data >= 1.0:
        if sup["kind"] == "mixed":
            d["assumptions"].append("The request implied only some images have boxes, but every image in the "
                                    "data has them: supervision set to full.")
        sup.update(kind="full", box_fraction=1.0)
        return
    said = sup["box_fraction"]
    if sup["kind"] == "full":
        d["assumptions"].append("Every image was assumed to have boxes, but the data has them on "
                                f"{data:.1%}: supervision set to mixed.")
    elif said is None:
        d["assumptions"].append(f"Share of images with boxes, from the data: {data:.1%}.")
    elif abs(said - data) > 0.02:
        d["assumptions"].append(f"You said {said:.0%} of images have boxes; the data has them on {data:.1%}: "
                                f"using the data's value.")
    sup.update(kind="mixed", box_fraction=data)


GroundingStep = Callable[[Draft, "DatasetFingerprint"], None]

#: The grounding steps, in the order they run.
GROUNDING: tuple[GroundingStep, ...] = (
    _provenance, _classes_and_task, _targets, _metric_class, _confounders, _flagged_associations,
    _supervision,
)


def ground_spec(spec: TaskSpec, fingerprint: DatasetFingerprint) -> TaskSpec:
    """A new spec whose classes, targets, metric class, confounder columns and supervision match the data.

    Args:
        spec: the parsed spec (not modified).
        fingerprint: the dataset fingerprint.

    Returns:
        A new, validated :class:`TaskSpec`; what was decided is appended to ``assumptions``, what could not
        be decided to ``questions``.
    """
    d: Draft = spec.model_dump()
    for step in GROUNDING:
        step(d, fingerprint)
    d.pop("_class_mapping", None)
    d["assumptions"] = list(dict.fromkeys(d["assumptions"]))
    d["questions"] = ask.dedupe([q if isinstance(q, Question) else Question.model_validate(q)
                                 for q in d["questions"]])
    return TaskSpec.model_validate(d)
