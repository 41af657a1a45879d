"""Turn a typed request into the text the parser matches: lower case, plain quotes, typos fixed.

Example:
    >>> normalize("Pnuemothorax on CXR, 80% specifity").text
    'pneumothorax on cxr, 80% specificity'
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from functools import lru_cache

from .vocabulary import DECOY_WORDS, KNOWN_WORDS

__all__ = ["Normalized", "normalize", "correct_word"]

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-",
                         "\u2014": "-", "\u2265": ">=", "\u00a0": " "})
_WORD = re.compile(r"[a-z]{5,}")
_CUTOFF = 0.85


@dataclass(frozen=True)
class Normalized:
    """Normalised request text and the typo corrections made on the way (``(typed, read_as)`` pairs)."""

    text: str
    corrections: tuple[tuple[str, str], ...] = field(default_factory=tuple)


@lru_cache(maxsize=4096)
def correct_word(word: str) -> str:
    """The known word ``word`` is a typo of, or ``word`` itself.

    A word nearest to an ordinary English word (:data:`DECOY_WORDS`) is left alone, so "features" does not
    become "fractures".

    Example:
        >>> correct_word("melanomma"), correct_word("features")
        ('melanoma', 'features')
    """
    if word in KNOWN_WORDS or word in DECOY_WORDS:
        return word
    best = difflib.get_close_matches(word, KNOWN_WORDS + DECOY_WORDS, n=1, cutoff=_CUTOFF)
    if not best or best[0] in DECOY_WORDS:
        return word
    return best[0]


def _basic(text: str) -> str:
    text = text.translate(_QUOTES).lower()
    return re.sub(r"\s+", " ", text).strip()


def normalize(text: str) -> Normalized:
    """Lower-case ``text``, straighten quotes, collapse spaces and correct typos of key words."""
    base = _basic(text)
    corrections: list[tuple[str, str]] = []

    def _fix(match: re.Match[str]) -> str:
        word = match.group(0)
        fixed = correct_word(word)
        if fixed != word and (word, fixed) not in corrections:
            corrections.append((word, fixed))
        return fixed

    return Normalized(_WORD.sub(_fix, base), tuple(corrections))
