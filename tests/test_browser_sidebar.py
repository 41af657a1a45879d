"""A real JupyterLab in a real chromium: the sidebar drives the real engine on tiny synthetic data.

Starts ``jupyter lab`` on 127.0.0.1 in a temporary root (own config/data dirs, the built labextension linked
in), opens a notebook, then through the sidebar: request -> Interpret -> Start -> live progress -> the
iteration's cells appear in the open notebook -> approve the proposed next iteration -> Finish.
Along the way the sidebar is photographed at 280, 360 and 480 px in the light and dark themes (no control may
overflow its panel; axe-core finds no serious or critical violation), and the run state is checked against the
server's events over two iterations; the iterations chart shows both iterations as the session records them.
Screenshots go to ``test-artifacts/``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from .lab_fixtures import (ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, REPO, assert_accessible, assert_no_overflow,
                           running_lab, set_sidebar_width, set_theme)

LABEXTENSION = REPO / "clinagent_lab" / "labextension"
REQUEST = "flag pneumothorax on chest x-rays; chest drains may be a shortcut"
WIDTHS = (280, 360, 480)
THEMES = ("light", "dark")

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
                     labextension=LABEXTENSION, extra_args=["--ClinagentApp.iteration_minutes=8",
                                 "--LabApp.expose_app_in_browser=True"]) as url:
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
    expect(page.get_by_test_id("clinagent-assumption")).to_have_count(0)  # folded to one line
    page.get_by_test_id("clinagent-assumptions-toggle").click()
    expect(page.get_by_test_id("clinagent-assumption").first).to_be_visible()
    page.get_by_test_id("clinagent-assumptions-toggle").click()
    expect(page.get_by_test_id("clinagent-confounder-audit").first).to_contain_text("predicts the label with AUROC")
    page.get_by_test_id("clinagent-spec-iterations").fill("2")
    expect(page.get_by_test_id("clinagent-pretrained")).to_be_visible()  # weights and K go with the session
    _photograph_widths(page, "spec")

    page.get_by_test_id("clinagent-create").click()
    proposal = page.get_by_test_id("clinagent-proposal")
    expect(proposal).to_be_visible(timeout=90_000)
    _short_training(page, expect, proposal)
    expect(page.get_by_test_id("clinagent-pretrained-shown")).to_contain_text("chosen by the initializer")
    status = page.get_by_test_id("clinagent-status")
    expect(status).to_have_attribute("data-phase", re.compile("idle|waiting"))
    server = ServerEvents(url, token)
    page.evaluate(RECORD_PHASES)
    page.get_by_test_id("clinagent-start").click()
    rows = page.get_by_test_id("clinagent-history-row")
    notebook = page.locator(".jp-Notebook").first
    for n in (1, 2):
        # wait on the server, however slow the shared CPU: the iteration's end is an event, not a guess
        server.wait_for(lambda e: e["type"] == "iteration_finished" and e.get("iteration") == n,
                        f"iteration {n}")
        expect(rows).to_have_count(n, timeout=30_000)
        # after the last iteration the budget is spent: the loop ends (idle) rather than waiting
        expect(status).to_have_attribute("data-phase", re.compile("waiting" if n == 1 else "waiting|idle"),
                                         timeout=30_000)
        # the run state followed the server's events: kernel start, training epoch x/y, then finished
        seen = page.evaluate("() => window.__clinagentPhases")
        assert any(t.startswith(f"Iteration {n}: training, epoch") for t in seen), seen
        kernel = {"iteration_started", "data_started", "fit_started", "epoch"}
        assert kernel <= set(server.types(n)), server.types(n)
        expect(notebook).to_contain_text(f"clinagent iteration {n}", timeout=60_000)  # when it finished
        if n == 1:
            expect(status).to_contain_text("Iteration 1: finished; waiting for your approval")
            expect(proposal).to_be_visible(timeout=30_000)
            _photograph_notebook(page, expect)
            page.get_by_test_id("clinagent-approve").click()
    expect(page.get_by_test_id("clinagent-chart")).to_be_visible()
    rows.nth(1).locator("button").first.click()  # a row expands to its rationale and recipe diff
    expect(rows.nth(1)).to_contain_text("training.max_epochs")
    _photograph_widths(page, "history")
    _check_chart(page, expect, server.session())

    finish = page.get_by_test_id("clinagent-finish")
    expect(finish).to_be_enabled(timeout=30_000)
    finish.click()
    server.wait_for(lambda e: e["type"] in ("session_finished", "final_test"), "the once-only test")
    expect(page.get_by_test_id("clinagent-final")).to_be_visible(timeout=30_000)  # replaces the run controls
    page.screenshot(path=str(ARTIFACTS / "browser_5_final.png"))
    _photograph_widths(page, "final")


#: records every state line the sidebar shows (React may replace the node, so the whole panel is observed)
RECORD_PHASES = """() => {
    window.__clinagentPhases = [];
    const note = () => {
        const el = document.querySelector('[data-testid="clinagent-status"]');
        const text = el ? el.textContent.trim() : '';
        const seen = window.__clinagentPhases;
        if (text && seen[seen.length - 1] !== text) seen.push(text);
    };
    new MutationObserver(note).observe(document.querySelector('#clinagent-sidebar'),
        {subtree: true, childList: true, characterData: true, attributes: true});
    note();
}"""


class ServerEvents:
    """The session's events as the server keeps them for catch-up (``GET .../events``), polled each second."""

    def __init__(self, url: str, token: str, timeout_s: float = 900.0) -> None:
        self.url, self.token, self.timeout_s = url, token, timeout_s
        self.events: list[dict] = []
        sessions = self._get("/clinagent/api/sessions")["sessions"]
        assert len(sessions) == 1, sessions
        self.sid = sessions[0]["id"]

    def _get(self, path: str) -> dict:
        import urllib.request

        with urllib.request.urlopen(f"{self.url}{path}?token={self.token}", timeout=30) as r:
            return json.loads(r.read())

    def wait_for(self, predicate, what: str) -> dict:
        import time

        deadline = time.monotonic() + self.timeout_s
        while time.monotonic() < deadline:
            try:
                self.events = self._get(f"/clinagent/api/sessions/{self.sid}/events")["events"]
            except OSError:  # a busy server (preparing data under load) answers late: ask again
                continue
            found = [e for e in self.events if predicate(e)]
            errors = [e for e in self.events if e["type"] == "error"]
            assert not errors, errors
            if found:
                return found[0]
            time.sleep(1.0)  # a poll interval, not a guess at how long the work takes
        raise AssertionError(f"the server sent no event for {what} in {self.timeout_s:.0f} s: "
                             f"{[e['type'] for e in self.events][-20:]}")

    def session(self) -> dict:
        return self._get(f"/clinagent/api/sessions/{self.sid}")["session"]

    def types(self, iteration: int) -> list[str]:
        return [e["type"] for e in self.events if e.get("iteration") == iteration]


