"""The report in a real headless chromium, opened from file:// with the network cut off.

Every section heading must be visible; each section is screenshotted into ``test-artifacts/``. Any request
that is not ``file:`` or ``data:`` fails the test (the report must be self-contained).
"""

from __future__ import annotations

from pathlib import Path

import pytest

try:
    from report_session import make_session
except ImportError:  # tests collected as a package
    from tests.report_session import make_session

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts" / "report"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium (apt-get install -y chromium)"),
]


def test_report_sections_visible_offline(tmp_path: Path) -> None:
    playwright = pytest.importorskip("playwright.sync_api", reason="needs the playwright Python package")
    from clinagent_lab.report import section_ids, write_report

    report = write_report(make_session(tmp_path, seed_study=True))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    blocked: list[str] = []
    with playwright.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            context = browser.new_context(offline=True, viewport={"width": 1200, "height": 900})
            page = context.new_page()

            def guard(route):
                if route.request.url.startswith(("file:", "data:")):
                    return route.continue_()
                blocked.append(route.request.url)
                return route.abort()

            page.route("**/*", guard)
            page.goto(report.as_uri())
            assert page.title().startswith("clinagent report")
            for sid in section_ids():
                if sid == "saliency" and page.locator(f"#{sid}").count() == 0:
                    continue  # present only when the iterations saved saliency maps (this session has none)
                heading = page.locator(f"#{sid} > h2")
                heading.scroll_into_view_if_needed()
                assert heading.is_visible(), sid
                assert heading.inner_text().strip()
                page.locator(f"#{sid}").screenshot(path=str(ARTIFACTS / f"{sid}.png"))
            roc = page.locator("#test svg.figure").first
            box = roc.bounding_box()
            assert box is not None and box["width"] > 200 and box["height"] > 150  # the inline SVG rendered
            page.screenshot(path=str(ARTIFACTS / "full.png"), full_page=True)
        finally:
            browser.close()
    assert blocked == []
    assert all((ARTIFACTS / f"{sid}.png").stat().st_size > 1000 for sid in section_ids() if sid != "saliency")
