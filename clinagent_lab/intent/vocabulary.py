"""What the offline parser knows about clinical language: the tables of ``vocabulary.yaml``, typed.

Every table maps a canonical name to regular-expression fragments. The fragments are matched against the
lower-cased, typo-corrected request as whole words (``(?<!\\w)`` ... ``(?!\\w)`` is added around them), so
``drains?`` matches "drain" and "drains" but not "drainage". Longer matches win over shorter ones that
overlap them ("chest drains" beats "drains", "surgical skin markers" beats "markers").

Adding a synonym is a one-line change in ``vocabulary.yaml``; the matching logic lives in :mod:`.matching`
and :mod:`.reading`, the decisions in :mod:`.offline` and :mod:`.grounding`.

Example:
    >>> CONDITIONS[0].name, "chest_drain" in CONFOUNDER_TERMS
    ('melanoma', True)
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import yaml

__all__ = [
    "BOX_SHARE_TERMS",
    "BOX_TERMS",
    "CLASSIFY_VERBS",
    "CLASS_GROUPS",
    "CLASS_SYNONYMS",
    "COLUMN_RULES",
    "CONDITIONS",
    "CONFOUNDER_MODALITY",
    "CONFOUNDER_TERMS",
    "CONTEXT_CONFOUNDER_TERMS",
    "COST_COMPARISONS",
    "DETECTION_NEGATIONS",
    "DECOY_WORDS",
    "DETECTION_TERMS",
    "EMPHASIS_CUES",
    "ERROR_COSTS",
    "FRACTION_WORDS",
    "FULL_SUPERVISION_TERMS",
    "GENERIC_CONDITIONS",
    "IMAGING_TERMS",
    "KNOWN_WORDS",
    "METRIC_TERMS",
    "MITIGATE_CUES",
    "MITIGATE_STRONG_CUES",
    "MIXED_SUPERVISION_TERMS",
    "MODALITY_LABELS",
    "MODALITY_TERMS",
    "MULTICLASS_TERMS",
    "NEGATION_BREAKERS",
    "NEGATION_CUES",
    "NORMAL_CLASS_NAMES",
    "NUMBER_WORDS",
    "OUTPUT_TERMS",
    "POSITIVE_CLASS_NAMES",
    "POSTFIX_NEGATION",
    "PRONOUNS",
    "REPORT_CUES",
    "REPORT_OVERRIDES",
    "RISK_TERMS",
    "SENSITIVITY_WORDS",
    "SHORTCUT_WORDS",
    "SPECIFICITY_WORDS",
    "TARGET_CUES",
    "UNDECIDED_CUES",
    "ColumnRule",
    "Condition",
]


@dataclass(frozen=True)
class Condition:
    """A finding the clinician can name.

    Attributes:
        name: canonical clinical name, used in ``TaskSpec.target_classes`` before grounding.
        patterns: regular-expression fragments that name it.
        modality: the modality it suggests, or None.
        benign: True for findings that are rarely the class that is costly to miss (nevus).
    """

    name: str
    patterns: tuple[str, ...]
    modality: str | None = None
    benign: bool = False


@dataclass(frozen=True)
class ColumnRule:
    """How a confounder is found among metadata columns.

    Attributes:
        names: normalised column names that hold it exactly.
        tokens: words that, found among a column name's ``_``-separated words, point at it.
        exclude: words that rule a column out even if a token matches (``anatom`` for ``site``).
    """

    names: tuple[str, ...]
    tokens: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()


def _load() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("vocabulary.yaml").read_text(encoding="utf-8")
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # the C loader when libyaml is there
    return yaml.load(text, Loader=loader)


def _tuples(table: dict[str, list[str]]) -> dict[str, tuple[str, ...]]:
    return {key: tuple(values) for key, values in table.items()}


_V = _load()

CONDITIONS: tuple[Condition, ...] = tuple(
    Condition(c["name"], tuple(c["patterns"]), c.get("modality"), c.get("benign", False))
    for c in _V["conditions"])
MODALITY_TERMS: dict[str, tuple[str, ...]] = _tuples(_V["modality_terms"])
#: Words that make a request about images at all (used to tell "vague" from "non_imaging").
IMAGING_TERMS: tuple[str, ...] = tuple(_V["imaging_terms"])
#: Confounder vocabulary: canonical snake_case name -> phrases.
CONFOUNDER_TERMS: dict[str, tuple[str, ...]] = _tuples(_V["confounder_terms"])
#: Bare words whose confounder depends on the modality: phrase -> {modality or "default": confounder}.
CONTEXT_CONFOUNDER_TERMS: dict[str, dict[str, str]] = _V["context_confounder_terms"]
#: The modality a confounder hints at (a weak hint, outweighed by any modality word).
CONFOUNDER_MODALITY: dict[str, str] = _V["confounder_modality"]
#: "make the model ignore X", "ignore X", "X must not matter": keep the model from using X.
MITIGATE_STRONG_CUES: tuple[str, ...] = tuple(_V["mitigate_strong_cues"])
#: Phrases that say: look at it, but do not fight it.
REPORT_CUES: tuple[str, ...] = tuple(_V["report_cues"])
#: Report phrases that win over a mitigate word inside them ("you can ignore the rulers").
REPORT_OVERRIDES: tuple[str, ...] = tuple(_V["report_overrides"])
#: Phrases that leave the action open ("not sure whether to correct for them"): a question decides it.
UNDECIDED_CUES: tuple[str, ...] = tuple(_V["undecided_cues"])
#: Words that take a detection word back when just before it ("no boxes needed").
DETECTION_NEGATIONS: tuple[str, ...] = tuple(_V["detection_negations"])
#: Phrases that say: the model must not use it.
MITIGATE_CUES: tuple[str, ...] = tuple(_V["mitigate_cues"])
RISK_TERMS: dict[str, tuple[str, ...]] = _tuples(_V["risk_terms"])
#: Metric names. Longer alternatives first ("map@0.5" before "map").
METRIC_TERMS: dict[str, tuple[str, ...]] = _tuples(_V["metric_terms"])
DETECTION_TERMS: tuple[str, ...] = tuple(_V["detection_terms"])
MULTICLASS_TERMS: tuple[str, ...] = tuple(_V["multiclass_terms"])
CLASSIFY_VERBS: tuple[str, ...] = tuple(_V["classify_verbs"])
BOX_TERMS: tuple[str, ...] = tuple(_V["box_terms"])
#: Words that make a clause about the share of boxed images even without "boxes" ("a quarter are annotated").
BOX_SHARE_TERMS: tuple[str, ...] = BOX_TERMS + tuple(_V["box_share_terms"])
MIXED_SUPERVISION_TERMS: tuple[str, ...] = tuple(_V["mixed_supervision_terms"])
FULL_SUPERVISION_TERMS: tuple[str, ...] = tuple(_V["full_supervision_terms"])
OUTPUT_TERMS: dict[str, tuple[str, ...]] = _tuples(_V["output_terms"])
#: A condition named in the same phrase as one of these is the one that matters most.
EMPHASIS_CUES: tuple[str, ...] = tuple(_V["emphasis_cues"])
#: Words that, in the few words before a finding, negate it ("not melanoma", "non-melanoma").
NEGATION_CUES: tuple[str, ...] = tuple(_V["negation_cues"])
#: Between a negation cue and the finding these words undo the negation ("don't miss melanoma").
NEGATION_BREAKERS: tuple[str, ...] = tuple(_V["negation_breakers"])
#: Right after a finding: "melanoma is not the focus", "melanoma doesn't matter".
POSTFIX_NEGATION: str = _V["postfix_negation"]
#: Phrases that show a concern about shortcuts even when no confounder is named.
SHORTCUT_WORDS: tuple[str, ...] = tuple(_V["shortcut_words"])
SENSITIVITY_WORDS: str = _V["sensitivity_words"]
SPECIFICITY_WORDS: str = _V["specificity_words"]
TARGET_CUES: str = _V["target_cues"]
NUMBER_WORDS: dict[str, int] = _V["number_words"]
FRACTION_WORDS: dict[str, float] = {k: float(v) for k, v in _V["fraction_words"].items()}
#: Correctly spelled words a typo is corrected towards.
KNOWN_WORDS: tuple[str, ...] = tuple(_V["known_words"])
#: Ordinary words close to a known word; a token nearest to one of these is left alone.
DECOY_WORDS: tuple[str, ...] = tuple(_V["decoy_words"])
#: Clinical name -> dataset class names that mean it (compared case-insensitively, non-alphanumerics -> _).
CLASS_SYNONYMS: dict[str, tuple[str, ...]] = _tuples(_V["class_synonyms"])
#: A clinical name that stands for several dataset classes when the data has no single class for it.
CLASS_GROUPS: dict[str, tuple[str, ...]] = _tuples(_V["class_groups"])
#: Conditions that can stand for "the positive class" in a binary dataset whatever it is called.
GENERIC_CONDITIONS: tuple[str, ...] = tuple(_V["generic_conditions"])
POSITIVE_CLASS_NAMES: tuple[str, ...] = tuple(str(n) for n in _V["positive_class_names"])
NORMAL_CLASS_NAMES: tuple[str, ...] = tuple(str(n) for n in _V["normal_class_names"])
COLUMN_RULES: dict[str, ColumnRule] = {
    name: ColumnRule(tuple(r["names"]), tuple(r.get("tokens", ())), tuple(r.get("exclude", ())))
    for name, r in _V["column_rules"].items()}
MODALITY_LABELS: dict[str, str] = _V["modality_labels"]
#: Words that can stand for a confounder named before ("them", "these"), and what may follow each.
PRONOUNS: dict[str, Any] = _V["pronouns"]
#: What each kind of error looks like in a clinician's words: a missed case vs a needless work-up.
ERROR_COSTS: dict[str, tuple[str, ...]] = _tuples(_V["error_costs"])
#: Words between (or before) two errors that say which one weighs more.
COST_COMPARISONS: dict[str, tuple[str, ...]] = _tuples(_V["cost_comparisons"])
