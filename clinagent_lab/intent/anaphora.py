"""Pronouns that point back at a confounder: "some films have chest drains; don't let it rely on them".

A pronoun is read as a confounder only where it cannot be the subject doing the looking: "them" and "they"
always; "it", "these", "those" after a verb or preposition ("rely on it", "ignore those"); "these" and
"those" before a verb ("these must not matter"), not before a noun ("these images"). The antecedent is the
confounder (or the confounders joined by "and"/"or") named last before the pronoun, in the same or an earlier
sentence. The pronoun becomes a :class:`~.matching.Mention` of that confounder, so the action cues around the
pronoun decide the confounder's action exactly as they would around its name.

Example:
    >>> text = "some films have chest drains. don't let the model rely on them."
    >>> [(m.key, text[m.start:m.end]) for m in pronoun_mentions(text, [Mention("chest_drain", 16, 28)])]
    [('chest_drain', 'them')]
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .matching import Mention, clause_bounds, compile_terms, overlaps
from .vocabulary import PRONOUNS, SHORTCUT_WORDS

__all__ = ["pronoun_mentions", "implied_mentions"]

_ALWAYS = compile_terms(tuple(PRONOUNS["always"]))
_OBJECT = compile_terms(tuple(PRONOUNS["object"]))
_AFTER = re.compile(r"(?<!\w)(?:" + "|".join(PRONOUNS["after"]) + r")\s+(?:just\s+|only\s+|all\s+)?$")
_SUBJECT = set(PRONOUNS["subject"])
_PERSON = compile_terms(tuple(PRONOUNS["people"]))
_VERB = re.compile(r"^\s+(?:" + "|".join(PRONOUNS["verbs"]) + r")(?!\w)")
_CLAUSE_END = re.compile(r"^\s*(?:$|[.,;:!?)\n]|-\s|\b(?:and|but|or|either|too|as well|at all|please)\b)")
_SHORTCUT = compile_terms(SHORTCUT_WORDS)
_JOINED = re.compile(r"^\s*(?:,\s*)?(?:and|or|and/or|,|/|&)\s*(?:the\s+|any\s+)?$")
_SENTENCE_BREAK = re.compile(r"[.!?;\n](?!\d)")


def _is_reference(text: str, start: int, end: int, word: str, always: bool) -> bool:
    clause = clause_bounds(text, start)
    if word in ("it", "this", "that") and _PERSON.search(text[clause[0]:start]):
        return False  # "the clinicians will ignore it": the tool, not a confounder
    if always:
        return True
    before, after = text[:start], text[end:]
    if _AFTER.search(before) and _CLAUSE_END.match(after):
        return True
    return word in _SUBJECT and _VERB.match(after) is not None


def _antecedents(text: str, pos: int, mentions: Sequence[Mention]) -> list[str]:
    """The confounder named first in the last sentence that names one (the subject is the likelier referent:
    "Pacemakers are common in older patients; don't let it cheat with them"), with those joined to it."""
    earlier = [m for m in mentions if m.end <= pos]
    if not earlier:
        return []
    sentence_start = max((b.end() for b in _SENTENCE_BREAK.finditer(text, 0, earlier[-1].start)), default=0)
    same = [m for m in earlier if m.start >= sentence_start]
    group = [same[0]]
    for m in same[1:]:
        if not _JOINED.match(text[group[-1].end:m.start]):
            break
        group.append(m)
    return list(dict.fromkeys(m.key for m in group))


def pronoun_mentions(text: str, mentions: Sequence[Mention]) -> list[Mention]:
    """Mentions of confounders made by pronouns, for clauses that do not name a confounder themselves.

    Args:
        text: the normalised request.
        mentions: the confounders named in it, in text order.
    """
    found: list[Mention] = []
    spans = [(m.start, m.end) for m in mentions]
    candidates = [(m, True) for m in _ALWAYS.finditer(text)] + [(m, False) for m in _OBJECT.finditer(text)]
    for match, always in sorted(candidates, key=lambda c: c[0].start()):
        start, end = match.span()
        if any(overlaps((start, end), s) for s in spans + [(f.start, f.end) for f in found]):
            continue
        clause = clause_bounds(text, start)
        if any(clause[0] <= m.start < clause[1] for m in mentions):
            continue  # the clause names its confounder itself
        if not _is_reference(text, start, end, match.group(0), always):
            continue
        found.extend(Mention(key, start, end) for key in _antecedents(text, start, mentions))
    return found


def implied_mentions(text: str, mentions: Sequence[Mention]) -> list[Mention]:
    """A shortcut worry with nothing named in its clause ("... chest drains. Don't let it cheat."): the
    confounders named last before it, at the worry word.

    Example:
        >>> text = "pneumothorax with chest drains. don't let it cheat."
        >>> [(m.key, text[m.start:m.end]) for m in implied_mentions(text, [Mention("chest_drain", 18, 30)])]
        [('chest_drain', 'cheat')]
    """
    found: list[Mention] = []
    for match in _SHORTCUT.finditer(text):
        clause = clause_bounds(text, match.start())
        if any(clause[0] <= m.start < clause[1] for m in mentions):
            continue
        found.extend(Mention(key, *match.span()) for key in _antecedents(text, match.start(), mentions))
    return found
