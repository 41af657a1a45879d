"""The offline semantic parser: a clinician's sentence -> :class:`~clinagent_lab.spec.TaskSpec`.

Rules, not a model: :func:`~.reading.read_request` finds the facts, then a fixed list of small decision
steps (``DECISIONS``) fills the spec one field at a time, each writing down what it assumed. The same text
always gives the same spec.

Decisions worth knowing (each is also written into the spec's ``assumptions``):

- No metric named: AUROC is primary; the risk preference ("can't miss" -> sensitivity) is recorded and
  picks the operating point later. A stated operating point ("sensitivity at 80% specificity", "92%
  sensitivity") makes the matching thresholded metric primary; a second stated value becomes the target.
- Risk preference: stated risk words win ("never overlook a positive", "too many false alarms"); else a
  stressed finding ("melanoma matters most") means sensitivity; else the quantity an operating point puts
  first ("sensitivity at 80% specificity" and "92% sensitivity" -> sensitivity; "85% spec" ->
  specificity); else balanced.
- Risk words also come from sentences that weigh the two errors ("an unnecessary biopsy is cheap next to a
  late diagnosis" -> sensitivity, :mod:`.weighing`) and from stated priorities ("sensitivity matters").
- A confounder the clinician waves away ("don't worry about the rulers", "you can ignore the rulers") is kept
  with action ``report``: it costs nothing and its association with the label is still shown. "Ignore the
  rulers", "rulers must not matter", "make sure it is not just picking up rulers" mean ``mitigate``; so does
  a pronoun pointing back at a named confounder ("... rulers. Don't let it rely on them", :mod:`.anaphora`).
  A confounder named without either cue is ``report`` plus a question; grounding mitigates it by default
  when its column predicts the label.
- A negated finding ("not melanoma", "non-melanoma") is never a target.

Example:
    >>> spec = parse_offline("pneumothorax on chest X-rays, don't let the model cheat with chest drains")
    >>> spec.task_type, spec.target_classes, [(c.name, c.action) for c in spec.confounders]
    ('binary_classification', ['pneumothorax'], [('chest_drain', 'mitigate')])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

from ..errors import IntentError
from ..spec import Budget, Confounder, MetricSpec, Supervision, TaskSpec
from . import questions as ask
from .grounding import ground_spec
from .reading import Reading, read_request
from .vocabulary import CONDITIONS, MODALITY_LABELS

if TYPE_CHECKING:
    from ..data.base import DatasetFingerprint

__all__ = ["RequestKind", "assess_request", "parse_offline", "DECISIONS", "NON_IMAGING_QUESTION"]

RequestKind = Literal["empty", "non_imaging", "vague", "imaging"]

NON_IMAGING_QUESTION = ("This does not look like a medical-imaging task: say which images (e.g. chest "
                        "X-rays, dermoscopy, wrist radiographs) and what the model should find in them.")
_BENIGN = {c.name for c in CONDITIONS if c.benign}
_OPERATING_METRIC = {"specificity": ("sensitivity_at_specificity", "sensitivity at {:.0%} specificity"),
                     "sensitivity": ("specificity_at_sensitivity", "specificity at {:.0%} sensitivity")}
_CLASSIFICATION_METRICS = ("auroc", "balanced_accuracy", "f1")

Draft = dict[str, Any]
Decision = Callable[[Reading, Draft], None]


def _assess(r: Reading) -> RequestKind:
    if not r.imaging_words and not r.named_conditions and not r.negated_conditions:
        return "non_imaging"
    if r.named_conditions or r.modality == "musculoskeletal_xray":
        return "imaging"
    if r.modality != "other" and (r.multiclass_cue or (r.modality == "dermoscopy" and r.classify_verb)):
        return "imaging"
    return "vague"


def assess_request(text: str) -> RequestKind:
    """How usable a request is: ``empty``, ``non_imaging``, ``vague`` (imaging, but what to find is
    unclear) or ``imaging``.

    Example:
        >>> [assess_request(t) for t in ("", "what's the weather", "make me an AI for my X-rays",
        ...                              "detect pneumothorax on chest X-rays")]
        ['empty', 'non_imaging', 'vague', 'imaging']
    """
    if not text or not text.strip():
        return "empty"
    return _assess(read_request(text))


# -- decisions, in order -----------------------------------------------------------------------------------


def _typos(r: Reading, d: Draft) -> None:
    for typed, read_as in r.corrections:
        d["assumptions"].append(f"Read '{typed}' as '{read_as}'.")


def _modality(r: Reading, d: Draft) -> None:
    d["modality"] = r.modality
    if r.modality == "other":
        d["questions"].append(ask.modality("Which images are these: chest X-rays, dermoscopy, "
                                           "musculoskeletal (e.g. wrist) X-rays, or something else?"))
    else:
        d["assumptions"].append(f"Modality: {r.modality} (from: {r.modality_from}).")


def _targets(r: Reading, d: Draft) -> None:
    named = r.named_conditions
    if r.emphasised_conditions:
        targets = list(r.emphasised_conditions)
        d["assumptions"].append(f"Target class (costly to miss): {', '.join(targets)}, as the request "
                                "stresses it.")
    elif named:
        targets = [c for c in named if c not in _BENIGN] or list(named)
        d["assumptions"].append(f"Target class (costly to miss): {', '.join(targets)}.")
    elif r.modality == "musculoskeletal_xray":
        targets = ["fracture"]
        d["assumptions"].append("No finding named: on musculoskeletal X-rays the target is taken to be "
                                "fracture.")
    else:
        targets = []
    for name in r.negated_conditions:
        d["assumptions"].append(f"Not a target: {name} (negated in the request).")
    d["target_classes"] = targets


def _task_type(r: Reading, d: Draft) -> None:
    if r.detection_cue:
        d["task_type"], why = "detection", "the request mentions boxes or localisation"
    elif r.multiclass_cue:
        d["task_type"], why = "multiclass_classification", "the request asks for several categories"
    elif len(r.named_conditions) >= 3:
        d["task_type"], why = "multiclass_classification", "three or more findings are named"
    elif r.modality == "dermoscopy" and not r.named_conditions and r.classify_verb:
        d["task_type"] = "multiclass_classification"
        why = "lesions are to be classified; classes come from the data"
    else:
        target = " or ".join(d["target_classes"]) or "the finding"
        d["task_type"] = "binary_classification"
        why = f"{target} vs the rest; the data's classes decide in the end"
    d["assumptions"].append(f"Task: {d['task_type']} ({why}).")


def _risk(r: Reading, d: Draft) -> None:
    sides = [k for k in r.risk if k != "balanced"]
    op = r.quantities.operating_point
    if len(sides) > 1:
        d["risk_preference"] = "balanced"
        d["questions"].append(ask.risk_preference("The request worries both about missed cases and about "
                                                  "false alarms: which mistake is worse?"))
        d["assumptions"].append("Risk preference: balanced (both mistakes were named as worries).")
        return
    if sides:
        d["risk_preference"], why = sides[0], "as stated"
    elif "balanced" in r.risk:
        d["risk_preference"], why = "balanced", "as stated"
    elif r.emphasised_conditions:
        d["risk_preference"], why = "sensitivity", "the stressed class is costly to miss"
    elif op is not None:
        d["risk_preference"] = r.quantities.operating_subject or op[0]
        why = f"the request puts {d['risk_preference']} first in its operating point"
    else:
        d["risk_preference"], why = "balanced", "default; nothing said about which mistake is worse"
    d["assumptions"].append(f"Risk preference: {d['risk_preference']} ({why}).")


def _operating_metric(r: Reading, d: Draft) -> MetricSpec:
    kind, value = r.quantities.operating_point  # type: ignore[misc]
    name, label = _OPERATING_METRIC[kind]
    params: dict[str, Any] = {kind: value}
    if d["target_classes"]:
        params["class"] = d["target_classes"][0]
    elif d["task_type"] == "multiclass_classification":
        d["questions"].append(ask.note("metric_class", f"Which class should '{label.format(value)}' be "
                                                         "measured for?"))
    d["assumptions"].append(f"Primary metric: {label.format(value)} (the operating point stated).")
    return MetricSpec(name=name, params=params)


def _classification_metric(r: Reading, d: Draft) -> MetricSpec:
    q = r.quantities
    named = [m for m in r.metrics_named if m in _CLASSIFICATION_METRICS]
    if q.target_metric in _CLASSIFICATION_METRICS:
        d["assumptions"].append(f"Primary metric: {q.target_metric} (a target value is set for it).")
        return MetricSpec(name=q.target_metric)
    if q.operating_point is not None:
        return _operating_metric(r, d)
    if named:
        d["assumptions"].append(f"Primary metric: {named[0]} (named in the request).")
        return MetricSpec(name=named[0])
    d["assumptions"].append("Primary metric: auroc (no metric or operating point stated); the risk "
                            f"preference ({d['risk_preference']}) picks the operating threshold.")
    return MetricSpec(name="auroc")


def _metric(r: Reading, d: Draft) -> None:
    q = r.quantities
    if d["task_type"] == "detection":
        metric = MetricSpec(name="map50")
        d["assumptions"].append("Primary metric: map50 (mAP at IoU 0.5) for detection.")
        if q.operating_point is not None:
            d["assumptions"].append("The stated operating point is reported for image-level scores; "
                                    "selection uses map50.")
    else:
        metric = _classification_metric(r, d)
        if "map50" in r.metrics_named:
            d["questions"].append(ask.task_is_detection("mAP is a detection metric, but no boxes were "
                                                        "mentioned: should the model draw boxes?"))
    d["primary_metric"] = metric
    d["secondary_metrics"] = [m for m in r.metrics_named
                              if m != metric.name and (m != "map50" or d["task_type"] == "detection")]
    _target_value(r, d, metric.name)


def _target_value(r: Reading, d: Draft, primary: str) -> None:
    q = r.quantities
    if q.target_value is None:
        return
    if q.target_metric in (None, primary, "operating_point"):
        d["target_value"] = q.target_value
        d["assumptions"].append(f"Stop once {primary} reaches {q.target_value:g}.")
    else:
        d["assumptions"].append(f"A target of {q.target_value:g} was given for {q.target_metric}, which is "
                                f"not the primary metric ({primary}); it is reported, not used to stop.")


def _confounders(r: Reading, d: Draft) -> None:
    confounders = []
    for name, action in r.confounders:
        label = name.replace("_", " ")
        if action is None:
            action = "report"
            d["questions"].append(ask.confounder_action(
                name, "report", f"You mentioned {label}: should the model be kept from using it (mitigate) or "
                                "should its effect only be reported?"))
            d["assumptions"].append(f"Confounder {name}: report for now (not said whether to mitigate it); "
                                    "mitigated by default if the data shows it predicts the label.")
        elif action == "report":
            d["assumptions"].append(f"Confounder {name}: report only (the request does not ask to fight it); "
                                    f"its association with the label is still measured.")
        else:
            d["assumptions"].append(f"Confounder {name}: mitigate (the model must not rely on it); selection "
                                    f"then uses a metric that does not reward the shortcut.")
        confounders.append(Confounder(name=name, action=action))
    if r.shortcut_concern and not confounders:
        d["questions"].append(ask.note("confounder_name", "You worry the model could cheat: on what (e.g. "
                                       "chest drains, rulers, the hospital)? Name it so it can be checked."))
    d["confounders"] = confounders


def _supervision(r: Reading, d: Draft) -> None:
    q = r.quantities
    if d["task_type"] != "detection":
        d["supervision"] = Supervision()
        return
    if q.box_fraction is not None and q.box_fraction < 1.0:
        d["supervision"] = Supervision(kind="mixed", box_fraction=q.box_fraction)
        d["assumptions"].append(f"Supervision: mixed, boxes on {q.box_fraction:.0%} of images; the rest "
                                "carry image-level labels.")
    elif q.box_fraction == 1.0 or q.all_boxed:
        d["supervision"] = Supervision(kind="full", box_fraction=1.0)
        d["assumptions"].append("Supervision: full (every image has boxes).")
    elif r.mixed_cue:
        d["supervision"] = Supervision(kind="mixed")
        d["assumptions"].append("Supervision: mixed (only some images have boxes); the share comes from "
                                "the data.")
    else:
        d["supervision"] = Supervision()
        d["assumptions"].append("Supervision: full (assumed every image has boxes; the data will tell).")


def _output(r: Reading, d: Draft) -> None:
    if d["task_type"] == "detection":
        d["output_format"] = "boxes"
    else:
        d["output_format"] = r.output or "probabilities"


def _budget(r: Reading, d: Draft) -> None:
    read = r.quantities.budget
    default = Budget()
    iteration = read.iteration_minutes or default.iteration_minutes
    if read.total_minutes is not None and read.iteration_minutes is None:
        iteration = min(iteration, read.total_minutes)
    budget = Budget(max_iterations=read.max_iterations or default.max_iterations,
                    iteration_minutes=iteration, total_minutes=read.total_minutes)
    d["budget"] = budget
    total = f", {budget.total_minutes:g} minutes in all" if budget.total_minutes else ""
    stated = read.max_iterations or read.iteration_minutes or read.total_minutes
    end = "." if stated else " (default)."
    d["assumptions"].append(f"Budget: up to {budget.max_iterations} iterations of at most "
                            f"{budget.iteration_minutes:g} minutes{total}{end}")


def _objective(r: Reading, d: Draft) -> None:
    where = MODALITY_LABELS[d["modality"]]
    targets = " and ".join(d["target_classes"])
    if d["task_type"] == "detection":
        text = f"detect and box {targets or 'the finding'} on {where}"
    elif d["task_type"] == "multiclass_classification":
        text = f"classify {where} into the dataset's classes"
        if targets:
            text += f" ({targets} matters most)"
    else:
        text = f"detect {targets or 'the finding'} on {where}"
    d["objective"] = text


def _vague(r: Reading, d: Draft) -> None:
    if _assess(r) != "vague":
        return
    asks = []
    if not d["target_classes"]:
        asks.append(ask.note("target_classes", "What should the model find or tell apart on these images (e.g. "
                             "pneumothorax vs normal, fracture vs no fracture, or the lesion categories)?"))
    if not r.risk and r.quantities.operating_point is None:
        asks.append(ask.risk_preference("Which outcome matters more: missing a case (favour sensitivity) or a "
                                        "false alarm (favour specificity)?", d["risk_preference"]))
    d["questions"][:0] = asks
    d["assumptions"].append("The request is vague: defaults were filled in; answer the questions to refine "
                            "them.")


#: The decision steps, in the order they run. Each reads the :class:`Reading` and writes into the draft.
DECISIONS: tuple[Decision, ...] = (
    _typos, _modality, _targets, _task_type, _risk, _metric, _confounders, _supervision, _output, _budget,
    _objective, _vague,
)


def _non_imaging(text: str) -> TaskSpec:
    return TaskSpec(request=text, questions=[ask.note("imaging_task", NON_IMAGING_QUESTION)],
                    assumptions=["Nothing in the request names images or a finding; no task was filled in."],
                    parsed_by="offline")


def _dedupe(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def parse_offline(text: str, fingerprint: DatasetFingerprint | None = None) -> TaskSpec:
    """Turn a clinician's request into a :class:`TaskSpec` without any model or network.

    Args:
        text: the request as typed.
        fingerprint: when given, the spec is grounded in the data (:func:`~.grounding.ground_spec`).

    Returns:
        A new spec with ``parsed_by="offline"``; ``assumptions`` says what was filled in, ``questions``
        what could not be decided (for a non-imaging request: that it is not an imaging task).

    Raises:
        IntentError: when ``text`` is empty or only whitespace.

    Example:
        >>> spec = parse_offline("detect wrist fractures, only 5% of images have boxes")
        >>> spec.task_type, spec.supervision.box_fraction, spec.primary_metric.name
        ('detection', 0.05, 'map50')
    """
    if not text or not text.strip():
        raise IntentError("the request is empty", where="request text",
                          fix="say what to find in which images, e.g. 'pneumothorax on chest X-rays'")
    reading = read_request(text)
    if _assess(reading) == "non_imaging":
        return _non_imaging(text)
    draft: Draft = {"assumptions": [], "questions": []}
    for decide in DECISIONS:
        decide(reading, draft)
    draft["assumptions"] = _dedupe(draft["assumptions"] + reading.quantities.assumptions)
    numbers = [ask.note(f"number:{i}", q) for i, q in enumerate(reading.quantities.questions, 1)]
    draft["questions"] = ask.dedupe(draft["questions"] + numbers)
    spec = TaskSpec(request=text, parsed_by="offline", **draft)
    return spec if fingerprint is None else ground_spec(spec, fingerprint)
