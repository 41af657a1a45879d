"""The server extension with the real engine on tiny synthetic data: one iteration, cells, test once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest_plugins = ["pytest_jupyter.jupyter_server"]

API = "clinagent/api"
REQUEST = "flag a chest drain on chest x-rays"


@pytest.fixture
def jp_server_config():
    return {"ServerApp": {"jpserver_extensions": {"clinagent_lab.server": True}},
            "ClinagentApp": {"iteration_minutes": 3.0, "max_iterations": 2}}


@pytest.fixture
def data(jp_root_dir: Path) -> Path:
    from clinagent_lab.data.synth import generate

    return generate("chest_drain", jp_root_dir / "data", n=60, image_size=16)


async def call(jp_fetch, method: str, *parts: str, body: Any = None, params: dict[str, str] | None = None):
    kwargs: dict[str, Any] = {"method": method, "raise_error": False, "request_timeout": 120,
                              "params": params}
    if method == "POST":
        kwargs["body"] = json.dumps(body or {})
    response = await jp_fetch(API, *parts, **kwargs)
    return response.code, json.loads(response.body or b"null")


@pytest.mark.slow
@pytest.mark.timeout(600)
async def test_real_engine_one_iteration(jp_fetch, jp_serverapp, data, jp_root_dir):
    manager = jp_serverapp.web_app.settings["clinagent_manager"]
    code, spec = await call(jp_fetch, "POST", "interpret", body={"request": REQUEST, "data_path": "data"})
    assert code == 200, spec
    assert spec["task_type"] == "binary_classification" and spec["modality"] == "chest_xray"

    code, created = await call(jp_fetch, "POST", "sessions", body={"request": REQUEST, "data_path": "data"})
    assert code == 201, created
    sid = created["session"]["id"]
    assert created["session"]["spec"]["budget"] == {**created["session"]["spec"]["budget"],
                                                    "max_iterations": 2, "iteration_minutes": 3.0}
    assert (jp_root_dir / ".clinagent" / "sessions").resolve() in Path(created["session"]["out_dir"]).parents

    code, answer = await call(jp_fetch, "GET", "sessions", sid, "proposal")
    assert code == 200 and answer["proposal"]["idea"] == "baseline"
    code, answer = await call(jp_fetch, "POST", "sessions", sid, "proposal",
                              body={"action": "edit", "changes": {"training.max_epochs": 1}})
    assert code == 200 and answer["proposal"]["changes"]["training.max_epochs"][1] == 1

    code, _ = await call(jp_fetch, "POST", "sessions", sid, "start")
    assert code == 202
    code, busy = await call(jp_fetch, "POST", "sessions", sid, "start")
    assert code == 409 and busy["error"] == "BusyError"
    await manager.wait_idle(timeout=400)

    code, got = await call(jp_fetch, "GET", "sessions", sid)
    it = got["session"]["iterations"][0]
    assert it["index"] == 1 and it["recipe"]["training"]["max_epochs"] == 1
    assert it["status"] == "ok", it.get("error")
    code, events = await call(jp_fetch, "GET", "sessions", sid, "events")
    types = [e["type"] for e in events["events"]]
    assert {"iteration_started", "epoch", "iteration_finished"} <= set(types)
    assert types.index("iteration_started") < types.index("epoch") < types.index("iteration_finished")

    code, cells = await call(jp_fetch, "GET", "sessions", sid, "iterations", "1", "cells")
    assert code == 200 and cells["cells"][0]["cell_type"] == "markdown"
    code_cells = [c for c in cells["cells"] if c["cell_type"] == "code"]
    assert code_cells and all("clinagent" in c["metadata"]["tags"] for c in code_cells)
    assert any(c["outputs"] for c in code_cells)

    code, final = await call(jp_fetch, "POST", "sessions", sid, "finish")
    assert code == 200, final
    assert final["iteration"] == 1
    code, again = await call(jp_fetch, "POST", "sessions", sid, "finish")
    assert code == 409 and "already evaluated" in again["what"]
