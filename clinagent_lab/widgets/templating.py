"""The widgets' HTML (the clinician's heading, the metric table, the per-group rates, the ROC readout) from
Jinja templates in ``widgets/templates``, autoescaped: names and values from the data cannot inject markup.

Example:
    >>> render("summary.html.j2", title="Iteration 1", sentence="a < b", extra=[])
    '<h4>Iteration 1</h4>\\n<p class="clinagent-summary" style="font-size:1.1em"><b>a &lt; b</b></p>'
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import jinja2

__all__ = ["render"]


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(loader=jinja2.PackageLoader(__package__, "templates"), autoescape=True,
                              undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                              keep_trailing_newline=True)


def render(template: str, **context: Any) -> str:
    """``template`` rendered with ``context`` (HTML text)."""
    return _environment().get_template(template).render(**context)
