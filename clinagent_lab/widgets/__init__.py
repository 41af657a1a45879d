"""ROC, confounder and annotation widgets for JupyterLab, and static PNG figures for exports and reports.

``from clinagent_lab.widgets import show_results`` is what the sidebar's results cell runs. Importing this
package is cheap: submodules (matplotlib, ipywidgets, anywidget; the evaluator loads torch only when an AUROC
is computed) load on first use of a name.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "AnnotationBridge",
    "AnnotationControls",
    "AnnotationSink",
    "ConfounderView",
    "Receipt",
    "ResultsView",
    "RocWidget",
    "ServerSink",
    "SessionFileSink",
    "confounder_figure_data",
    "load_iteration",
    "roc_figure_data",
    "save_confounder_png",
    "save_roc_png",
    "saliency_png",
    "saliency_pngs",
    "show_results",
]

_WHERE = {
    "AnnotationBridge": "annotate",
    "AnnotationSink": "annotate",
    "Receipt": "annotate",
    "ServerSink": "annotate",
    "SessionFileSink": "annotate",
    "AnnotationControls": "confounder",
    "ConfounderView": "confounder",
    "RocWidget": "roc",
    "ResultsView": "results",
    "load_iteration": "results",
    "show_results": "results",
    "confounder_figure_data": "figdata",
    "roc_figure_data": "figdata",
    "save_confounder_png": "static",
    "save_roc_png": "static",
    "saliency_png": "saliency",
    "saliency_pngs": "saliency",
}


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{_WHERE[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
