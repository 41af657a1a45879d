"""Small HTML builders: escaped text, tables, and numbers traced back to ``session.json``.

Every number the report copies from the session is written by :func:`num` with its JSON path in a
``data-src`` attribute, e.g. ``<span class="num" data-src='["final_test","metrics","auroc"]'>0.812</span>``,
so a test (or a reader with the browser's inspector) can check it against the session file.
Numbers are shown with three decimals; missing values as an em dash.
"""

from __future__ import annotations

import html
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from markupsafe import Markup

__all__ = [
    "DECIMALS",
    "Markup",
    "bullets",
    "ci_text",
    "esc",
    "fmt",
    "h3",
    "kv_table",
    "note",
    "num",
    "para",
    "path_get",
    "table",
    "tag",
]

DECIMALS = 3
DASH = "—"


def esc(value: Any) -> Markup:
    """Escaped text (Markup passes through unchanged)."""
    if isinstance(value, Markup):
        return value
    return Markup(html.escape("" if value is None else str(value), quote=True))


def fmt(value: Any) -> str:
    """Three decimals for floats, the integer for ints, a dash for None/NaN, the text otherwise."""
    if value is None:
        return DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return DASH if not math.isfinite(value) else f"{value:.{DECIMALS}f}"
    return str(value)


def num(value: Any, src: Sequence[str | int] | None = None) -> Markup:
    """A number as shown in the report; ``src`` is its path in ``session.json`` (recorded in ``data-src``)."""
    attr = "" if src is None else f" data-src='{html.escape(json.dumps(list(src)), quote=True)}'"
    return Markup(f'<span class="num"{attr}>{html.escape(fmt(value))}</span>')


def ci_text(low: float | None, high: float | None, name: str = "") -> Markup:
    """``[low, high]`` with ``data-ci`` naming the metric, or a dash when undefined."""
    if low is None or high is None:
        return Markup(f'<span class="ci" data-ci="{esc(name)}">{DASH}</span>')
    return Markup(f'<span class="ci" data-ci="{esc(name)}">[<span class="ci-low">{fmt(low)}</span>, '
                  f'<span class="ci-high">{fmt(high)}</span>]</span>')


def tag(name: str, content: Any = "", **attrs: Any) -> Markup:
    rendered = "".join(f' {k.rstrip("_").replace("_", "-")}="{esc(v)}"' for k, v in attrs.items() if v is not None)
    return Markup(f"<{name}{rendered}>{esc(content)}</{name}>")


def _cell(value: Any) -> Markup:
    if isinstance(value, Markup):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return num(value)
    return esc(fmt(value) if value is None or isinstance(value, bool) else value)


def table(header: Sequence[Any], rows: Iterable[Sequence[Any]], *, cls: str = "", caption: str = "",
          id_: str | None = None) -> Markup:
    """A table; plain numbers in cells are formatted with :func:`fmt` (without a ``data-src``)."""
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in row) + "</tr>" for row in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    ident = f' id="{esc(id_)}"' if id_ else ""
    return Markup(f'<table class="{esc(cls)}"{ident}>{cap}<thead><tr>{head}</tr></thead>'
                  f"<tbody>{body}</tbody></table>")


def kv_table(pairs: Iterable[tuple[Any, Any]], *, cls: str = "kv", caption: str = "") -> Markup:
    """A two-column key/value table."""
    body = "".join(f"<tr><th scope=\"row\">{esc(k)}</th><td>{_cell(v)}</td></tr>" for k, v in pairs)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return Markup(f'<table class="{esc(cls)}">{cap}<tbody>{body}</tbody></table>')


def h3(text: Any) -> Markup:
    return Markup(f"<h3>{esc(text)}</h3>")


def para(text: Any, cls: str = "") -> Markup:
    return Markup(f'<p class="{esc(cls)}">{esc(text)}</p>' if cls else f"<p>{esc(text)}</p>")


def note(text: Any) -> Markup:
    return para(text, "note")


def bullets(items: Iterable[Any], empty: str = "none") -> Markup:
    items = list(items)
    if not items:
        return Markup(f'<p class="muted">{esc(empty)}</p>')
    return Markup("<ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>")


def path_get(data: Any, path: Sequence[str | int]) -> Any:
    """Follow a ``data-src`` path into parsed JSON (``KeyError``/``IndexError`` when it does not exist)."""
    for key in path:
        data = data[int(key)] if isinstance(data, list) else data[key]
    return data
