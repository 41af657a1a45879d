"""The CLI and the server drive the same loop: a broken LLM-written cell is repaired the same way by both.

One request, one tiny dataset, one scripted LLM (a local OpenAI-compatible server reached through litellm):
the baseline runs, the LLM's loss hook crashes inside the notebook, the LLM is asked for a repair with the
traceback, and the repaired hook runs. The assertions are the same for both front doors.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from clinagent_lab import cli
from clinagent_lab.agent.engine import Engine
from clinagent_lab.records import Session
from clinagent_lab.server.manager import SessionManager

try:
    from llm_fixtures import *
except ImportError:  # tests collected as a package
    from tests.llm_fixtures import *

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

REQUEST = "pneumothorax on chest X-rays; sensitivity matters"
FAST = {"training.max_epochs": 1, "data.image_size": 16, "data.batch_size": 32}
BROKEN_LOSS = (
    "import torch.nn.functional as F\n\n"
    "def custom_loss(logits, labels):\n"
    "    return F.binary_cross_entropy_with_logits(logits, labels.float())\n"
)
FIXED_LOSS = (
    "import torch.nn.functional as F\n\n"
    "def custom_loss(logits, labels):\n"
    "    return F.cross_entropy(logits, labels.long())\n"
)


def _script(server: FakeLLMServer) -> None:
    server.push(Reply(content=json.dumps(spec_reply())))
    server.push_json({"changes": {}, "custom_code": {"loss": BROKEN_LOSS}, "idea": "custom_loss",
                      "rationale": "weight the positive class in a custom loss"})
    server.push_json({"changes": {}, "custom_code": {"loss": FIXED_LOSS}, "idea": "custom_loss",
                      "rationale": "cross-entropy over both class logits"})


def _via_cli(data: Path, out: Path, server: FakeLLMServer) -> Path:
    argv = ["run", "--intent", REQUEST, "--data", str(data), "--out", str(out), "--model", MODEL,
            "--api-base", server.api_base, "--max-iterations", "3", "--iteration-minutes", "3"]
    for key, value in FAST.items():
        argv += ["--set", f"{key}={value}"]
    assert cli.main(argv) == 0
    return out


def _via_server(data: Path, root: Path, server: FakeLLMServer, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CLINAGENT_API_BASE", server.api_base)

    async def drive() -> Path:
        manager = SessionManager(root / "sessions", root, engine_factory=Engine, model=MODEL, max_iterations=3,
                                 iteration_minutes=3, auto_continue=True, recipe_overrides=FAST)
        try:
            created = await manager.create(REQUEST, str(data))
            sid = created["session"]["id"]
            await manager.start(sid, auto_continue=True)
            await manager.wait_idle(timeout=800)
            return Path(manager.load(sid).out_dir)
        finally:
            await manager.shutdown()

    return asyncio.run(drive())


@pytest.mark.parametrize("door", ["cli", "server"])
def test_both_front_doors_repair_a_broken_llm_cell(door, tmp_path, fake_llm, monkeypatch):
    from clinagent_lab.data.synth import generate

    data = tmp_path / "data"
    generate("chest_drain", data, seed=0, n=60, image_size=16)
    _script(fake_llm)
    out = (_via_cli(data, tmp_path / "out", fake_llm) if door == "cli"
           else _via_server(data, tmp_path, fake_llm, monkeypatch))

    session = Session.load(out)
    its = session.iterations
    assert [it.idea for it in its] == ["baseline", "custom_loss", "custom_loss"]
    assert [it.status for it in its] == ["ok", "crash", "ok"], [it.error for it in its]
    assert "must be the same as input size" in str(its[1].error.get("evalue"))
    repairs = [e for e in session.audit if e.kind == "repair_proposed"]
    assert [e.detail.get("iteration") for e in repairs] == [2]
    assert its[2].recipe.custom_code["loss"] == FIXED_LOSS
    assert its[2].rationale.startswith("cross-entropy over both")
    assert its[2].val_metrics and its[2].selection_value is not None
    purposes = [e.detail["purpose"] for e in session.audit if e.kind == "llm_call"]
    assert purposes == ["parse", "propose", "repair"]
    repair_request = json.loads(fake_llm.requests[2]["messages"][-1]["content"])
    assert repair_request["failing_custom_code"]["loss"] == BROKEN_LOSS
    assert fake_llm.pending == 0
