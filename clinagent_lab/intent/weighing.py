"""Which mistake a request says is worse, from sentences that weigh one against the other.

Clinicians rarely say "sensitivity"; they say "an unnecessary biopsy is cheap next to a late diagnosis" or
"a missed pneumothorax can kill". This module finds the two kinds of error in their words
(:data:`~.vocabulary.ERROR_COSTS`: *missed* cases cost sensitivity, *needless* work-ups cost specificity) and
reads how each sentence weighs them (:data:`~.vocabulary.COST_COMPARISONS`):

1. both kinds in one sentence, A before B: a comparison between them ("A is worse than B", "A is cheap next
   to B") or before both ("better A than B", "I'd rather have A than B") says which weighs more;
2. one kind with a judgement in its clause: "can kill" or "unacceptable" makes it the worse one, "fine" or
   "acceptable" the lesser one.

Example:
    >>> weigh("an unnecessary biopsy is cheap next to a late diagnosis.")
    [('sensitivity', (0, 56))]
    >>> weigh("false alarms would swamp the clinic. a missed fracture is ok, it gets caught at follow-up.")
    [('specificity', (36, 90))]
"""

from __future__ import annotations

import re

from .matching import Mention, clause_bounds, find_mentions, nearest_cue, phrase_bounds
from .vocabulary import COST_COMPARISONS, ERROR_COSTS

__all__ = ["sentence_spans", "weigh"]

_PREFERENCE = {"missed": "sensitivity", "needless": "specificity"}
_OTHER = {"missed": "needless", "needless": "missed"}
_SENTENCE = re.compile(r"[^.!?;\n]+(?:[.!?;\n]|$)")
_BETWEEN = {k: COST_COMPARISONS[k] for k in ("first_worse", "first_lesser")}
_PREFIX = re.compile(r"(?<!\w)(?:" + "|".join(COST_COMPARISONS["second_worse"]) + r")(?!\w)")
_THAN = re.compile(r"(?<!\w)(?:than|to|over|instead of|rather than|versus|vs\.?)(?!\w)")
_JUDGEMENT = {k: COST_COMPARISONS[k] for k in ("bad", "mild")}


def sentence_spans(text: str) -> list[tuple[int, int]]:
    """Spans of the sentences (split at . ! ? ; and line breaks; a decimal point does not split)."""
    protected = re.sub(r"(?<=\d)\.(?=\d)", ",", text)
    return [m.span() for m in _SENTENCE.finditer(protected) if m.group(0).strip()]


def _compared(sentence: str, a: Mention, b: Mention) -> str | None:
    """The kind that weighs more when ``a`` and ``b`` (of different kinds, ``a`` first) are compared."""
    between = sentence[a.end:b.start]
    hits = find_mentions(between, _BETWEEN)
    if hits:
        return a.key if hits[0].key == "first_worse" else b.key
    if _PREFIX.search(sentence[:a.start]) and _THAN.search(between):
        return b.key
    return None


def _judged(sentence: str, mention: Mention) -> str | None:
    """The worse kind by the judgement in the mention's own phrase ("a false alarm is acceptable, ..."), else
    by the first judgement after it in its clause."""
    start, end = phrase_bounds(sentence, mention.start)
    cue = nearest_cue(sentence[start:end], Mention(mention.key, mention.start - start, mention.end - start),
                      _JUDGEMENT)
    if cue is None:  # "a false alarm means a second look, which is fine": a judgement later in the clause
        later = find_mentions(sentence[mention.end:clause_bounds(sentence, mention.start)[1]], _JUDGEMENT)
        cue = later[0].key if later else None
    if cue is None:
        return None
    return mention.key if cue == "bad" else _OTHER[mention.key]


def _sentence_verdict(sentence: str) -> str | None:
    errors = find_mentions(sentence, ERROR_COSTS)
    for i, a in enumerate(errors):
        for b in errors[i + 1:]:
            if b.key != a.key:
                worse = _compared(sentence, a, b)
                if worse is not None:
                    return worse
    verdicts = {v for v in (_judged(sentence, m) for m in errors) if v is not None}
    return verdicts.pop() if len(verdicts) == 1 else None


def weigh(text: str) -> list[tuple[str, tuple[int, int]]]:
    """Risk preferences stated by weighing errors, each with the span of the sentence that states it.

    Args:
        text: the normalised request.

    Returns:
        ``[("sensitivity" | "specificity", (start, end)), ...]`` in text order.
    """
    found = []
    for start, end in sentence_spans(text):
        worse = _sentence_verdict(text[start:end])
        if worse is not None:
            found.append((_PREFERENCE[worse], (start, end)))
    return found
