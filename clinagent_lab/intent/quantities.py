"""Numbers in a request: operating points, target values, box fractions, budgets.

Each extractor claims the character spans it reads, so one number is never read twice ("sensitivity at 90%
specificity" gives a specificity of 0.9, not also a sensitivity of 0.9). Values are accepted as percentages
("85 %", "85 percent") or fractions ("0.85"); a bare number from 10 to 100 is read as a percentage.
A value that is still outside (0, 1) becomes a question, never an exception.

Example:
    >>> q = read_quantities("sensitivity at 80% specificity, at most 3 iterations")
    >>> q.operating_point, q.budget.max_iterations
    (('specificity', 0.8), 3)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .matching import clause_bounds, compile_terms, has_term, overlaps
from .vocabulary import (BOX_SHARE_TERMS, FRACTION_WORDS, FULL_SUPERVISION_TERMS, METRIC_TERMS, NUMBER_WORDS,
                         SENSITIVITY_WORDS, SPECIFICITY_WORDS, TARGET_CUES)

__all__ = ["BudgetRead", "Quantities", "read_quantities", "to_fraction", "metric_of"]

_NUM = r"(?<![\w.])(?P<num>\d+(?:\.\d+)?|\.\d+|0,\d+)(?![\d])(?:\s*(?P<pct>%|percent|per cent|pct)(?!\w))?"
_WORDNUM = "|".join(sorted((re.escape(w) for w in NUMBER_WORDS), key=len, reverse=True))
_COUNT = rf"(?P<n>\d+(?:\.\d+)?|half an?|{_WORDNUM})"
_WHOLE_WORDNUM = "|".join(sorted((re.escape(w) for w, n in NUMBER_WORDS.items() if w not in ("a", "an")),
                                 key=len, reverse=True))
_ITER_COUNT = rf"(?P<n>\d+(?:\.\d+)?|{_WHOLE_WORDNUM})"
_FILLER = (r"(?:\s*(?:>=|<=|[=:>~])\s*|\s+(?:of|at|to|be|is|must|should|needs?|least|about|around|above|over|"
           r"than|no|less|greater|a|an|target|ideally|minimum|min|reach|with|approximately|roughly)(?!\w))")
_QUANTITY = rf"(?P<q>{SENSITIVITY_WORDS}|{SPECIFICITY_WORDS})"
_OP_BEFORE = re.compile(rf"{_NUM}\s*(?:of\s+)?{_QUANTITY}(?!\w)")
_OP_AFTER = re.compile(rf"(?<!\w){_QUANTITY}{_FILLER}{{0,5}}\s*{_NUM}")
_AT = re.compile(r"(?:^|\s)at\s+(?:an?\s+|the\s+)?(?:fixed\s+|minimum\s+)?$")
_SUBJECT = re.compile(rf"(?<!\w){_QUANTITY}\s+(?:\w+\s+)?at\s+(?:an?\s+|the\s+)?(?:fixed\s+|minimum\s+)?$")
_METRIC_ALT = "|".join(p for pats in METRIC_TERMS.values() for p in pats) + r"|accuracy"
_TARGET_WITH_METRIC = (
    re.compile(rf"(?<!\w){TARGET_CUES}\s+(?:(?:an?|the|of|for|to|at least|with|my|our)\s+)*"
               rf"(?P<metric>{_METRIC_ALT})\s*(?:(?:of|=|:|>=|>|above|at least|over|around|about)\s*)*"
               rf"{_NUM}"),
    re.compile(rf"(?<!\w)(?P<metric>{_METRIC_ALT})\s*(?:(?:of|=|:|>=|>|above|over|at least|target|goal|"
               rf"around|about|reaching|near|is|must be|should be|needs to be)\s*)*{_NUM}"),
)
_TARGET_PLAIN = re.compile(
    rf"(?<!\w)(?:target|goal|aim(?:ing)? for|aim|reach|achieve|hit|get to|beat|exceed)\s+"
    rf"(?:(?:an?|the|of|for|to|at least|score|value|performance|metric)\s+)*{_NUM}")
_DURATION = re.compile(
    rf"(?<![\w.]){_COUNT}\s*-?\s*(?P<unit>hours?|hrs?|h|minutes?|mins?)(?!\w)")
_PER_ITERATION_AFTER = re.compile(
    r"^\s*(?:(?:per|each|an?|for each|every)\s+"
    r"(?:iteration|round|run|experiment|attempt|try|training run|model)"
    r"|(?:iterations?|rounds?|runs?|experiments?|training runs?)(?!\w))")
_PER_ITERATION_BEFORE = re.compile(
    r"(?:(?:each|per|every)\s+(?:iteration|round|run|experiment|attempt|training run)(?:\s+[\w']+){0,4}"
    r"|(?:iterations?|rounds?|runs?|experiments?|attempts?)\s+(?:of|at|with|lasting|taking)"
    r"(?:\s+(?:up to|at most|about|around|max|maximum))?)\s*$")
_ITERATIONS = (
    re.compile(rf"(?<![\w.]){_ITER_COUNT}\s+(?:more\s+|training\s+|refinement\s+)?"
               r"(?:iterations?|rounds?|attempts?|tries|experiments?|runs?|cycles?)(?!\w)"),
    re.compile(rf"(?:iterate|try|run it|loop)\s+{_ITER_COUNT}\s+times"),
)
_N_OF_M = re.compile(r"(?<![\w.])(?P<n>\d+)\s*(?:/|of|out of|in)\s*(?:the\s+)?(?P<m>\d+)(?![\d.])")
_FRACTION_ALT = "|".join(sorted((re.escape(w) for w in FRACTION_WORDS), key=len, reverse=True))
_FRACTION_WORD = re.compile(rf"(?<!\w)(?:{_FRACTION_ALT})(?!\w)")
_DECIMAL_OF_IMAGES = re.compile(r"(?<![\w.])(?P<num>0?\.\d+)(?P<pct>)\s+of\s+(?:the\s+)?(?:images|x-?rays|"
                                r"radiographs|cases|films|data|dataset)")

_COUNTS_SOMETHING_ELSE = re.compile(
    r"\s*(?:of\s+(?:the\s+)?)?(?:images|cases|x-?rays|iterations|minutes|hours)")

Span = tuple[int, int]


@dataclass
class BudgetRead:
    """Budget numbers found in the request (None where not stated)."""

    max_iterations: int | None = None
    iteration_minutes: float | None = None
    total_minutes: float | None = None


@dataclass
class Quantities:
    """Everything numeric the request states, plus what was assumed or could not be used."""

    operating_point: tuple[str, float] | None = None
    """("specificity", 0.8) for "at 80% specificity": the quantity held fixed and its value."""
    operating_point_at: bool = False
    operating_subject: str | None = None
    """The quantity the request puts first: "sensitivity" in "sensitivity at 80% specificity" and in "92%
    sensitivity", "specificity" in "specificity at 95% sensitivity" and in "85% spec"."""
    target_value: float | None = None
    target_metric: str | None = None
    box_fraction: float | None = None
    all_boxed: bool = False
    budget: BudgetRead = field(default_factory=BudgetRead)
    assumptions: list[str] = field(default_factory=list)
    questions: list[str] = field(default_factory=list)


