"""Turn a typed request into the text the parser matches: lower case, plain quotes, typos fixed, numbers
as digits.

Typos are corrected word by word towards the clinical vocabulary (:data:`~.vocabulary.KNOWN_WORDS`) with
rapidfuzz: the better of the optimal-string-alignment similarity, which counts a swapped pair of letters
("fracutre") as one edit, and the insert/delete similarity, which forgives dropped letters ("specifity"). Number words become digits with ``number_parser`` ("twelve percent" -> "12 percent", "two in fifty" ->
"2 in 50"), except a lone "one" ("one of them") and a count of a fraction word ("two thirds").

Example:
    >>> normalize("Pnuemothorax on CXR, eighty five percent specifity").text
    'pneumothorax on cxr, 85 percent specificity'
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache

from number_parser import parse_number
from rapidfuzz import process
from rapidfuzz.distance import OSA, Indel

from .vocabulary import DECOY_WORDS, KNOWN_WORDS

__all__ = ["Normalized", "correct_word", "normalize", "numbers_as_digits"]

_QUOTES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-",
                         "\u2014": "-", "\u2265": ">=", "\u00a0": " ", "\u2022": "\n-"})
_WORD = re.compile(r"[a-z]{5,}")
_CUTOFF = 0.84
_CHOICES = KNOWN_WORDS + DECOY_WORDS
_UNITS = ("zero|one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|thirteen|fourteen|fifteen|"
          "sixteen|seventeen|eighteen|nineteen|twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety|hundred|"
          "thousand")
_NUMBER_RUN = re.compile(rf"(?<![\w-])(?:{_UNITS})(?:(?:[\s-]+|\s+and\s+)(?:{_UNITS}))*(?![\w-])")
_FRACTION_AFTER = re.compile(r"\s+(?:halves|thirds?|quarters?|fifths?|tenths?|twentieths?|fiftieths?|"
                             r"hundredths?)\b")
_RATIO_AFTER = re.compile(rf"\s+(?:in|out of|of every)\s+(?:\d|{_UNITS})")


@dataclass(frozen=True)
class Normalized:
    """Normalised request text and the typo corrections made on the way (``(typed, read_as)`` pairs)."""

    text: str
    corrections: tuple[tuple[str, str], ...] = field(default_factory=tuple)


def _similarity(a: str, b: str, **_: object) -> float:
    return max(OSA.normalized_similarity(a, b), Indel.normalized_similarity(a, b))


def _plural_of_known(word: str) -> bool:
    """"lesion" next to the known "lesions" (and back) is a word, not a typo."""
    return any(w in KNOWN_WORDS for w in (word + "s", word + "es", word[:-1], word[:-2]))


@lru_cache(maxsize=4096)
def correct_word(word: str) -> str:
    """The known word ``word`` is a typo of, or ``word`` itself.

    A word nearest to an ordinary English word (:data:`DECOY_WORDS`) is left alone, so "features" does not
    become "fractures".

    Example:
        >>> correct_word("melanomma"), correct_word("fracutre"), correct_word("features")
        ('melanoma', 'fracture', 'features')
    """
    if word in KNOWN_WORDS or word in DECOY_WORDS or _plural_of_known(word):
        return word
    best = process.extractOne(word, _CHOICES, scorer=_similarity, score_cutoff=_CUTOFF)
    if best is None or best[0] in DECOY_WORDS:
        return word
    return best[0]


def numbers_as_digits(text: str) -> str:
    """Number words as digits, where they count something.

    Example:
        >>> numbers_as_digits("two in fifty have boxes, one of them is big, two thirds, ninety-five percent")
        '2 in 50 have boxes, one of them is big, two thirds, 95 percent'
    """

    def _digits(match: re.Match[str]) -> str:
        run = match.group(0)
        after = text[match.end():]
        if _FRACTION_AFTER.match(after):
            return run
        if run == "one" and not _RATIO_AFTER.match(after):
            return run
        value = parse_number(run.replace("-", " "))
        return run if value is None else str(value)

    return _NUMBER_RUN.sub(_digits, text)


def _basic(text: str) -> str:
    text = text.translate(_QUOTES).lower()
    return re.sub(r"[ \t\r\f\v]+", " ", text).strip()


def normalize(text: str) -> Normalized:
    """Lower-case ``text``, straighten quotes, collapse spaces, correct typos of key words, write numbers as
    digits. Line breaks are kept: a bullet list's lines stay apart."""
    base = _basic(text)
    corrections: list[tuple[str, str]] = []

    def _fix(match: re.Match[str]) -> str:
        word = match.group(0)
        fixed = correct_word(word)
        if fixed != word and (word, fixed) not in corrections:
            corrections.append((word, fixed))
        return fixed

    fixed = _WORD.sub(_fix, base)
    return Normalized(numbers_as_digits(fixed), tuple(corrections))