def _check_chart(page, expect, session: dict) -> None:
    """The iterations chart has a mark for every iteration listed, each at its own place, told apart as the
    session records it (kept, tried and not kept, no result on the axis), a legend in words, the metric named."""
    figure = page.get_by_test_id("clinagent-chart-figure")
    figure.scroll_into_view_if_needed()
    points = page.get_by_test_id("clinagent-chart-point")
    its = session["iterations"]
    expect(points).to_have_count(len(its))
    centres = set()
    for i, it in enumerate(its):
        point = points.nth(i)
        has_value = it["status"] == "ok" and isinstance(it["selection_value"], (int, float))
        mark = ("kept" if it["decision"] in ("kept", "baseline") else "discarded") if has_value else "failed"
        assert (point.get_attribute("data-index"), point.get_attribute("data-mark")) == (str(it["index"]), mark)
        if has_value:
            assert abs(float(point.get_attribute("data-value")) - it["selection_value"]) < 1e-9
        box = point.bounding_box()
        assert box is not None and box["width"] > 0, f"iteration {it['index']} has no mark drawn"
        centres.add(round(box["x"] + box["width"] / 2))
    assert len(centres) == len(its), centres  # no two iterations drawn at the same place
    legend = page.get_by_test_id("clinagent-chart-legend")
    for mark in {p.get_attribute("data-mark") for p in points.all()}:
        expect(legend.locator(f'li[data-mark="{mark}"]')).to_be_visible()
    expect(page.get_by_test_id("clinagent-chart-metric")).to_contain_text("AUROC")
    figure.screenshot(path=str(ARTIFACTS / "browser_4_chart.png"))


