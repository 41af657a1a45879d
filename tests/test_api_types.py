"""The sidebar's TypeScript types are generated from the server's pydantic models and must not drift."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from clinagent_lab.server.api_schema import api_json_schema
from clinagent_lab.spec import TaskSpec

REPO = Path(__file__).resolve().parents[1]
TOOL = REPO / "tools" / "make_api_types.py"


def test_committed_schema_matches_the_models():
    committed = json.loads((REPO / "labextension" / "src" / "api-schema.json").read_text(encoding="utf-8"))
    assert committed == api_json_schema(), "run python tools/make_api_types.py"


def test_enums_come_from_the_models():
    defs = api_json_schema()["$defs"]
    assert defs["TaskSpec"]["properties"]["task_type"]["enum"] == list(TaskSpec.model_fields["task_type"]
                                                                       .annotation.__args__)
    assert {e["$ref"].split("/")[-1] for e in defs["Event"]["oneOf"]} >= {"EpochEvent", "IterationFinished",
                                                                          "StateEvent", "ProposalEvent"}


@pytest.mark.skipif(not (REPO / "labextension" / "node_modules" / ".bin" / "json2ts").exists(),
                    reason="json-schema-to-typescript not installed (npm ci in labextension/)")
def test_generated_typescript_is_current():
    done = subprocess.run([sys.executable, str(TOOL), "--check"], capture_output=True, text=True, cwd=REPO)
    assert done.returncode == 0, done.stderr


def test_no_any_at_the_api_boundary():
    for name in ("api.ts", "panel.tsx", "notebook.ts", "schema.ts"):
        text = (REPO / "labextension" / "src" / name).read_text(encoding="utf-8")
        assert ": any" not in text and "<any>" not in text and "as any" not in text, name
