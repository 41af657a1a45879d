"""Export a session's executed iteration notebooks as one notebook, and as HTML that reads without a kernel.

Every iteration notebook keeps its own cells and outputs; a markdown header before each says what the
iteration tried, why, and what was decided. Cell ids are made unique (``it<index>-<id>``) and the widget state
of all iterations is merged into the notebook metadata, so nbconvert embeds it. Images in outputs are already
inline; markdown images that point at files are embedded by ``HTMLExporter(embed_images=True)``. Without
widget state the page loads no script at all (require.js and MathJax are left out); with widget state,
nbconvert's widget renderer is loaded from its CDN when the page is opened, as nbconvert does by default.
"""

from __future__ import annotations

import copy
import re
from importlib.resources import files
from pathlib import Path

import nbformat

from ..errors import SessionError
from ..fileio import atomic_write_text
from ..records import Iteration, Session

__all__ = ["SESSION_NOTEBOOK", "build_session_notebook", "export_session_notebook"]

SESSION_NOTEBOOK = "session_notebook"
_WIDGET_KEY = "application/vnd.jupyter.widget-state+json"


def _session_header(session: Session) -> nbformat.NotebookNode:
    best = f"iteration {session.best_iteration}" if session.best_iteration is not None else "none"
    lines = [f"# Session {session.id}", "", f"> {session.request}", "",
             f"- task: {session.spec.task_type} ({session.spec.modality})",
             f"- data: `{session.data_path}`", f"- iterations: {len(session.iterations)}; best: {best}",
             "- test split: " + (f"evaluated once at {session.final_test.evaluated_at}" if session.final_test
                                 else "not evaluated"),
             "", "Each iteration below is the executed notebook as it ran; rerun one with "
                 "`papermill iteration.ipynb out.ipynb -p seed <s>` in its folder."]
    return nbformat.v4.new_markdown_cell("\n".join(lines))


def _iteration_header(it: Iteration) -> nbformat.NotebookNode:
    value = f"{it.selection_value:.3f}" if it.selection_value is not None else "—"
    lines = [f"## Iteration {it.index}: {it.idea or 'change'}", "",
             f"**Decision:** {it.decision} — {it.decision_reason or 'no reason recorded'}", "",
             f"**Status:** {it.status}; validation selection value {value}", "",
             f"**Rationale:** {it.rationale}", "", f"Notebook: `{it.notebook}`"]
    return nbformat.v4.new_markdown_cell("\n".join(lines))


def _unique_id(prefix: str, cell_id: str | None, used: set[str]) -> str:
    base = re.sub(r"[^A-Za-z0-9_-]", "-", f"{prefix}-{cell_id or 'cell'}")[:60]
    candidate, n = base, 1
    while candidate in used:
        candidate = f"{base[:56]}-{n}"
        n += 1
    used.add(candidate)
    return candidate


def _merge_widgets(target: dict, source: dict) -> None:
    state = (source.get("widgets") or {}).get(_WIDGET_KEY)
    if not state:
        return
    merged = target.setdefault("widgets", {}).setdefault(_WIDGET_KEY, {"version_major": 2, "version_minor": 0,
                                                                        "state": {}})
    merged["state"].update(state.get("state") or {})


def _retag(cell: nbformat.NotebookNode, index: int) -> nbformat.NotebookNode:
    """A copy of ``cell`` tagged with its iteration; papermill's parameter tags are dropped (one notebook)."""
    cell = copy.deepcopy(cell)
    tags = [t for t in cell.metadata.get("tags", []) if t not in ("parameters", "injected-parameters")]
    cell.metadata["tags"] = tags + [f"iteration-{index}"]
    cell.metadata["_prefix"] = f"it{index}"
    return cell


def build_session_notebook(session_dir: str | Path) -> nbformat.NotebookNode:
    """One notebook: a session header, then per iteration a header and its executed cells."""
    session = Session.load(session_dir)
    if not session.iterations:
        raise SessionError("the session has no iterations to export", where=str(session.path),
                           fix="run at least one iteration first")
    nb = nbformat.v4.new_notebook()
    used: set[str] = set()
    cells = [_session_header(session)]
    for it in session.iterations:
        cells.append(_iteration_header(it))
        path = Path(it.notebook) if it.notebook else None
        if path is None or not path.exists():
            cells.append(nbformat.v4.new_markdown_cell(f"*The executed notebook of iteration {it.index} is "
                                                       f"missing* (`{it.notebook}`)."))
            continue
        source = nbformat.read(path, as_version=4)
        if not nb.metadata.get("kernelspec") and source.metadata.get("kernelspec"):
            nb.metadata["kernelspec"] = copy.deepcopy(source.metadata["kernelspec"])
            if source.metadata.get("language_info"):
                nb.metadata["language_info"] = copy.deepcopy(source.metadata["language_info"])
        _merge_widgets(nb.metadata, source.metadata)
        cells.extend(_retag(cell, it.index) for cell in source.cells)
    for cell in cells:
        cell["id"] = _unique_id(cell.metadata.pop("_prefix", "s"), cell.get("id"), used)
    nb.cells = cells
    nbformat.validate(nb)
    return nb


def _exporter(offline: bool):
    """nbconvert's HTML exporter; ``offline`` drops the CDN scripts (no widget state to render)."""

    from nbconvert import HTMLExporter  # notebook export only

    if not offline:
        return HTMLExporter(embed_images=True)
    templates = str(files(__package__) / "templates")
    return HTMLExporter(embed_images=True, extra_template_paths=[templates],
                        template_file="offline_notebook.html.j2")


def export_session_notebook(session_dir: str | Path, out: str | Path | None = None) -> Path:
    """Write ``session_notebook.ipynb`` and its HTML rendering (images and widget state embedded).

    Args:
        session_dir: the session folder.
        out: the HTML path; default ``<session_dir>/session_notebook.html``. The notebook is written beside it
            with the suffix ``.ipynb``.

    Returns:
        The HTML path.
    """
    folder = Path(session_dir)
    folder = folder.parent if folder.is_file() else folder
    nb = build_session_notebook(folder)
    html_path = Path(out) if out is not None else folder / f"{SESSION_NOTEBOOK}.html"
    exporter = _exporter(offline=_WIDGET_KEY not in (nb.metadata.get("widgets") or {}))
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"path": str(folder)}})
    atomic_write_text(html_path.with_suffix(".ipynb"), nbformat.writes(nb))
    atomic_write_text(html_path, body)
    return html_path