def _photograph_widths(page, stage: str) -> None:
    """The sidebar at each width and theme: nothing overflows, nothing serious for axe-core."""
    for theme in THEMES:
        set_theme(page, theme)
        for width in WIDTHS:
            set_sidebar_width(page, width)
            panel = page.locator("#clinagent-sidebar")
            panel.screenshot(path=str(ARTIFACTS / f"sidebar_{stage}_{width}px_{theme}.png"))
            assert_no_overflow(page, "#clinagent-sidebar", f"{stage}, {width} px, {theme}")
        assert_accessible(page, "#clinagent-sidebar", f"{stage}, {theme}")
    set_theme(page, "light")
    set_sidebar_width(page, 360)


# an element is in view when all of it is, or (taller than the window) when its top is in the upper half
IN_VIEW = """el => {
    const r = el.getBoundingClientRect();
    const fits = r.height <= window.innerHeight;
    return r.height > 0 && r.top >= 0 && (fits ? r.bottom <= window.innerHeight : r.top < window.innerHeight / 2);
}"""
SCROLL = """el => el.scrollIntoView({block: el.getBoundingClientRect().height > window.innerHeight ? 'start'
                                                                                         : 'center'})"""
OUTPUTS_SETTLED = """() => [...document.querySelectorAll('.jp-OutputArea-output img')].every(i => i.complete)"""


def _scroll_into_view(page, locator, what: str) -> None:
    """Scroll until ``locator`` is wholly in the viewport and stays there (outputs rendering below it, the
    widgets and the figures, grow the notebook and move it after a single scroll)."""
    for _ in range(10):
        locator.evaluate(SCROLL)
        page.wait_for_timeout(500)
        if locator.evaluate(IN_VIEW):
            return
    raise AssertionError(f"{what} does not stay in view")


def _photograph_notebook(page, expect) -> None:
    """The iteration's clinician summary and the widgets, as the notebook shows them."""
    summary = page.locator(".jp-Notebook .clinagent-summary").first
    expect(summary).to_contain_text(re.compile(r"At the chosen threshold \(\d\.\d{3}\): sensitivity"),
                                     timeout=120_000)
    widget = page.locator(".jp-Notebook .clinagent-roc").first  # the ROC widget: plot, slider, readout, pin
    try:
        widget.wait_for(timeout=120_000)
    except Exception:  # the static PNGs stand in when the kernel has not rendered the widgets
        pass
    page.wait_for_function(OUTPUTS_SETTLED, timeout=60_000)
    if widget.count():  # the widget's readout is the sentence's operating point: same threshold, same rates
        # Each is read while in view: JupyterLab lays out only the cells near the viewport
        # (content-visibility), and the rendered text of a cell it skips is empty.
        _scroll_into_view(page, summary, "the clinician's sentence")
        sentence = summary.inner_text()
        said = re.search(r"threshold \((\d\.\d{3})\): sensitivity (\d\.\d\d)", sentence)
        readout_box = page.locator(".jp-Notebook .clinagent-readout").first
        _scroll_into_view(page, readout_box, "the widget's readout")
        readout = readout_box.inner_text()
        shown = re.search(r"threshold (\d\.\d{3}) · sensitivity (\d\.\d{3})", readout)
        assert said and shown, (sentence, readout)
        assert shown.group(1) == said.group(1) and f"{float(shown.group(2)):.2f}" == said.group(2), readout
    _scroll_into_view(page, summary, "the clinician's sentence")
    page.screenshot(path=str(ARTIFACTS / "browser_3_clinician_summary.png"))
    target = widget if widget.count() else page.locator(".jp-OutputArea-output img").first
    _scroll_into_view(page, target, "the results widgets")
    page.screenshot(path=str(ARTIFACTS / "browser_3_widgets.png"))


def _short_training(page, expect, proposal) -> None:
    """The clinician edits the proposal: two epochs keep the test short on a shared CPU."""
    page.get_by_test_id("clinagent-edit").click()
    page.get_by_test_id("clinagent-edit-field").fill("training.max_epochs")
    page.get_by_test_id("clinagent-edit-value").fill("2")
    page.get_by_test_id("clinagent-edit-apply").click()
    expect(proposal).to_contain_text("training.max_epochs", timeout=30_000)
