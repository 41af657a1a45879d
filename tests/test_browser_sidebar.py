"""A real JupyterLab in a real chromium: the sidebar drives the real engine on tiny synthetic data.

Starts ``jupyter lab`` on 127.0.0.1 in a temporary root (own config/data dirs, the built labextension linked
in), opens a notebook, then through the sidebar: request -> Interpret -> Start -> live progress -> the
iteration's cells appear in the open notebook -> approve the proposed next iteration -> Finish.
Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from .lab_fixtures import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, REPO, running_lab

LABEXTENSION = REPO / "clinagent_lab" / "labextension"
REQUEST = "flag a chest drain on chest x-rays"

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install -y chromium)"),
    pytest.mark.skipif(not (LABEXTENSION / "package.json").exists(),
                       reason="the labextension is not built "
                              "(cd labextension && npm ci && npm run build:prod)"),
]


@pytest.fixture
def lab(tmp_path: Path):
    from clinagent_lab.data.synth import generate

    root = tmp_path / "root"
    generate("chest_drain", root / "data", n=60, image_size=16)
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": kernelspec})
    nbformat.write(notebook, root / "analysis.ipynb")
    with running_lab(tmp_path, root, token="clinagent-test-token", log_name="browser_lab.log",
                     labextension=LABEXTENSION, extra_args=["--ClinagentApp.iteration_minutes=3"]) as url:
        yield url, "clinagent-test-token", root


def test_sidebar_end_to_end(lab):
    from playwright.sync_api import expect, sync_playwright

    url, token, root = lab
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1500, "height": 950})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            _drive(page, expect, url, token)
        finally:
            page.screenshot(path=str(ARTIFACTS / "browser_last.png"))
            browser.close()
        assert not [e for e in errors if "clinagent" in e], errors

    sessions = list((root / ".clinagent" / "sessions").glob("*/session.json"))
    assert len(sessions) == 1
    saved = json.loads(sessions[0].read_text())
    assert [it["index"] for it in saved["iterations"]] == [1, 2] and saved["test_reads"] == 1
    notebook = nbformat.read(root / "analysis.ipynb", as_version=4) if _saved(root) else None
    if notebook is not None:  # the insert is in the open document; saving is the user's choice
        assert any("clinagent" in c.metadata.get("tags", []) for c in notebook.cells)


def _saved(root: Path) -> bool:
    return "clinagent" in (root / "analysis.ipynb").read_text()


def _drive(page, expect, url: str, token: str) -> None:
    page.goto(f"{url}/lab/tree/analysis.ipynb?token={token}")
    page.locator(".jp-Notebook").first.wait_for(timeout=60_000)
    select = page.locator(".jp-Dialog").get_by_role("button", name="Select")
    if select.count():  # a kernel picker, should the kernelspec not be found
        select.click()
    page.locator('li[data-id="clinagent-sidebar"]').click()
    panel = page.get_by_test_id("clinagent-panel")
    expect(panel).to_be_visible()

    page.get_by_test_id("clinagent-request").fill(REQUEST)
    page.get_by_test_id("clinagent-data-path").fill("data")
    page.get_by_test_id("clinagent-interpret").click()
    spec = page.get_by_test_id("clinagent-spec")
    expect(spec).to_be_visible(timeout=60_000)
    expect(page.get_by_test_id("clinagent-assumption").first).to_be_visible()
    page.get_by_test_id("clinagent-spec-iterations").fill("2")
    page.screenshot(path=str(ARTIFACTS / "browser_1_spec.png"))

    page.get_by_test_id("clinagent-create").click()
    proposal = page.get_by_test_id("clinagent-proposal")
    expect(proposal).to_be_visible(timeout=90_000)
    _short_training(page, expect, proposal)
    page.get_by_test_id("clinagent-start").click()
    progress = page.get_by_test_id("clinagent-progress")
    expect(progress).to_contain_text("epoch", timeout=90_000)
    page.screenshot(path=str(ARTIFACTS / "browser_2_progress.png"))

    rows = page.get_by_test_id("clinagent-history-row")
    expect(rows).to_have_count(1, timeout=150_000)
    notebook = page.locator(".jp-Notebook").first
    expect(notebook).to_contain_text("clinagent iteration 1", timeout=180_000)  # when it finished
    page.screenshot(path=str(ARTIFACTS / "browser_3_cells.png"))

    expect(proposal).to_be_visible(timeout=60_000)  # builds on the kept recipe: two epochs again
    page.get_by_test_id("clinagent-approve").click()
    expect(rows).to_have_count(2, timeout=150_000)
    expect(notebook).to_contain_text("clinagent iteration 2", timeout=180_000)
    page.screenshot(path=str(ARTIFACTS / "browser_4_second.png"))

    finish = page.get_by_test_id("clinagent-finish")
    expect(finish).to_be_enabled(timeout=30_000)
    finish.click()
    expect(page.get_by_test_id("clinagent-final")).to_be_visible(timeout=90_000)
    page.screenshot(path=str(ARTIFACTS / "browser_5_final.png"))


def _short_training(page, expect, proposal) -> None:
    """The clinician edits the proposal: two epochs keep the test short on a shared CPU."""
    page.get_by_test_id("clinagent-edit-field").fill("training.max_epochs")
    page.get_by_test_id("clinagent-edit-value").fill("2")
    page.get_by_test_id("clinagent-edit-apply").click()
    expect(proposal).to_contain_text("training.max_epochs", timeout=30_000)
