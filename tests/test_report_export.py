"""Session notebook export: iteration notebooks concatenated, then HTML that reads without a kernel."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from bs4 import BeautifulSoup

from clinagent_lab.errors import SessionError
from clinagent_lab.report import build_session_notebook, export_session_notebook

try:
    from report_session import PNG_1PX, make_session
except ImportError:  # tests collected as a package
    from tests.report_session import PNG_1PX, make_session


def test_session_notebook_has_a_header_per_iteration_and_their_cells(tmp_path: Path) -> None:
    folder = make_session(tmp_path)
    nb = build_session_notebook(folder)
    nbformat.validate(nb)
    ids = [c["id"] for c in nb.cells]
    assert len(ids) == len(set(ids))  # template cell ids repeat across iterations; here they are unique
    headers = [c.source for c in nb.cells if c.cell_type == "markdown" and c.source.startswith("## Iteration")]
    assert len(headers) == 2 and "gradient_reversal" in headers[1] and "**Decision:** kept" in headers[1]
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert sum("image/png" in o.get("data", {}) for o in outputs) == 2
    assert not any("parameters" in c.metadata.get("tags", []) for c in nb.cells)


def test_export_html_embeds_images_and_needs_no_network(tmp_path: Path) -> None:
    folder = make_session(tmp_path)
    path = export_session_notebook(folder)
    assert path == folder / "session_notebook.html" and path.with_suffix(".ipynb").exists()
    text = path.read_text(encoding="utf-8")
    assert f"data:image/png;base64,{PNG_1PX}" in text
    assert not re.search(r'(src|href)\s*=\s*["\']https?:', text)
    soup = BeautifulSoup(text, "html.parser")
    assert "training iteration 2" in soup.get_text() and "Iteration 2: gradient_reversal" in soup.get_text()


def test_export_keeps_widget_state(tmp_path: Path) -> None:
    folder = make_session(tmp_path, widget_state=True)
    nb = build_session_notebook(folder)
    state = nb.metadata["widgets"]["application/vnd.jupyter.widget-state+json"]["state"]
    assert set(state) == {"w1", "w2"}
    text = export_session_notebook(folder, tmp_path / "nb.html").read_text()
    assert "application/vnd.jupyter.widget-state+json" in text and "IntSliderModel" in text


def test_export_of_session_without_iterations_raises(tmp_path: Path) -> None:
    from clinagent_lab.records import Session

    folder = make_session(tmp_path)
    session = Session.load(folder)
    session.iterations, session.best_iteration, session.final_test = [], None, None
    session.save()
    with pytest.raises(SessionError, match="no iterations"):
        export_session_notebook(folder)
