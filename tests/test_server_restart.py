"""A real Jupyter server stopped and started again: each session comes back with the auto-continue switch it was
left with (kept in its ``session.json``), whatever the new server's default; a session never switched follows
the server's default."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from clinagent_lab.recipe import Recipe
from clinagent_lab.records import Iteration, Session
from clinagent_lab.spec import TaskSpec

from .lab_fixtures import lab_api, running_lab

TOKEN = "clinagent-restart-token"


def _api(url: str, path: str, body: dict[str, Any] | None = None) -> Any:
    return lab_api(url, TOKEN, path, body)


def _session(root: Path, sid: str) -> Path:
    """A session that ran its baseline and waits for the clinician."""
    out = root / ".clinagent" / "sessions" / sid
    recipe = Recipe(task_type="binary_classification", classes=["no", "yes"])
    done = Iteration(index=1, recipe=recipe, rationale="baseline", idea="baseline", status="ok", decision="baseline",
                     selection_value=0.7, started_at="2026-01-01T00:00:00Z", finished_at="2026-01-01T00:01:00Z")
    Session(id=sid, request="detect drains", data_path=str(root), out_dir=str(out), spec=TaskSpec(),
            iterations=[done], best_iteration=1).save()
    return out


def _auto(url: str, sid: str) -> bool:
    got = _api(url, f"sessions/{sid}")
    assert got["session"]["auto_continue"] in (None, got["runtime"]["auto_continue"]), got["session"]
    return got["runtime"]["auto_continue"]


def test_a_restarted_server_keeps_each_sessions_auto_continue(tmp_path: Path):
    root = tmp_path / "root"
    outs = {sid: _session(root, sid) for sid in ("s-on", "s-off", "s-untouched")}
    (tmp_path / "first").mkdir()
    with running_lab(tmp_path / "first", root, token=TOKEN, log_name="restart_server_first.log") as url:
        assert [_auto(url, sid) for sid in outs] == [False, False, False]  # the server's default
        assert _api(url, "sessions/s-on/auto-continue", {"auto_continue": True}) == {"auto_continue": True}
        _api(url, "sessions/s-off/auto-continue", {"auto_continue": True})
        _api(url, "sessions/s-off/auto-continue", {"auto_continue": False})
        assert [_auto(url, sid) for sid in outs] == [True, False, False]  # one session's switch, not the server's

    # the first server is gone: the switches are in the session records, written whole
    saved = {sid: json.loads((out / "session.json").read_text()) for sid, out in outs.items()}
    assert [saved[sid]["auto_continue"] for sid in outs] == [True, False, None]
    assert [(a["kind"], a["detail"]) for a in saved["s-off"]["audit"]] == [
        ("auto_continue", {"enabled": True}), ("auto_continue", {"enabled": False})]
    assert not list(root.glob(".clinagent/sessions/*/.session.json.*.tmp"))  # no half-written file beside them

    (tmp_path / "second").mkdir()
    with running_lab(tmp_path / "second", root, token=TOKEN, log_name="restart_server_second.log",
                     extra_args=["--ClinagentApp.auto_continue=True"]) as url:
        # what the sidebar reads when it opens a session (runtime.auto_continue ticks its "keep going" box)
        assert [_auto(url, sid) for sid in outs] == [True, False, True]
        assert Session.load(outs["s-untouched"]).auto_continue is None  # reading does not pin the default
