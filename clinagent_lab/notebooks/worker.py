"""Subprocess entry point: run one notebook with papermill and write a result file.

``python -m clinagent_lab.notebooks.worker JOB.json`` where JOB.json holds ``input``, ``output``,
``parameters``, ``kernel_name``, ``cwd``, ``events_path`` and ``result_path``. The executor starts this in its own
process group so a timeout or a stop kills the kernel with it.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path
from typing import Any

__all__ = ["main", "EventEngine"]


def _event_engine(events_path: str | None):
    from papermill.engines import NBClientEngine

    from .events import write_event

    class EventEngine(NBClientEngine):
        """papermill's nbclient engine, also writing a ``cell`` event as each cell starts."""

        @classmethod
        def execute_managed_notebook(cls, nb_man: Any, kernel_name: str, **kwargs: Any) -> Any:
            original = nb_man.cell_start
            total = len(nb_man.nb.cells)

            def cell_start(cell: Any, cell_index: int | None = None, **kw: Any) -> Any:
                write_event(events_path, "cell", index=cell_index, total=total,
                            tags=list(cell.get("metadata", {}).get("tags", [])))
                return original(cell, cell_index, **kw)

            nb_man.cell_start = cell_start
            return super().execute_managed_notebook(nb_man, kernel_name, **kwargs)

    return EventEngine


EventEngine = None  # built lazily (papermill import) by _event_engine


def _error_of(exc: BaseException) -> dict[str, Any]:
    from papermill.exceptions import PapermillExecutionError

    if isinstance(exc, PapermillExecutionError):
        return {"ename": exc.ename, "evalue": exc.evalue, "cell_index": exc.cell_index,
                "exec_count": exc.exec_count, "traceback": _strip_ansi("\n".join(exc.traceback))[-8000:]}
    return {"ename": type(exc).__name__, "evalue": str(exc), "cell_index": None,
            "traceback": traceback.format_exc()[-8000:]}


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    job = json.loads(Path(argv[0]).read_text(encoding="utf-8"))
    result: dict[str, Any] = {"status": "crash", "error": None}
    try:
        import papermill as pm
        from papermill.engines import papermill_engines

        papermill_engines.register("clinagent", _event_engine(job.get("events_path")))
        pm.execute_notebook(job["input"], job["output"], parameters=job.get("parameters") or {},
                            kernel_name=job.get("kernel_name") or None, cwd=job.get("cwd"),
                            engine_name="clinagent", progress_bar=False, log_output=False,
                            request_save_on_cell_execute=True)
        result = {"status": "ok", "error": None}
    except BaseException as exc:  # noqa: BLE001 - every failure becomes a recorded status
        result = {"status": "crash", "error": _error_of(exc)}
    Path(job["result_path"]).write_text(json.dumps(result), encoding="utf-8")
    return 0 if result["status"] == "ok" else 1


if __name__ == "__main__":
    raise SystemExit(main())
