"""A real JupyterLab on 127.0.0.1 for the browser tests: own config, data and runtime dirs, the clinagent server
extension enabled, its log copied to ``test-artifacts/`` afterwards; chromium is Debian's."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url: str, token: str, proc: subprocess.Popen, timeout: float = 90) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"jupyter lab exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError("jupyter lab did not answer in time")


def lab_api(url: str, token: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """The clinagent REST API of a running lab: GET ``path``, or POST ``body`` as JSON."""
    request = urllib.request.Request(f"{url}/clinagent/api/{path}?token={token}", method="POST" if body is not None
                                     else "GET", data=json.dumps(body).encode() if body is not None else None)
    with urllib.request.urlopen(request, timeout=120) as r:
        return json.loads(r.read())


@contextlib.contextmanager
def running_lab(tmp_path: Path, root: Path, *, token: str, log_name: str, labextension: Path | None = None,
                extra_args: Sequence[str] = ()) -> Iterator[str]:
    """Start ``jupyter lab`` serving ``root``; yields its URL. ``labextension`` is linked in when given."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "jupyter_server_config.json").write_text(json.dumps(
        {"ServerApp": {"jpserver_extensions": {"clinagent_lab.server": True}}}))
    (config / "labconfig").mkdir()  # no "get notified about Jupyter news?" toast over the screenshots
    (config / "labconfig" / "page_config.json").write_text(json.dumps(
        {"disabledExtensions": {"@jupyterlab/apputils-extension:announcements": True}}))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(config), "JUPYTER_DATA_DIR": str(tmp_path / "data_dir"),
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    if labextension is not None:
        share = tmp_path / "share"
        (share / "labextensions").mkdir(parents=True)
        (share / "labextensions" / "clinagent-lab").symlink_to(labextension)
        env["JUPYTER_PATH"] = str(share)
    port = free_port()
    log = open(tmp_path / "lab.log", "w")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--ServerApp.token={token}",
         "--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", f"--ServerApp.root_dir={root}",
         "--ServerApp.port_retries=0", "--allow-root", *extra_args,
         "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate", "--LabApp.news_url=None"],
        cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_up(url, token, proc)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
        ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(tmp_path / "lab.log", ARTIFACTS / log_name)


# --- the sidebar's look: width, theme, overflow, accessibility -------------------------------------------
THEME_NAMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}
AXE = REPO / "labextension" / "node_modules" / "axe-core" / "axe.min.js"


def set_theme(page, theme: str) -> None:
    """Switch JupyterLab's theme (needs ``--LabApp.expose_app_in_browser=True``) and wait for it."""
    name = THEME_NAMES[theme]
    page.evaluate("name => window.jupyterapp.commands.execute('apputils:change-theme', {theme: name})", name)
    page.wait_for_function("light => document.body.dataset.jpThemeLight === light",
                           arg="true" if theme == "light" else "false", timeout=30_000)
    page.wait_for_timeout(400)


def set_sidebar_width(page, width: int) -> None:
    """Give the left area ``width`` px through the shell's split panel, then wait for the layout."""
    page.evaluate("""width => {
        const split = window.jupyterapp.shell._hsplitPanel;
        const total = split.node.getBoundingClientRect().width;
        const sizes = split.relativeSizes();
        const left = width / total;
        const right = sizes[2] || 0;
        split.setRelativeSizes([left, 1 - left - right, right]);
    }""", width)
    page.wait_for_timeout(300)
    got = page.locator("#clinagent-sidebar").bounding_box()
    assert got is not None and abs(got["width"] - width) <= 12, (width, got)


def assert_no_overflow(page, root: str, where: str) -> None:
    """No control sticks out of the panel, and the panel does not scroll sideways."""
    found = page.evaluate("""root => {
        const panel = document.querySelector(root);
        const box = panel.getBoundingClientRect();
        const bad = [];
        if (panel.scrollWidth > panel.clientWidth + 1) bad.push(`panel scrolls sideways (${panel.scrollWidth} > ${panel.clientWidth})`);
        for (const el of panel.querySelectorAll('input, select, textarea, button, .ca-chip, svg, table, progress')) {
            const r = el.getBoundingClientRect();
            if (r.width === 0 && r.height === 0) continue;
            if (r.right > box.right + 1 || r.left < box.left - 1) {
                bad.push(`${el.tagName.toLowerCase()}.${el.className || ''} [${el.dataset.testid || el.textContent.slice(0, 30)}] spans ${Math.round(r.left)}..${Math.round(r.right)} outside ${Math.round(box.left)}..${Math.round(box.right)}`);
            }
        }
        return bad;
    }""", root)
    assert not found, f"{where}: " + "; ".join(found)


def assert_accessible(page, root: str, where: str) -> None:
    """axe-core (from labextension/node_modules) on the panel: no serious or critical violation."""
    page.add_script_tag(path=str(AXE))
    violations = page.evaluate("""async root => {
        const result = await axe.run(document.querySelector(root), {resultTypes: ['violations']});
        return result.violations.filter(v => ['serious', 'critical'].includes(v.impact))
            .map(v => `${v.id} (${v.impact}): ${v.help} -> ${v.nodes.slice(0, 3).map(n => n.target.join(' ')).join(', ')}`);
    }""", root)
    assert not violations, f"{where}: " + "; ".join(violations)
