"""Reproducible reports: one self-contained offline HTML file per session, and the session notebook export.

Example::

    from clinagent_lab.report import write_report, export_session_notebook
    write_report("runs/ptx")                 # runs/ptx/report.html
    export_session_notebook("runs/ptx")      # runs/ptx/session_notebook.html (+ .ipynb)
"""

from .build import REPORT_FILE, render_report, write_report
from .export import SESSION_NOTEBOOK, build_session_notebook, export_session_notebook
from .inputs import ReportInputs, load_inputs
from .sections import SECTIONS, section_ids

__all__ = [
    "REPORT_FILE",
    "SECTIONS",
    "SESSION_NOTEBOOK",
    "ReportInputs",
    "build_session_notebook",
    "export_session_notebook",
    "load_inputs",
    "render_report",
    "section_ids",
    "write_report",
]
