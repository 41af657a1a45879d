"""LLMRefiner: proposals and repairs through litellm against the fake server, with offline fallback."""

from __future__ import annotations

import json
import socket

import pytest

from clinagent_lab.records import Iteration
from clinagent_lab.llm.refiner import LLMRefiner, build_client, build_refiner, may_repair, repair_attempts
from clinagent_lab.recipe import Recipe, apply_patch

try:
    from llm_fixtures import *  # noqa: F403
    from llm_fixtures import request_json
except ImportError:  # tests collected as a package
    from tests.llm_fixtures import *  # noqa: F403
    from tests.llm_fixtures import request_json

pytestmark = pytest.mark.timeout(120)


def _refiner(server, audit=None, **config) -> tuple[LLMRefiner, StubFallback]:
    fallback = StubFallback()
    return LLMRefiner(make_client(server, audit, **config), fallback), fallback


def _proposal(changes=None, code=None, idea="class_balanced_sampler", rationale="imbalance 2.2:1 in train"):
    return {"changes": changes if changes is not None else {"data.sampler": "class_balanced"},
            "custom_code": code or {}, "rationale": rationale, "idea": idea}


def test_valid_proposal_is_applied(fake_llm, audit_log):
    fake_llm.push_json(_proposal({"data.sampler": "class_balanced", "optim.lr": 0.0003}))
    refiner, fallback = _refiner(fake_llm, audit_log)
    ctx = make_context()
    patch = refiner.propose(ctx)
    assert patch.idea == "class_balanced_sampler" and patch.rationale == "imbalance 2.2:1 in train"
    new = apply_patch(ctx.current, patch)
    assert new.data.sampler == "class_balanced" and new.optim.lr == 0.0003
    assert fallback.calls == [] and refiner.name == "llm:openai/fake-model"
    payload = request_json(fake_llm, 0)
    assert payload["current_recipe"]["optim"]["lr"] == ctx.current.optim.lr
    assert payload["dataset"]["class_counts"] == {"normal": 28, "pneumothorax": 12}
    assert "optim.lr" in payload["editable_fields"]
    assert "evaluation.primary_metric" not in payload["editable_fields"]
    assert [r["purpose"] for r in audit_log] == ["propose"]


def test_unknown_field_error_is_fed_back(fake_llm, audit_log):
    fake_llm.push_json(_proposal({"optim.learning_rate": 0.01}, idea="lower_lr"))
    fake_llm.push_json(_proposal({"optim.lr": 0.01}, idea="lower_lr"))
    refiner, fallback = _refiner(fake_llm, audit_log)
    patch = refiner.propose(make_context())
    assert patch.changes == {"optim.lr": 0.01}
    second = json.dumps(fake_llm.requests[1])
    assert "unknown recipe field 'optim.learning_rate'" in second
    assert [r["ok"] for r in audit_log] == [False, True]


def test_bad_value_error_is_fed_back(fake_llm):
    fake_llm.push_json(_proposal({"optim.lr": -1.0}, idea="lower_lr"))
    fake_llm.push_json(_proposal({"optim.lr": 0.001, "data.batch_size": 16}, idea="smaller_batch"))
    refiner, _ = _refiner(fake_llm)
    assert refiner.propose(make_context()).idea == "smaller_batch"
    feedback = fake_llm.requests[1]["messages"][-1]["content"]
    assert "invalid value in recipe patch" in feedback and "optim.lr" in feedback


def test_unknown_registry_name_is_refused_at_proposal_time(fake_llm, audit_log):
    # a misspelt mitigation or model name is refused when proposed (with the close names fed back), not in the
    # kernel; the rejected reply is in the audit log
    fake_llm.push_json(_proposal({"debias.method": "grupdro"}, idea="groupdro"))
    fake_llm.push_json(_proposal({"model.architecture": "resnet81"}, idea="resnet"))
    fake_llm.push_json(_proposal({"debias.method": "groupdro"}, idea="groupdro"))
    refiner, fallback = _refiner(fake_llm, audit_log)
    patch = refiner.propose(make_context())
    assert patch.changes == {"debias.method": "groupdro"} and fallback.calls == []
    first = fake_llm.requests[1]["messages"][-1]["content"]
    assert "unknown mitigation 'grupdro'" in first and "debias.method" in first and "'groupdro'" in first
    second = fake_llm.requests[2]["messages"][-1]["content"]
    assert "unknown model 'resnet81'" in second and "'resnet18'" in second
    assert [r["ok"] for r in audit_log] == [False, False, True]


