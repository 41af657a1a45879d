"""Build the report: load and check the session folder, compute the intervals, render, write atomically.

The whole HTML document is rendered in memory before anything is written; the file then appears in one
atomic rename, so an error leaves no half-written report (and an older report, if any, untouched).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib.metadata import PackageNotFoundError, version
from importlib.resources import files
from pathlib import Path
from typing import Any

from ..fileio import atomic_write_text
from ..records import SESSION_FILE
from .context import ReportContext, build_context
from .inputs import load_inputs
from .markup import Markup, render
from .sections import SECTIONS

__all__ = ["REPORT_FILE", "render_report", "write_report"]

REPORT_FILE = "report.html"


@dataclass(frozen=True)
class _Shown:
    """A section as the page template includes it: its template and the data the builder computed."""

    id: str
    title: str
    template: str
    data: dict[str, Any]


def _css() -> Markup:
    return Markup((files(__package__) / "templates" / "report.css").read_text(encoding="utf-8"))


def _version() -> str:
    try:
        return version("clinagent-lab")
    except PackageNotFoundError:  # a source checkout that is not installed
        return "(source)"


def _status(ctx: ReportContext) -> tuple[str, str]:
    s = ctx.session
    if s.final_test is None:
        return ("validation-only", "Validation only: the test split has not been evaluated in this session. "
                                   "No number in this report is a test result.")
    m = s.final_test.metrics
    value = m.get("primary")
    shown = f"{value:.3f}" if isinstance(value, (int, float)) else "—"
    return ("tested", f"Tested once: iteration {s.final_test.iteration} on {s.final_test.n_samples} held-out test "
                      f"images; {m.get('primary_metric', 'primary')} {shown}.")


def _generated_at() -> str:
    """Now, or ``SOURCE_DATE_EPOCH`` when set (reproducible builds: the same session gives the same bytes)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    when = datetime.fromtimestamp(int(epoch), timezone.utc) if epoch.isdigit() else datetime.now(timezone.utc)
    return when.isoformat(timespec="seconds")


def _title(ctx: ReportContext) -> str:
    spec = ctx.session.spec
    return f"clinagent report: {spec.objective or ctx.session.request}"


def render_report(session_dir: str | Path) -> str:
    """The report of ``session_dir`` as one HTML string (nothing is written).

    Raises:
        SessionError: the folder is incomplete (see :func:`~.inputs.load_inputs`).
    """
    ctx = build_context(load_inputs(session_dir))
    sections = []
    for section in SECTIONS:
        data = section.build(ctx)
        if data is not None:
            sections.append(_Shown(section.id, section.title, section.template, data))
    status_class, status_text = _status(ctx)
    return str(render("report.html.j2", title=_title(ctx), session=ctx.session, sections=sections, css=_css(),
                      version=_version(), generated_at=_generated_at(), status_class=status_class,
                      status_text=status_text, session_file=str(ctx.inputs.session_dir / SESSION_FILE)))


def write_report(session_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write the self-contained HTML report of a session.

    Args:
        session_dir: the session folder (holds ``session.json``), or the ``session.json`` file itself.
        out: output path; default ``<session_dir>/report.html``.

    Returns:
        The path written.

    Raises:
        SessionError: the folder is missing, incomplete or from an older version; nothing is written.
    """
    folder = Path(session_dir)
    folder = folder.parent if folder.is_file() else folder
    html = render_report(folder)
    path = Path(out) if out is not None else folder / REPORT_FILE
    atomic_write_text(path, html)
    return path
