"""A whole session planned by an LLM through litellm, against a local OpenAI-compatible server.

The real path runs end to end: ``clinagent run --model openai/<name> --api-base http://127.0.0.1:<port>/v1``
parses the request with the LLM, trains a baseline, runs an LLM-written model hook, crashes on an LLM-written
loss hook, asks the LLM for a repair, runs the repaired code, and evaluates the test split once. A second
session loses the server half-way and finishes on the offline planner. Every request body the server
received is scanned for the dataset's file names, ids, metadata values and its folder.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import nbformat
import pandas as pd
import pytest

from clinagent_lab import cli
from clinagent_lab.agent.engine import Engine, prepare_data
from clinagent_lab.records import Session
from clinagent_lab.llm.prompts import PARSE_SYSTEM, PROPOSE_SYSTEM, REPAIR_SYSTEM

try:
    from llm_fixtures import *
except ImportError:  # tests collected as a package
    from tests.llm_fixtures import *

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

FAST = ["training.max_epochs=1", "data.image_size=16", "data.batch_size=32"]
FAST_OVERRIDES = {"training.max_epochs": 1, "data.image_size": 16, "data.batch_size": 32}
REQUEST = ("pneumothorax on chest X-rays; don't let the model cheat by looking at chest drains; "
           "sensitivity matters")
#: the fields every ``llm_call`` audit record carries (prompt/response may be stored as hashes instead)
AUDIT_FIELDS = ("model", "purpose", "attempt", "prompt_tokens", "completion_tokens", "cost_usd", "latency_s",
                "ok", "error")

MODEL_CODE = good_model_code(hidden=6)
BROKEN_LOSS = (
    "import torch.nn.functional as F\n\n"
    "def custom_loss(logits, labels):\n"
    "    # one logit per class treated as a single binary logit: the shapes do not match\n"
    "    return F.binary_cross_entropy_with_logits(logits, labels.float())\n"
)
FIXED_LOSS = (
    "import torch\n"
    "import torch.nn.functional as F\n\n"
    "def custom_loss(logits, labels):\n"
    "    # cross-entropy over the class logits, missing the positive class costs twice as much\n"
    "    weight = torch.tensor([1.0, 2.0], device=logits.device, dtype=logits.dtype)\n"
    "    return F.cross_entropy(logits, labels.long(), weight=weight)\n"
)
_ARRAY = re.compile(r"(?:-?\d+(?:\.\d+)?\s*,\s*){15,}-?\d+")  # a run of pixel values


# ------------------------------------------------------------------------------------------------ helpers
def private_dataset(root: Path) -> tuple[Path, list[str]]:
    """A tiny chest_drain dataset whose file names, ids and metadata values are distinctive strings.

    Returns the data folder and the strings that must never reach the LLM server.
    """
    from clinagent_lab.data.synth import generate

    generate("chest_drain", root, seed=0, n=80, image_size=16)
    table = pd.read_csv(root / "manifest.csv", dtype=str)
    names = []
    for i, old in enumerate(table["image"]):
        new = f"images/scanQZ{i:04d}_secret.png"
        (root / old).rename(root / new)
        names.append(new)
    table["image"] = names
    table["patient_id"] = "PATIENTQZ" + table["patient_id"].str[1:]
    table["site"] = [f"SITEZEBRA{i % 3}" for i in range(len(table))]
    table.to_csv(root / "manifest.csv", index=False)
    loaded, _ = prepare_data(root)
    terms = {str(root), root.name, *loaded.table["image_id"].astype(str), *table["patient_id"],
             *table["site"]}
    for name in names:
        terms.update({name, Path(name).name, Path(name).stem})
    return root, sorted(terms)


def proposal(idea: str, rationale: str, *, code: dict[str, str] | None = None,
             changes: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"changes": changes or {}, "custom_code": code or {}, "rationale": rationale, "idea": idea}


def request_kind(body: dict[str, Any]) -> str:
    """Which call a recorded request body is, read from its system prompt."""
    system = body["messages"][0]["content"]
    for kind, text in (("parse", PARSE_SYSTEM), ("propose", PROPOSE_SYSTEM.split("{")[0]),
                       ("repair", REPAIR_SYSTEM.split("{")[0])):
        if system.startswith(text[:80]):
            return kind
    return "unknown"


def user_payload(body: dict[str, Any]) -> dict[str, Any]:
    return json.loads(body["messages"][-1]["content"])


def hook_source(notebook: str | Path, hook: str) -> str:
    nb = nbformat.read(notebook, as_version=4)
    cells = [c for c in nb.cells if f"hook:{hook}" in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"{notebook} has {len(cells)} hook:{hook} cells"
    return cells[0].source


def notebook_text_output(notebook: str | Path) -> str:
    nb = nbformat.read(notebook, as_version=4)
    parts = []
    for cell in nb.cells:
        for out in cell.get("outputs", []):
            parts.append(str(out.get("text", "")))
            parts.append(str((out.get("data") or {}).get("text/plain", "")))
    return "\n".join(parts)


def final_test_of_iteration(out: Path, copy: Path, index: int) -> Path:
    """Run the final test of iteration ``index`` in a copy of a finished session; returns the notebook."""
    shutil.copytree(out, copy)
    shutil.rmtree(copy / "final_test")
    session = Session.load(copy)
    session.out_dir, session.best_iteration = str(copy), index
    session.final_test, session.test_reads, session.status = None, 0, "stopped"
    session.save()
    final = Engine.open(copy).finish()
    assert final.iteration == index and final.n_samples == 16 and "auroc" in final.metrics
    return copy / "final_test" / "final_test.ipynb"


def llm_calls(session: Session) -> list[dict[str, Any]]:
    return [e.detail for e in session.audit if e.kind == "llm_call"]


def assert_audit_records(records: list[dict[str, Any]], model: str) -> None:
    for rec in records:
        for key in AUDIT_FIELDS:
            assert key in rec, f"audit record lacks {key!r}: {sorted(rec)}"
        assert rec["model"] == model
        assert ("prompt" in rec) or ("prompt_sha256" in rec)
        assert ("response" in rec) or ("response_sha256" in rec)
        assert isinstance(rec["cost_usd"], float) and rec["cost_usd"] >= 0.0
        assert rec["latency_s"] >= 0.0


def assert_private_free(server: FakeLLMServer, terms: list[str]) -> None:
    assert server.requests, "the server received nothing"
    for i, text in enumerate(server.request_texts()):
        leaked = [t for t in terms if t in text]
        assert not leaked, f"request {i} ({request_kind(server.requests[i])}) carries private strings {leaked[:5]}"
        for prefix in ("scanQZ", "PATIENTQZ", "SITEZEBRA", "HOSPITALROOT"):
            assert prefix not in text, f"request {i} carries {prefix!r}"
        assert not _ARRAY.search(text), f"request {i} carries a long run of numbers (pixels?)"


# ------------------------------------------------------------------------------------------------ test 1
def test_cli_session_with_llm_custom_code_and_repair(tmp_path, fake_llm, capsys):
    data, terms = private_dataset(tmp_path / "HOSPITALROOT_private")
    out = tmp_path / "session"
    fake_llm.push(Reply(content=json.dumps(spec_reply()), prompt_tokens=311, completion_tokens=41,
                        delay_s=0.2))
    fake_llm.push_json(proposal("tiny_cnn_backbone", "A small CNN suits 16 px images with 49 training cases.",
                                code={"model": MODEL_CODE}), prompt_tokens=900, completion_tokens=120)
    fake_llm.push_json(proposal("class_weighted_custom_loss", "Missing a pneumothorax costs more: weight it.",
                                code={"loss": BROKEN_LOSS}), prompt_tokens=950, completion_tokens=90)
    fake_llm.push_json(proposal("class_weighted_custom_loss", "Use cross-entropy over both class logits; "
                                "BCE expected one logit per sample.", code={"loss": FIXED_LOSS}),
                       prompt_tokens=1200, completion_tokens=110)

    argv = ["run", "--intent", REQUEST, "--data", str(data), "--out", str(out),
            "--model", MODEL, "--api-base", fake_llm.api_base,
            "--max-iterations", "4", "--iteration-minutes", "3"]
    for item in FAST:
        argv += ["--set", item]
    code = cli.main(argv)
    printed = capsys.readouterr()
    assert code == 0, printed.err[-3000:]

    session = Session.load(out)
    its = session.iterations
    # --- what ran -----------------------------------------------------------------------------------
    assert session.spec.parsed_by == f"llm:{MODEL}"
    assert [it.idea for it in its] == ["baseline", "tiny_cnn_backbone", "class_weighted_custom_loss",
                                       "class_weighted_custom_loss"]
    assert [it.status for it in its] == ["ok", "ok", "crash", "ok"], [it.error for it in its]
    assert its[0].recipe.custom_code == {}
    # the LLM-written model ran inside the iteration notebook
    assert its[1].recipe.custom_code.get("model") == MODEL_CODE
    assert MODEL_CODE.rstrip() in hook_source(its[1].notebook, "model")
    assert "custom model hook in use: build_model()" in notebook_text_output(its[1].notebook)
    assert its[1].val_metrics and its[1].checkpoint and Path(its[1].checkpoint).exists()
    # the broken loss crashed at run time, inside the training cell, with the shape error
    assert BROKEN_LOSS.rstrip() in hook_source(its[2].notebook, "loss")
    assert its[2].decision == "failed"
    assert "must be the same as input size" in str(its[2].error.get("evalue")), its[2].error
    assert any(e.kind == "repair_proposed" and e.detail.get("iteration") == 3 for e in session.audit)
    # the repaired code ran and produced validation metrics
    assert its[3].recipe.custom_code["loss"] == FIXED_LOSS
    assert FIXED_LOSS.rstrip() in hook_source(its[3].notebook, "loss")
    assert "custom loss hook in use: custom_loss()" in notebook_text_output(its[3].notebook)
    assert its[3].val_metrics and its[3].selection_value is not None
    assert its[3].rationale.startswith("Use cross-entropy")
    model_kept = session.iterations[1].decision == "kept"
    assert (its[2].recipe.custom_code.get("model") == MODEL_CODE) is model_kept  # built on the best recipe
    assert (its[3].recipe.custom_code.get("model") == MODEL_CODE) is model_kept
    # --- the test split, once, with the best iteration's hooks ----------------------------------------
    assert session.status == "finished" and session.final_test is not None and session.test_reads == 1
    best = session.best()
    assert session.final_test.iteration == best.index
    final_nb = out / "final_test" / "final_test.ipynb"
    for hook in ("model", "loss"):
        code_text = best.recipe.custom_code.get(hook)
        if code_text:
            assert code_text.rstrip() in hook_source(final_nb, hook)
        else:
            assert "written by the agent" not in hook_source(final_nb, hook)
    if not model_kept:  # the LLM's model must also evaluate on test: do it on a copy where it is the best
        final_nb = final_test_of_iteration(out, tmp_path / "refinished", 2)
    assert MODEL_CODE.rstrip() in hook_source(final_nb, "model")
    assert "custom model hook in use: build_model()" in notebook_text_output(final_nb)

    # --- the requests, by purpose ---------------------------------------------------------------------
    kinds = [request_kind(b) for b in fake_llm.requests]
    assert kinds == ["parse", "propose", "propose", "repair"]
    assert fake_llm.pending == 0
    repair = user_payload(fake_llm.requests[3])
    assert repair["failing_custom_code"]["loss"] == BROKEN_LOSS
    assert "must be the same as input size" in repair["traceback"]
    assert "custom_loss" in repair["traceback"]
    parse = user_payload(fake_llm.requests[0])  # aggregate statistics did go out (the scan below means something)
    assert "site" in parse["dataset"]["metadata_columns"] and parse["dataset"]["n_images"] == 80
    second = user_payload(fake_llm.requests[2])
    assert "tiny_cnn_backbone" in json.dumps(second)  # the LLM saw its earlier idea and its outcome

    # --- audit: one llm_call record per request, with the required fields ----------------------------
    calls = llm_calls(session)
    assert len(calls) == len(fake_llm.requests) == 4
    assert [c["purpose"] for c in calls] == kinds
    assert all(c["ok"] and c["error"] is None for c in calls)
    assert_audit_records(calls, MODEL)
    assert [(c["prompt_tokens"], c["completion_tokens"]) for c in calls] == [(311, 41), (900, 120), (950, 90),
                                                                             (1200, 110)]
    assert calls[0]["latency_s"] >= 0.2  # the scripted delay of the parse reply
    for call, body in zip(calls, fake_llm.requests):
        assert json.loads(call["prompt"]) == body["messages"]
    assert json.loads(calls[1]["response"])["custom_code"]["model"] == MODEL_CODE

    # --- secrets and privacy ------------------------------------------------------------------------
    raw = (out / "session.json").read_text(encoding="utf-8")
    assert FAKE_KEY not in raw
    assert "sk-test" not in raw
    assert all(FAKE_KEY not in text for text in fake_llm.request_texts())
    assert_private_free(fake_llm, terms)


# ------------------------------------------------------------------------------------------------ test 2
def test_server_down_mid_session_finishes_offline(tmp_path, fake_llm):
    data, terms = private_dataset(tmp_path / "HOSPITALROOT_private")
    out = tmp_path / "session"
    fake_llm.push_json(spec_reply())
    fake_llm.push_json(proposal("lower_weight_decay_llm", "Less weight decay for a tiny dataset.",
                                changes={"optim.weight_decay": 0.0}))
    engine = Engine.create(REQUEST, data, out, model=MODEL, max_iterations=3,
                           iteration_minutes=3, recipe_overrides=FAST_OVERRIDES,
                           llm_options={"api_base": fake_llm.api_base, "max_retries": 1, "backoff_s": 0.05,
                                        "timeout_s": 10.0})
    stopped = []

    def on_event(event: dict[str, Any]) -> None:
        # the first LLM proposal is in hand once iteration 2 starts: take the server away
        if event["type"] == "iteration_started" and event["iteration"] == 2 and not stopped:
            fake_llm.stop()
            stopped.append(True)

    session = engine.run(on_event=on_event)

    assert stopped
    its = session.iterations
    assert len(its) == 3
    assert all(it.status == "ok" for it in its), [it.error for it in its]
    assert its[1].idea == "lower_weight_decay_llm" and its[1].recipe.optim.weight_decay == 0.0
    assert "offline planner" not in its[1].rationale
    assert "(offline planner: LLM unavailable" in its[2].rationale
    assert its[2].idea not in ("baseline", "lower_weight_decay_llm")
    assert session.final_test is not None and session.status == "finished" and session.test_reads == 1
    assert (out / "final_test" / "final_test.ipynb").exists()

    # audit: the two answered calls, then the failed attempts of the third (each attempt recorded)
    calls = llm_calls(session)
    assert_audit_records(calls, MODEL)
    assert [(c["purpose"], c["ok"]) for c in calls[:2]] == [("parse", True), ("propose", True)]
    failed = calls[2:]
    assert len(failed) == 2  # max_retries=1: two attempts, both refused
    assert all(c["purpose"] == "propose" and not c["ok"] and c["error"] and c["response"] is None
               for c in failed)
    assert [c["attempt"] for c in failed] == [0, 1]
    assert len(fake_llm.requests) == 2
    assert [request_kind(b) for b in fake_llm.requests] == ["parse", "propose"]

    raw = (out / "session.json").read_text(encoding="utf-8")
    assert FAKE_KEY not in raw
    assert_private_free(fake_llm, terms)