def test_locked_field_and_tried_idea_are_refused(fake_llm):
    fake_llm.push_json(_proposal({"evaluation.primary_metric": "f1"}, idea="switch_metric"))
    fake_llm.push_json(_proposal(idea="class_balanced_sampler"))
    fake_llm.push_json(_proposal({"loss.label_smoothing": 0.1}, idea="label_smoothing"))
    refiner, _ = _refiner(fake_llm)
    patch = refiner.propose(make_context(tried={"class_balanced_sampler"}))
    assert patch.idea == "label_smoothing"
    assert "may not be changed" in fake_llm.requests[1]["messages"][-1]["content"]
    assert "already tried" in fake_llm.requests[2]["messages"][-1]["content"]


def test_forbidden_code_is_rejected_then_good_code_accepted(fake_llm):
    bad = "import subprocess\n" + good_model_code()
    fake_llm.push_json(_proposal({}, {"model": bad}, idea="custom_cnn"))
    fake_llm.push_json(_proposal({}, {"model": good_model_code(16)}, idea="custom_cnn"))
    refiner, _ = _refiner(fake_llm)
    patch = refiner.propose(make_context())
    assert patch.changes["custom_code"] == {"model": good_model_code(16)}
    assert "imports 'subprocess'" in fake_llm.requests[1]["messages"][-1]["content"]
    assert apply_patch(make_context().current, patch).custom_code["model"] == good_model_code(16)


def test_forbidden_code_is_never_returned(fake_llm, audit_log):
    bad = "import os\n" + good_model_code() + "os.system('curl example.org')\n"
    for _ in range(3):
        fake_llm.push_json(_proposal({}, {"model": bad}, idea="custom_cnn"))
    refiner, fallback = _refiner(fake_llm, audit_log, max_invalid_retries=2)
    patch = refiner.propose(make_context())
    assert fallback.calls == ["propose"]
    assert "custom_code" not in patch.changes
    assert patch.idea == "lower_lr"
    assert "(offline planner: LLM unavailable:" in patch.rationale
    assert "os.system" in patch.rationale  # the last rejection reason explains the fallback
    assert len(fake_llm.requests) == 3 and not any(r["ok"] for r in audit_log)


def test_code_via_dotted_change_is_checked_too(fake_llm):
    fake_llm.push_json(_proposal({"custom_code.loss": "import socket\ndef custom_loss(logits, labels):\n"
                                  "    return logits.mean()\n"}, idea="custom_loss"))
    fake_llm.push_json(_proposal({"custom_code.loss": "def custom_loss(logits, labels):\n"
                                  "    return logits.mean()\n"}, idea="custom_loss"))
    refiner, _ = _refiner(fake_llm)
    patch = refiner.propose(make_context())
    assert list(patch.changes) == ["custom_code"] and "socket" not in patch.changes["custom_code"]["loss"]
    assert "imports 'socket'" in fake_llm.requests[1]["messages"][-1]["content"]


def _crashed(code: str, idea: str = "custom_cnn", index: int = 1) -> Iteration:
    recipe = Recipe(task_type="binary_classification", classes=["normal", "pneumothorax"],
                    custom_code={"model": code})
    return Iteration(index=index, status="crash", recipe=recipe, rationale="try a custom CNN", idea=idea,
                     decision="failed", error={"ename": "RuntimeError", "evalue": "mat1 and mat2 shapes"})


TRACEBACK = """Traceback (most recent call last):
  File "/home/someone/.venv/lib/python3.11/site-packages/torch/nn/modules/linear.py", line 117, in forward
    return F.linear(input, self.weight, self.bias)
RuntimeError: mat1 and mat2 shapes cannot be multiplied (2x8 and 16x2)
"""


def test_repair_returns_fixed_code(fake_llm, audit_log):
    broken = good_model_code().replace("nn.Linear(8,", "nn.Linear(16,")
    fixed = good_model_code()
    fake_llm.push_json(_proposal({}, {"model": fixed}, idea="fix_linear",
                                 rationale="the linear layer expects 8 features"))
    refiner, fallback = _refiner(fake_llm, audit_log)
    iteration = _crashed(broken)
    patch = refiner.repair(make_context(history=[iteration]), iteration, TRACEBACK)
    assert patch.changes == {"custom_code": {"model": fixed}}
    assert patch.idea == "custom_cnn"  # repairs keep the idea so the engine can count them
    assert apply_patch(iteration.recipe, patch).custom_code["model"] == fixed
    payload = request_json(fake_llm, 0)
    assert payload["failing_custom_code"] == {"model": broken}
    assert "mat1 and mat2 shapes cannot be multiplied" in payload["traceback"]
    assert "/home/someone" not in json.dumps(fake_llm.requests[0])
    assert "torch/nn/modules/linear.py" in payload["traceback"]
    assert audit_log[0]["purpose"] == "repair" and fallback.calls == []


