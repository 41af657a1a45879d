"""Read a request into facts: which modality, findings, confounders, risk words, metrics, numbers.

A :class:`Reading` says what the text *contains*; :mod:`.offline` decides what the task *is*.

Example:
    >>> r = read_request("pneumothorax on CXR, don't let it cheat with chest drains")
    >>> r.modality, r.named_conditions, r.confounders
    ('chest_xray', ['pneumothorax'], [('chest_drain', 'mitigate')])
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .anaphora import implied_mentions, pronoun_mentions
from .matching import Mention, find_mentions, has_term, is_negated, nearest_cue, phrase_bounds
from .normalize import normalize
from .quantities import Quantities, read_quantities
from .vocabulary import (CLASSIFY_VERBS, CONDITIONS, CONFOUNDER_MODALITY, CONFOUNDER_TERMS,
                         CONTEXT_CONFOUNDER_TERMS, DETECTION_NEGATIONS, DETECTION_TERMS, ERROR_COSTS, EMPHASIS_CUES, IMAGING_TERMS,
                         METRIC_TERMS, MITIGATE_CUES, MITIGATE_STRONG_CUES, MIXED_SUPERVISION_TERMS,
                         MODALITY_TERMS, MULTICLASS_TERMS, OUTPUT_TERMS, REPORT_CUES, REPORT_OVERRIDES,
                         RISK_TERMS, SHORTCUT_WORDS, UNDECIDED_CUES)
from .weighing import weigh

__all__ = ["Reading", "read_request", "CONDITION_TABLE"]

CONDITION_TABLE: dict[str, tuple[str, ...]] = {c.name: c.patterns for c in CONDITIONS}
_CONDITION_MODALITY = {c.name: c.modality for c in CONDITIONS}
_ACTION_CUES: dict[str, tuple[str, ...]] = {
    "undecided": UNDECIDED_CUES,
    "mitigate_strong": MITIGATE_STRONG_CUES,
    "report": REPORT_OVERRIDES + REPORT_CUES,
    "mitigate": MITIGATE_CUES,
}
#: "missing one is worse than a false alarm": what follows "than" is the lesser worry.
_COMPARED_AWAY = re.compile(r"\b(?:than|over)\s+(?:an?\s+|the\s+|some\s+|any\s+)?$")
_ACTION_OF_CUE = {"undecided": None, "mitigate_strong": "mitigate", "report": "report", "mitigate": "mitigate"}
_DETECTION_TAKEN_BACK = re.compile(r"(?<!\w)(?:" + "|".join(DETECTION_NEGATIONS) + r")\s+(?:\w+\s+)?$")


@dataclass
class Reading:
    """Facts found in one request (normalised text, no decisions yet)."""

    text: str
    corrections: tuple[tuple[str, str], ...] = ()
    imaging_words: bool = False
    modality: str = "other"
    modality_from: str = ""
    named_conditions: list[str] = field(default_factory=list)
    negated_conditions: list[str] = field(default_factory=list)
    emphasised_conditions: list[str] = field(default_factory=list)
    confounders: list[tuple[str, str | None]] = field(default_factory=list)
    shortcut_concern: bool = False
    risk: list[str] = field(default_factory=list)
    metrics_named: list[str] = field(default_factory=list)
    detection_cue: bool = False
    multiclass_cue: bool = False
    classify_verb: bool = False
    mixed_cue: bool = False
    output: str | None = None
    quantities: Quantities = field(default_factory=Quantities)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _modality(text: str, conditions: list[str], confounders: list[str]) -> tuple[str, str]:
    scores = {name: 0 for name in MODALITY_TERMS}
    evidence: dict[str, list[str]] = {name: [] for name in MODALITY_TERMS}
    for m in find_mentions(text, MODALITY_TERMS):
        scores[m.key] += 2
        evidence[m.key].append(text[m.start:m.end])
    for name in conditions:
        if _CONDITION_MODALITY.get(name):
            scores[_CONDITION_MODALITY[name]] += 1
            evidence[_CONDITION_MODALITY[name]].append(name)
    for name in confounders:
        if name in CONFOUNDER_MODALITY:
            scores[CONFOUNDER_MODALITY[name]] += 1
            evidence[CONFOUNDER_MODALITY[name]].append(name.replace("_", " "))
    best = max(scores, key=lambda k: (scores[k], -list(scores).index(k)))
    if scores[best] == 0:
        return "other", ""
    return best, ", ".join(_unique(evidence[best]))


def _conditions(text: str, reading: Reading) -> None:
    positive: list[str] = []
    negated: list[str] = []
    emphasised: list[str] = []
    for m in find_mentions(text, CONDITION_TABLE):
        if is_negated(text, m):
            negated.append(m.key)
            continue
        positive.append(m.key)
        start, end = phrase_bounds(text, m.start)
        around = text[start:m.start] + " " + text[m.end:end]
        if has_term(around, EMPHASIS_CUES):
            emphasised.append(m.key)
    reading.named_conditions = _unique(positive)
    reading.negated_conditions = [c for c in _unique(negated) if c not in positive]
    reading.emphasised_conditions = _unique(emphasised)


def _confounder_mentions(text: str, modality: str) -> list[Mention]:
    """Confounders named in the text; one named as a needless intervention ("an unnecessary chest drain") is
    an error weighed, not a confounder."""
    needless = [(m.start, m.end) for m in find_mentions(text, {"needless": ERROR_COSTS["needless"]})]
    mentions = [m for m in find_mentions(text, CONFOUNDER_TERMS)
                if not any(a <= m.start and m.end <= b for a, b in needless)]
    taken = [(m.start, m.end) for m in mentions]
    for pattern, by_modality in CONTEXT_CONFOUNDER_TERMS.items():
        name = by_modality.get(modality, by_modality.get("default"))
        if name is None:
            continue
        for m in find_mentions(text, {name: (pattern,)}, taken=taken):
            mentions.append(m)
            taken.append((m.start, m.end))
    return sorted(mentions, key=lambda m: (m.start, m.end))


def _confounders(text: str, modality: str) -> list[tuple[str, str | None]]:
    """Each confounder named (or pointed back at by a pronoun) with the action its nearest cue says.

    A mitigate cue anywhere wins over a report cue elsewhere: "drains are common; don't let it use them"; a
    shortcut worry in a later clause that names nothing mitigates what was named before it.
    """
    named = _confounder_mentions(text, modality)
    actions: dict[str, str | None] = {}
    for m in sorted(named + pronoun_mentions(text, named), key=lambda m: m.start):
        cue = nearest_cue(text, m, _ACTION_CUES)
        action = _ACTION_OF_CUE[cue] if cue else None
        if m.key not in actions or (action is not None and actions[m.key] != "mitigate"):
            actions[m.key] = action
    for m in implied_mentions(text, named):
        actions[m.key] = "mitigate"
    return list(actions.items())


def _risk(text: str) -> list[str]:
    """Risk preferences: from sentences that weigh the two errors, else from risk phrases."""
    weighed = weigh(text)
    inside = [span for _, span in weighed]
    said = [m.key for m in find_mentions(text, RISK_TERMS)
            if not _COMPARED_AWAY.search(text[:m.start]) and not any(a <= m.start < b for a, b in inside)]
    return _unique([side for side, _ in weighed] + said)


def _detection_cue(text: str) -> bool:
    """A detection word not taken back ("no boxes needed", "without bounding boxes")."""
    return any(not _DETECTION_TAKEN_BACK.search(text[:m.start])
               for m in find_mentions(text, {"detection": DETECTION_TERMS}))


def _output(text: str) -> str | None:
    return next((name for name, patterns in OUTPUT_TERMS.items() if has_term(text, patterns)), None)


def read_request(request: str) -> Reading:
    """Find every fact the offline parser uses in ``request`` (typos corrected first)."""
    norm = normalize(request)
    text = norm.text
    reading = Reading(text=text, corrections=norm.corrections)
    _conditions(text, reading)
    first_pass = [m.key for m in find_mentions(text, CONFOUNDER_TERMS)]
    reading.modality, reading.modality_from = _modality(
        text, reading.named_conditions + reading.negated_conditions, first_pass)
    reading.confounders = _confounders(text, reading.modality)
    reading.imaging_words = has_term(text, IMAGING_TERMS) or reading.modality != "other"
    reading.shortcut_concern = has_term(text, SHORTCUT_WORDS)
    reading.risk = _risk(text)
    reading.metrics_named = _unique([m.key for m in find_mentions(text, METRIC_TERMS)])
    reading.detection_cue = _detection_cue(text)
    reading.multiclass_cue = has_term(text, MULTICLASS_TERMS)
    reading.classify_verb = has_term(text, CLASSIFY_VERBS)
    reading.mixed_cue = has_term(text, MIXED_SUPERVISION_TERMS)
    reading.output = _output(text)
    reading.quantities = read_quantities(text)
    return reading
