"""One notebook run with papermill, the way every backend runs it: a ``cell`` event as each cell starts (nbclient's
``on_cell_start`` hook), and the outcome as ``{"status": "ok" | "crash", "error": ...}`` instead of an exception.

The local executor calls :func:`run_papermill` with the kernel manager of a kernel started ahead of time (see
:mod:`.kernels`); a cluster job (:mod:`clinagent_lab.execution.job`) calls it without one, and papermill starts
a fresh kernel on the compute node.
"""

from __future__ import annotations

import re
import traceback
from typing import Any

from .events import write_event

__all__ = ["run_papermill", "cell_hook", "cells_to_run", "error_of"]


def cell_hook(events_path: str | None, total: int):
    """nbclient's ``on_cell_start`` hook writing a ``cell`` event as each cell starts."""

    def on_cell_start(cell: Any, cell_index: int, **_: Any) -> None:
        write_event(events_path, "cell", index=cell_index, total=total,
                    tags=list(cell.get("metadata", {}).get("tags", [])))

    return on_cell_start


def cells_to_run(input_path: str, parameters: dict[str, Any] | None) -> int:
    """How many cells papermill will run: the notebook's, plus the parameters cell it injects (it replaces one
    injected before, as in a rerun of an executed notebook)."""
    import nbformat  # deferred: its schema validation takes seconds to import

    nb = nbformat.read(input_path, as_version=4)
    injected = any("injected-parameters" in c.get("metadata", {}).get("tags", []) for c in nb.cells)
    return len(nb.cells) + (1 if parameters and not injected else 0)


def error_of(exc: BaseException) -> dict[str, Any]:
    """What went wrong, as recorded in the iteration: papermill's cell error, or the exception."""
    from papermill.exceptions import PapermillExecutionError  # deferred: papermill is needed to run notebooks only

    if isinstance(exc, PapermillExecutionError):
        return {"ename": exc.ename, "evalue": exc.evalue, "cell_index": exc.cell_index,
                "exec_count": exc.exec_count, "traceback": _strip_ansi("\n".join(exc.traceback))[-8000:]}
    return {"ename": type(exc).__name__, "evalue": str(exc), "cell_index": None,
            "traceback": "".join(traceback.format_exception(exc))[-8000:]}


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


def run_papermill(job: dict[str, Any], km: Any = None) -> dict[str, Any]:
    """Run ``job["input"]`` into ``job["output"]`` with papermill, injecting ``job["parameters"]``.

    Args:
        job: ``input``, ``output``, ``parameters``, ``kernel_name``, ``cwd``, ``events_path``.
        km: a started jupyter_client kernel manager to run in (its kernel is already in ``cwd``; nbclient
            neither starts nor shuts it down), or None for a kernel papermill starts in ``cwd``.

    Returns:
        ``{"status": "ok" | "crash", "error": None | {"ename", "evalue", "cell_index", "traceback"}}``.
    """
    try:
        import papermill as pm  # deferred: notebook execution only (nbclient, nbformat, jupyter_client)

        hook = cell_hook(job.get("events_path"), cells_to_run(job["input"], job.get("parameters")))
        # with a started kernel, cwd stays None: papermill would chdir this whole process (the server's too)
        pm.execute_notebook(job["input"], job["output"], parameters=job.get("parameters") or {},
                            kernel_name=job.get("kernel_name") or None, cwd=None if km else job.get("cwd"),
                            on_cell_start=hook, progress_bar=False, log_output=False,
                            request_save_on_cell_execute=True, km=km)
        return {"status": "ok", "error": None}
    except Exception as exc:  # noqa: BLE001 - every failure of the notebook becomes a recorded status
        return {"status": "crash", "error": error_of(exc)}