def test_repair_with_forbidden_fix_falls_back(fake_llm):
    bad_fix = "import ctypes\n" + good_model_code()
    for _ in range(2):
        fake_llm.push_json(_proposal({}, {"model": bad_fix}, idea="fix"))
    refiner, fallback = _refiner(fake_llm, max_invalid_retries=1)
    iteration = _crashed("def build_model(recipe, num_classes, in_channels):\n    raise ValueError('x')\n")
    patch = refiner.repair(make_context(history=[iteration]), iteration, TRACEBACK)
    assert fallback.calls == ["repair"] and patch.changes == {"custom_code": {}}
    assert "(offline planner: LLM unavailable:" in patch.rationale


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_down_falls_back_to_rule_refiner(llm_env, audit_log):
    from clinagent_lab.plan.refiner import RuleRefiner

    client = make_client(None, audit_log, api_base=f"http://127.0.0.1:{_closed_port()}/v1", max_retries=1)
    refiner = LLMRefiner(client, RuleRefiner())
    ctx = make_context()
    expected = RuleRefiner().propose(ctx)
    patch = refiner.propose(ctx)
    assert patch.changes == expected.changes and patch.idea == expected.idea
    assert patch.rationale.startswith(expected.rationale)
    note = "(offline planner: LLM unavailable: the model 'openai/fake-model' did not answer"
    assert note in patch.rationale
    assert refiner.last_error and len(audit_log) == 2


def test_budget_exceeded_falls_back_cleanly(fake_llm, audit_log):
    fake_llm.push_json(_proposal())
    refiner, fallback = _refiner(fake_llm, audit_log, max_tokens_total=500)  # the prompt alone is larger
    patch = refiner.propose(make_context())
    assert fake_llm.requests == []  # nothing was sent
    assert fallback.calls == ["propose"] and patch.idea == "lower_lr"
    assert "(offline planner: LLM unavailable: token budget spent" in patch.rationale
    assert audit_log[-1]["ok"] is False and "budget" in audit_log[-1]["error"]


def test_budget_spent_mid_session(fake_llm, audit_log):
    fake_llm.push_json(_proposal(), prompt_tokens=9000, completion_tokens=100)
    fake_llm.push_json(_proposal({"optim.lr": 0.01}, idea="lower_lr"))
    refiner, fallback = _refiner(fake_llm, audit_log, max_tokens_total=10_000)
    assert refiner.propose(make_context()).idea == "class_balanced_sampler"
    second = refiner.propose(make_context(tried={"class_balanced_sampler"}))
    assert len(fake_llm.requests) == 1 and fallback.calls == ["propose"]
    assert "budget" in second.rationale


def test_repair_counter():
    code = "def build_model(recipe, num_classes, in_channels):\n    return None\n"
    first = _crashed(code, idea="custom_cnn", index=1)
    assert repair_attempts([], "custom_cnn") == 0
    assert repair_attempts([first], "custom_cnn") == 0 and may_repair([first], "custom_cnn", max_repairs=2)
    second = _crashed(code, idea="custom_cnn", index=2)
    third = _crashed(code, idea="custom_cnn", index=3)
    assert repair_attempts([first, second], "custom_cnn") == 1
    assert may_repair([first, second], "custom_cnn", 2)
    assert repair_attempts([first, second, third], "custom_cnn") == 2
    assert not may_repair([first, second, third], "custom_cnn", max_repairs=2)
    other = _crashed(code, idea="other", index=4)
    assert may_repair([first, second, third, other], "other", max_repairs=2)
    ok = first.model_copy(update={"status": "ok", "index": 5})
    assert repair_attempts([ok], "custom_cnn") == 0


def test_build_refiner_offline_and_llm(llm_env, audit_log):
    fallback = StubFallback()
    assert build_refiner("offline", fallback=fallback, audit=audit_log) is fallback
    refiner = build_refiner(MODEL, fallback=fallback, audit=audit_log, api_base="http://127.0.0.1:9/v1",
                            timeout_s=3, max_cost_usd=None)
    assert isinstance(refiner, LLMRefiner) and refiner.name == f"llm:{MODEL}"
    assert refiner.client.config.api_base == "http://127.0.0.1:9/v1"
    assert refiner.client.config.max_cost_usd == 2.0  # None options keep the default
    shared = build_client(MODEL, audit=audit_log)
    assert build_refiner(MODEL, fallback=fallback, client=shared).client is shared


def test_build_client_reads_api_base_env(monkeypatch):
    monkeypatch.setenv("CLINAGENT_API_BASE", "http://127.0.0.1:8000/v1")
    assert build_client(MODEL).config.api_base == "http://127.0.0.1:8000/v1"
    assert build_client(MODEL, api_base="http://127.0.0.1:9/v1").config.api_base == "http://127.0.0.1:9/v1"