def metric_of(words: str) -> str | None:
    """The canonical metric a phrase names ("AUC" -> auroc), or None ("accuracy" is not one we select on)."""
    for name, patterns in METRIC_TERMS.items():
        if compile_terms(tuple(patterns)).fullmatch(words.strip()):
            return name
    return None


def to_fraction(num: str, pct: str | None) -> tuple[float, bool]:
    """Read a number as a fraction; returns (value, read_as_percent_without_sign).

    Example:
        >>> to_fraction("85", "%"), to_fraction("0.85", None), to_fraction("85", None)
        ((0.85, False), (0.85, False), (0.85, True))
        >>> to_fraction("1.5", None)  # not a plausible percentage: left for the caller to reject
        (1.5, False)
    """
    value = float(num.replace(",", "."))
    if pct:
        return value / 100.0, False
    if 10.0 <= value <= 100.0:
        return value / 100.0, True
    return value, False


def _free(span: Span, taken: list[Span]) -> bool:
    return not any(overlaps(span, other) for other in taken)


def _num_span(match: re.Match[str]) -> Span:
    return match.start("num"), match.end("pct") if match.group("pct") else match.end("num")


def _valid(value: float, what: str, typed: str, q: Quantities) -> bool:
    if 0.0 < value < 1.0:
        return True
    q.questions.append(f"The {what} '{typed.strip()}' must lie strictly between 0 and 1 (or 0% and 100%); "
                       f"please restate it.")
    return False


