"""Small matching helpers: whole-word phrase search, clauses, negation, nearest cue.

Example:
    >>> [m.key for m in find_mentions("no chest drains or rulers", {"chest_drain": (r"chest drains?",),
    ...                                                              "ruler": (r"rulers?",)})]
    ['chest_drain', 'ruler']
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from .vocabulary import NEGATION_BREAKERS, NEGATION_CUES, POSTFIX_NEGATION

__all__ = [
    "Mention",
    "compile_terms",
    "find_mentions",
    "has_term",
    "clause_bounds",
    "phrase_bounds",
    "is_negated",
    "nearest_cue",
    "overlaps",
]

_CLAUSE_BREAK = r"[!?;\n]|\.(?!\d)|\s-+\s|\bbut\b|\bhowever\b|\bwhereas\b|\balthough\b|\bthough\b"
_PHRASE_BREAK = _CLAUSE_BREAK + r"|[,:()]|\band\b|\bwhile\b"
_NEGATION_WINDOW_WORDS = 4


@dataclass(frozen=True)
class Mention:
    """One match of a vocabulary entry: its canonical ``key`` and where it is in the text."""

    key: str
    start: int
    end: int


@lru_cache(maxsize=512)
def compile_terms(patterns: tuple[str, ...]) -> re.Pattern[str]:
    """One regex matching any of ``patterns`` as whole words."""
    return re.compile(r"(?<![\w])(?:" + "|".join(f"(?:{p})" for p in patterns) + r")(?![\w])")


def has_term(text: str, patterns: Sequence[str]) -> bool:
    """Whether any of ``patterns`` occurs in ``text`` as whole words."""
    return compile_terms(tuple(patterns)).search(text) is not None


def overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether two half-open spans share a character."""
    return a[0] < b[1] and b[0] < a[1]


def _raw_mentions(text: str, table: Mapping[str, Sequence[str]]) -> list[tuple[int, int, int, str]]:
    found = []
    for order, (key, patterns) in enumerate(table.items()):
        for match in compile_terms(tuple(patterns)).finditer(text):
            found.append((match.start(), -(match.end() - match.start()), order, key))
    return sorted(found)


def find_mentions(text: str, table: Mapping[str, Sequence[str]],
                  taken: Iterable[tuple[int, int]] = ()) -> list[Mention]:
    """Non-overlapping mentions of the table's entries, in text order; longer matches win.

    Args:
        text: normalised request.
        table: canonical name -> regex fragments.
        taken: spans already claimed by another table; mentions overlapping them are dropped.
    """
    claimed = list(taken)
    kept: list[Mention] = []
    by_length = sorted(_raw_mentions(text, table), key=lambda t: (t[1], t[0], t[2]))
    for start, neg_len, _, key in by_length:
        span = (start, start - neg_len)
        if not any(overlaps(span, other) for other in claimed):
            claimed.append(span)
            kept.append(Mention(key, *span))
    return sorted(kept, key=lambda m: (m.start, m.end))


def _bounds(text: str, pos: int, breaks: str) -> tuple[int, int]:
    start, end = 0, len(text)
    for match in re.finditer(breaks, text):
        if match.end() <= pos:
            start = match.end()
        elif match.start() >= pos:
            end = match.start()
            break
    return start, end


def clause_bounds(text: str, pos: int) -> tuple[int, int]:
    """Span of the clause holding ``pos``: split at sentence ends, semicolons and "but"."""
    return _bounds(text, pos, _CLAUSE_BREAK)


def phrase_bounds(text: str, pos: int) -> tuple[int, int]:
    """Span of the phrase holding ``pos``: a clause further split at commas, colons and "and"."""
    return _bounds(text, pos, _PHRASE_BREAK)


# A ConText-style rule table (NEGATION_CUES / NEGATION_BREAKERS / POSTFIX_NEGATION in vocabulary.yaml):
# negspacy/medspacy need spaCy and a pipeline (heavy, slow to load); negex/pycontextnlp are unmaintained.
def _prefix_negated(before: str) -> bool:
    cues = list(compile_terms(NEGATION_CUES).finditer(before))
    if not cues:
        return False
    between = before[cues[-1].end():]
    if len(re.findall(r"[a-z0-9']+", between)) > _NEGATION_WINDOW_WORDS:
        return False
    return not has_term(between, NEGATION_BREAKERS)


def is_negated(text: str, mention: Mention) -> bool:
    """Whether the mention is negated: "not melanoma", "non-melanoma", "melanoma is not the focus".

    "don't miss melanoma" is not a negation of melanoma.

    Example:
        >>> text = "classify lesions, not melanoma"
        >>> is_negated(text, Mention("melanoma", 22, 30))
        True
    """
    start, end = phrase_bounds(text, mention.start)
    if _prefix_negated(text[start:mention.start]):
        return True
    return re.match(POSTFIX_NEGATION, text[mention.end:end]) is not None


def nearest_cue(text: str, mention: Mention, cues: Mapping[str, Sequence[str]]) -> str | None:
    """The key of the cue table whose match lies nearest the mention within its clause.

    Tables earlier in ``cues`` win ties and claim overlapping spans first (a report phrase such as "fine to
    use" beats the mitigate word "use" inside it).
    """
    start, end = clause_bounds(text, mention.start)
    clause = text[start:end]
    rel = (mention.start - start, mention.end - start)
    best: tuple[int, int, str] | None = None
    for m in find_mentions(clause, cues, taken=[rel]):
        distance = rel[0] - m.end if m.end <= rel[0] else m.start - rel[1]
        rank = (distance, list(cues).index(m.key), m.key)
        if best is None or rank < best:
            best = rank
    return None if best is None else best[2]
