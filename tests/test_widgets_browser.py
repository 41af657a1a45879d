"""The results widgets in a real JupyterLab in a real chromium: the SVG plot renders, the slider moves the
point, and a pin travels from the browser to the clinagent server endpoint (XSRF cookie, same-origin)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import nbformat
import pytest

from .lab_fixtures import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, running_lab
from .widgets_fixtures import binary_predictions, binary_recipe, binary_spec, make_iteration

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install -y chromium)"),
]


@pytest.fixture
def lab(tmp_path: Path):
    root = tmp_path / "root"
    folder = make_iteration(root / ".clinagent" / "sessions", binary_predictions(n=80), binary_recipe(),
                            binary_spec(), index=1)
    code = ("from clinagent_lab.widgets import show_results\n"
            f"view = show_results({str(folder.relative_to(root))!r}, session_id='abc123', bootstrap=5)")
    kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb = nbformat.v4.new_notebook(metadata={"kernelspec": kernelspec}, cells=[nbformat.v4.new_code_cell(code)])
    nbformat.write(nb, root / "results.ipynb")
    with running_lab(tmp_path, root, token="widgets-test-token", log_name="widgets_lab.log") as url:
        yield url, "widgets-test-token", root


def _annotations(root: Path) -> list[dict]:
    path = root / ".clinagent" / "sessions" / "abc123" / "session.json"
    return json.loads(path.read_text())["annotations"]


def _run_first_cell(page) -> None:
    """Run the first cell; press again if the kernel dropped the request (a busy machine)."""
    cell = page.locator(".jp-Notebook .jp-Cell").first
    prompt = cell.locator(".jp-InputPrompt")
    for _ in range(3):
        cell.click()
        page.keyboard.press("Control+Enter")
        deadline = time.time() + 20
        while time.time() < deadline:
            if prompt.inner_text().strip() not in ("[ ]:", ""):
                return
            time.sleep(0.5)


def test_widgets_render_and_pin_reaches_the_server(lab):
    from playwright.sync_api import expect, sync_playwright

    url, token, root = lab
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        try:
            page.goto(f"{url}/lab/tree/results.ipynb?token={token}")
            page.locator(".jp-Notebook").first.wait_for(timeout=60_000)
            select = page.locator(".jp-Dialog").get_by_role("button", name="Select")
            if select.count():
                select.click()
            expect(page.get_by_text(re.compile(r"Python 3.* \| Idle"))).to_be_visible(timeout=90_000)
            _run_first_cell(page)
            point = page.locator(".clinagent-roc-plot svg circle.point")
            expect(point).to_have_count(1, timeout=120_000)
            expect(page.locator(".clinagent-roc-plot svg path.band")).to_have_count(1)
            expect(page.locator(".clinagent-bridge")).to_contain_text("abc123")
            # the slider, the readout and the clinician's sentence start at the same operating point
            sentence = page.locator(".clinagent-summary").first.inner_text()
            chosen = re.search(r"At the chosen threshold \((\d\.\d{3})\): sensitivity", sentence)
            assert chosen, sentence
            expect(page.locator(".clinagent-roc .widget-readout").first).to_have_text(chosen.group(1))
            assert f"threshold {chosen.group(1)}" in page.locator(".clinagent-readout").inner_text()
            page.locator(".clinagent-summary").first.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "widgets_0_sentence_and_slider.png"))
            before = (point.get_attribute("cx"), point.get_attribute("cy"))
            threshold = page.locator(".clinagent-readout").inner_text()
            slider = page.locator(".clinagent-roc .widget-slider .noUi-handle, .clinagent-roc .widget-slider "
                                  "[role=slider]").first
            slider.focus()
            for _ in range(40):
                page.keyboard.press("ArrowRight")
            deadline = time.time() + 30
            while (point.get_attribute("cx"), point.get_attribute("cy")) == before and time.time() < deadline:
                time.sleep(0.25)
            assert (point.get_attribute("cx"), point.get_attribute("cy")) != before  # the slider moved the point
            assert page.locator(".clinagent-readout").inner_text() \
                != threshold
            page.screenshot(path=str(ARTIFACTS / "widgets_1_rendered.png"))

            box = page.locator(".clinagent-roc input[type=number]").first
            for _ in range(5):  # the box follows the slider: let a late update from the kernel land first
                box.fill("0.9")
                box.press("Enter")
                page.wait_for_timeout(1500)
                if box.input_value() == "0.9":
                    break
            page.locator(".clinagent-roc").get_by_role("button", name="Pin").click()
            expect(page.locator(".clinagent-roc")).to_contain_text("Sent to session abc123", timeout=30_000)
            page.screenshot(path=str(ARTIFACTS / "widgets_2_pinned.png"))
        finally:
            page.screenshot(path=str(ARTIFACTS / "widgets_last.png"))
            browser.close()
        assert not [e for e in errors if "clinagent" in e.lower()], errors
    [saved] = _annotations(root)
    assert saved["kind"] == "operating_point" and saved["value"] == {"sensitivity": 0.9}
    assert saved["iteration"] == 1
