"""An iteration's executed notebook as cells the sidebar inserts into the clinician's open notebook."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..errors import SessionError
from ..records import Session
from ..runfolder import RunFolder
from ..tasks import get_backend

__all__ = ["iteration_cells", "results_cell"]


def _joined(value: Any) -> Any:
    return "".join(value) if isinstance(value, list) and all(isinstance(v, str) for v in value) else value


def _output(out: dict[str, Any]) -> dict[str, Any]:
    """An nbformat output with multi-line strings joined (nbformat stores them as lists of lines)."""
    out = dict(out)
    if "text" in out:
        out["text"] = _joined(out["text"])
    if "data" in out:
        out["data"] = {mime: _joined(v) for mime, v in out["data"].items()}
    return out


def _notebook_path(session: Session, index: int) -> Path:
    it = session.iteration(index)
    out = Path(session.out_dir)
    if it.notebook:
        path = Path(it.notebook)
        return path if path.is_absolute() else out / path
    return out / "iterations" / f"iter_{index:02d}" / "iteration.ipynb"


def iteration_cells(session: Session, index: int) -> dict[str, Any]:
    """The executed notebook's ``clinagent``-tagged cells, headed by a markdown cell with the rationale.

    Each cell is an nbformat v4 dict (no ``id``, so the receiving notebook assigns its own) tagged
    ``clinagent`` and ``clinagent-iter-NN`` and carrying ``metadata.clinagent = {session, iteration}``.
    """
    it = session.iteration(index)
    path = _notebook_path(session, index)
    if not path.exists():
        raise SessionError(f"iteration {index} has no executed notebook yet", where=str(path),
                           fix="wait for the iteration to finish, or rerun it")
    nb = json.loads(path.read_text(encoding="utf-8"))
    tag = f"clinagent-iter-{index:02d}"
    marker = {"session": session.id, "iteration": index}
    metric = it.selection_value if it.selection_value is not None else it.val_metrics.get(
        session.spec.primary_metric.key())
    header = (f"## clinagent iteration {index}: {it.idea or 'baseline'}\n\n{it.rationale}\n\n"
              f"*status* `{it.status}`, *decision* `{it.decision}`"
              + (f", *{session.spec.primary_metric.name}* {metric:.4f}" if isinstance(metric, float) else ""))
    cells: list[dict[str, Any]] = [{"cell_type": "markdown", "source": header,
                                    "metadata": {"tags": ["clinagent", tag], "clinagent": marker}}]
    for cell in nb.get("cells", []):
        tags = list(cell.get("metadata", {}).get("tags", []))
        if "clinagent" not in tags:
            continue
        meta = {k: v for k, v in cell.get("metadata", {}).items() if k not in ("papermill", "execution")}
        meta.update(tags=tags + [tag], clinagent=marker)
        source = cell.get("source", "")
        out = {"cell_type": cell["cell_type"], "metadata": meta,
               "source": "".join(source) if isinstance(source, list) else source}
        if cell["cell_type"] == "code":
            out.update(outputs=[_output(o) for o in cell.get("outputs", [])],
                       execution_count=cell.get("execution_count"))
        cells.append(out)
    results = results_cell(session, index, marker, tag)
    if results is not None:
        cells.append(results)
    return {"session": session.id, "iteration": index, "notebook": str(path), "rationale": it.rationale,
            "cells": cells}


def results_cell(session: Session, index: int, marker: dict[str, Any], tag: str) -> dict[str, Any] | None:
    """A code cell that shows the iteration's ROC and confounder widgets in the live kernel (the sidebar runs
    it after inserting the cells), or None when the iteration left no validation predictions to show."""
    folder = _notebook_path(session, index).parent
    backend = get_backend(session.iteration(index).recipe.task_type)
    if not RunFolder(folder).predictions(backend).exists():
        return None
    source = ("from clinagent_lab.widgets import show_results\n"
              f"show_results({str(folder)!r}, session_id={session.id!r})")
    return {"cell_type": "code", "source": source, "outputs": [], "execution_count": None,
            "metadata": {"tags": ["clinagent", tag, "clinagent-results"], "clinagent": marker}}
