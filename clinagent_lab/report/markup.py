"""What the report's Jinja templates are given besides plain data, and the environment that renders them.

Every number the report copies from the session travels as :class:`Traced` (its value and its JSON path in
``session.json``); the ``num`` macro of ``templates/macros.html.j2`` shows it as
``<span class="num" data-src='["final_test","metrics","auroc"]'>0.812</span>``, so a test (or a reader with
the browser's inspector) can check it against the session file. Numbers are shown with three decimals,
missing values as an em dash (the ``fmt`` filter). Autoescaping is on: only the figures (matplotlib SVG) and
the stylesheet enter as :class:`~markupsafe.Markup`.

Example:
    >>> html = render("macros.html.j2", "num", 0.81234, ["final_test", "metrics", "auroc"])
    >>> str(html)
    '<span class="num" data-src=\\'["final_test", "metrics", "auroc"]\\'>0.812</span>'
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jinja2
from markupsafe import Markup

__all__ = ["DASH", "DECIMALS", "Code", "Markup", "Traced", "environment", "fmt", "path_get", "render", "traced"]

DECIMALS = 3
DASH = "—"


@dataclass(frozen=True)
class Traced:
    """A value copied from ``session.json`` and where it is there (``src``, None when it is not copied)."""

    value: Any
    src: tuple[str | int, ...] | None = None


def traced(value: Any, src: Sequence[str | int] | None) -> Traced:
    """``Traced(value, src)`` with the path as a tuple."""
    return Traced(value, None if src is None else tuple(src))


@dataclass(frozen=True)
class Code:
    """Text shown as code: inline (a hash, a path), or as a block (a command, the recipe)."""

    text: str
    block: bool = False


def fmt(value: Any) -> Any:
    """Three decimals for floats, the integer for ints, a dash for None/NaN, yes/no, the text otherwise.

    >>> [fmt(v) for v in (0.81234, 3, None, float("nan"), True, "text")]
    ['0.812', '3', '—', '—', 'yes', 'text']
    """
    if isinstance(value, Markup):
        return value
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return DASH if not math.isfinite(value) else f"{value:.{DECIMALS}f}"
    return str(value)


def path_get(data: Any, path: Sequence[str | int]) -> Any:
    """Follow a ``data-src`` path into parsed JSON (``KeyError``/``IndexError`` when it does not exist)."""
    for key in path:
        data = data[int(key)] if isinstance(data, list) else data[key]
    return data


def _is_plain_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    """The templates of ``report/templates``: autoescape on, undefined names are errors."""
    env = jinja2.Environment(loader=jinja2.PackageLoader(__package__, "templates"), autoescape=True,
                             undefined=jinja2.StrictUndefined, keep_trailing_newline=True, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["fmt"] = fmt
    env.tests["traced"] = lambda v: isinstance(v, Traced)
    env.tests["code"] = lambda v: isinstance(v, Code)
    env.tests["plain_number"] = _is_plain_number
    env.tests["markup"] = lambda v: isinstance(v, Markup)
    env.tests["parts"] = lambda v: isinstance(v, (list, tuple))
    return env


def render(template: str, macro: str | None = None, *args: Any, **context: Any) -> Markup:
    """Render ``template`` with ``context``, or call one of its macros with ``args``."""
    tpl = environment().get_template(template)
    if macro is not None:
        return Markup(getattr(tpl.module, macro)(*args))
    return Markup(tpl.render(**context))
