"""Ask a spec's open questions where a person is: ``clinagent run`` on a terminal, before training.

Each question with choices is asked with its options numbered and the default marked; pressing Enter takes
the default. ``--yes`` takes every default without asking (each recorded as an assumption). Without a
terminal (a pipe, a batch job) the questions are printed and left open on the spec, so the report shows them.

Example:
    >>> import io
    >>> from clinagent_lab.intent import parse_offline
    >>> spec = parse_offline("pneumothorax on CXR, chest drains present in many images")
    >>> answered = ask_questions(spec, yes=True, out=io.StringIO())
    >>> answered.confounder("chest_drain").action, answered.questions
    ('report', [])
"""

from __future__ import annotations

import sys
from typing import IO

from .spec import Question, TaskSpec

__all__ = ["ask_questions", "format_question"]

_TRIES = 3


def format_question(q: Question) -> str:
    """The question and its numbered options, the default marked."""
    lines = [f"? {q.text}"]
    for i, o in enumerate(q.options, 1):
        mark = "  (default)" if o.value == q.default else ""
        lines.append(f"    {i}. {o.label} [{o.value}]{mark}")
    return "\n".join(lines)


def _pick(q: Question, reply: str) -> str | None:
    reply = reply.strip()
    if not reply:
        return q.default
    if reply.isdigit() and 1 <= int(reply) <= len(q.options):
        return q.options[int(reply) - 1].value
    match = [o.value for o in q.options if reply.lower() in (o.value.lower(), o.label.lower())]
    return match[0] if match else None


def _ask_one(spec: TaskSpec, q: Question, inp: IO[str], out: IO[str]) -> TaskSpec:
    print(format_question(q), file=out, flush=True)
    if not q.options:
        print("  (type a note and Enter, or just Enter to leave it open)", file=out, flush=True)
        note = inp.readline().strip()
        return spec.answer(q.id, note) if note else spec
    for _ in range(_TRIES):
        print(f"  answer [1-{len(q.options)}, Enter = {q.default}]: ", end="", file=out, flush=True)
        line = inp.readline()
        if not line:  # end of input: the default, as with Enter
            return spec.answer(q.id, q.default, by="the default (no answer given)")
        value = _pick(q, line)
        if value is not None:
            return spec.answer(q.id, value)
        print(f"  '{line.strip()}' is not one of the options.", file=out, flush=True)
    return spec.answer(q.id, q.default, by="the default (no valid answer given)")


def ask_questions(spec: TaskSpec, *, yes: bool = False, inp: IO[str] | None = None,
                  out: IO[str] | None = None, interactive: bool | None = None) -> TaskSpec:
    """The spec after its open questions were asked (terminal), defaulted (``yes``) or printed (no terminal).

    Args:
        spec: the grounded spec.
        yes: take every default without asking.
        inp, out: the streams (standard input and error by default).
        interactive: ask even if the streams are not terminals (tests); default: both are terminals.
    """
    inp = inp or sys.stdin
    out = out or sys.stderr
    if not spec.questions:
        return spec
    if yes:
        for q in [q for q in spec.questions if q.options]:
            print(f"{format_question(q)}\n  -> {q.default} (--yes)", file=out)
            spec = spec.answer(q.id, q.default, by="the default (--yes)")
        return spec
    if interactive is None:
        interactive = inp.isatty() and out.isatty()
    if not interactive:
        print("Open questions (no terminal to ask them on; the defaults are used and the questions stay on the "
              "spec):", file=out)
        for q in spec.questions:
            print(format_question(q), file=out)
        return spec
    print(f"{len(spec.questions)} question(s) before training (Enter takes the default):", file=out, flush=True)
    for q in list(spec.questions):
        spec = _ask_one(spec, q, inp, out)
    return spec