def _quantity_kind(word: str) -> str:
    return "specificity" if re.fullmatch(SPECIFICITY_WORDS, word) else "sensitivity"


def _operating_points(text: str, taken: list[Span], q: Quantities) -> None:
    found: list[tuple[int, str, float, bool, str]] = []
    for pattern in (_OP_BEFORE, _OP_AFTER):
        for m in pattern.finditer(text):
            span = _num_span(m)
            if not _free(span, taken):
                continue
            taken.append(span)
            value, guessed = to_fraction(m.group("num"), m.group("pct"))
            kind = _quantity_kind(m.group("q"))
            if guessed:
                q.assumptions.append(f"Read '{m.group('num')}' {kind} as {value:.0%}.")
            if _valid(value, kind, m.group(0), q):
                at = _AT.search(text[:m.start()]) is not None
                subject = _SUBJECT.search(text[:m.start()]) if at else None
                found.append((m.start(), kind, value, at,
                              _quantity_kind(subject.group("q")) if subject else kind))
    if not found:
        return
    found.sort()
    chosen = next((f for f in found if f[3]), found[0])
    q.operating_point, q.operating_point_at = (chosen[1], chosen[2]), chosen[3]
    q.operating_subject = chosen[4]
    others = [f for f in found if f is not chosen and f[1] != chosen[1]]
    if others:
        q.target_value = others[0][2]
        q.target_metric = "operating_point"
        q.assumptions.append(f"Holding {chosen[1]} at {chosen[2]:.0%} and stopping once {others[0][1]} "
                             f"reaches {others[0][2]:.0%}.")


def _duration_minutes(count: str, unit: str) -> float:
    count = count.strip()
    if count.startswith("half"):
        value = 0.5
    elif count in NUMBER_WORDS:
        value = float(NUMBER_WORDS[count])
    else:
        value = float(count)
    return value * 60.0 if unit.startswith("h") else value


def _count(word: str) -> float:
    return float(NUMBER_WORDS[word]) if word in NUMBER_WORDS else float(word)


def _budget(text: str, taken: list[Span], q: Quantities) -> None:
    for m in _DURATION.finditer(text):
        span = (m.start(), m.end())
        if not _free(span, taken):
            continue
        taken.append(span)
        minutes = _duration_minutes(m.group("n"), m.group("unit"))
        per_iteration = (_PER_ITERATION_AFTER.match(text[m.end():]) is not None
                         or _PER_ITERATION_BEFORE.search(text[:m.start()]) is not None)
        if minutes <= 0 or minutes > 24 * 60 * 7:
            q.questions.append(f"The time '{m.group(0)}' is not usable; give minutes or hours, e.g. '2 "
                               "hours'.")
        elif per_iteration:
            q.budget.iteration_minutes = minutes
        elif q.budget.total_minutes is None:
            q.budget.total_minutes = minutes
    for pattern in _ITERATIONS:
        for m in pattern.finditer(text):
            span = (m.start(), m.end())
            if not _free(span, taken):
                continue
            taken.append(span)
            n = _count(m.group("n"))
            if n != int(n) or not 1 <= n <= 100:
                q.questions.append(f"The number of iterations '{m.group(0)}' must be a whole number from 1 "
                                   f"to 100.")
            else:
                q.budget.max_iterations = int(n)


def _target(text: str, taken: list[Span], q: Quantities, patterns: tuple[re.Pattern[str], ...]) -> None:
    for pattern in patterns:
        for m in pattern.finditer(text):
            span = _num_span(m)
            if not _free(span, taken):
                continue
            if _COUNTS_SOMETHING_ELSE.match(text[span[1]:]):
                continue
            taken.append(span)
            value, _ = to_fraction(m.group("num"), m.group("pct"))
            if not _valid(value, "target value", m.group(0), q):
                continue
            if q.target_value is None:
                q.target_value = value
                metric = m.groupdict().get("metric")
                q.target_metric = metric_of(metric) if metric else None


def _box_clause_values(clause: str, offset: int, taken: list[Span]) -> tuple[float, str, Span] | None:
    candidates: list[tuple[int, float, str, Span]] = []
    for m in _N_OF_M.finditer(clause):
        n, total = int(m.group("n")), int(m.group("m"))
        if total > 0 and n <= total:
            candidates.append((m.start(), n / total, m.group(0), (m.start(), m.end())))
    for m in re.finditer(_NUM, clause):
        if m.group("pct"):
            candidates.append((m.start(), float(m.group("num").replace(",", ".")) / 100.0, m.group(0),
                               _num_span(m)))
    for m in _FRACTION_WORD.finditer(clause):
        candidates.append((m.start(), FRACTION_WORDS[m.group(0)], m.group(0), (m.start(), m.end())))
    for m in _DECIMAL_OF_IMAGES.finditer(clause):
        candidates.append((m.start(), float(m.group("num")), m.group("num"), _num_span(m)))
    for start, value, typed, span in sorted(candidates, key=lambda c: c[0]):
        absolute = (span[0] + offset, span[1] + offset)
        if _free(absolute, taken):
            taken.append(absolute)
            return value, typed, absolute
    return None


def _box_fraction(text: str, taken: list[Span], q: Quantities) -> None:
    seen: set[Span] = set()
    for m in compile_terms(BOX_SHARE_TERMS).finditer(text):
        bounds = clause_bounds(text, m.start())
        if bounds in seen:
            continue
        seen.add(bounds)
        clause = text[bounds[0]:bounds[1]]
        if has_term(clause, FULL_SUPERVISION_TERMS):
            q.all_boxed = True
        found = _box_clause_values(clause, bounds[0], taken)
        if found is None or q.box_fraction is not None:
            continue
        value, typed, _ = found
        if 0.0 < value <= 1.0:
            q.box_fraction = value
        else:
            q.questions.append(f"The share of images with boxes '{typed}' must lie between 0 and 100%; "
                               f"please restate it.")


def _metric_name_spans(text: str) -> list[Span]:
    pattern = compile_terms(tuple(METRIC_TERMS["map50"][:1]))
    return [(m.start(), m.end()) for m in pattern.finditer(text)]


def read_quantities(text: str) -> Quantities:
    """Read every number the (normalised) request states.

    Order matters: names like "mAP@0.5" are claimed first, then operating points, budgets, targets tied to a
    metric, the share of images with boxes, and last a bare "target 0.9".
    """
    q = Quantities()
    taken = _metric_name_spans(text)
    _operating_points(text, taken, q)
    _budget(text, taken, q)
    _target(text, taken, q, _TARGET_WITH_METRIC)
    _box_fraction(text, taken, q)
    _target(text, taken, q, (_TARGET_PLAIN,))
    return q
