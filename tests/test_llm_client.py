"""LLMClient through litellm's real code path against a local fake OpenAI-compatible server."""

from __future__ import annotations

import hashlib
import json
import socket

import pytest
from pydantic import BaseModel, ConfigDict

from clinagent_lab.errors import ClinagentError
from clinagent_lab.llm.client import (
    LLMBudgetExceeded,
    LLMInvalidOutput,
    LLMUnavailable,
    extract_json,
    resolve_model,
)

try:
    from llm_fixtures import *  # noqa: F403
except ImportError:  # tests collected as a package
    from tests.llm_fixtures import *  # noqa: F403

pytestmark = pytest.mark.timeout(120)


class Answer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: int
    label: str


MESSAGES = [{"role": "system", "content": "answer with JSON"}, {"role": "user", "content": "what is 6*7?"}]


def test_resolve_model_order(monkeypatch):
    monkeypatch.delenv("CLINAGENT_MODEL", raising=False)
    assert resolve_model(None) == "offline"
    monkeypatch.setenv("CLINAGENT_MODEL", "ollama/llama3.1")
    assert resolve_model(None) == "ollama/llama3.1"
    assert resolve_model("openai/gpt-4o-mini") == "openai/gpt-4o-mini"
    assert resolve_model("  ") == "ollama/llama3.1"


def test_extract_json_tolerates_fences_and_prose():
    assert extract_json('Here:\n```json\n{"value": 1, "label": "a"}\n```') == {"value": 1, "label": "a"}
    assert extract_json('The answer is {"value": 2, "label": "b"}. Done') == {"value": 2, "label": "b"}


def test_valid_reply_is_validated_and_audited(fake_llm, audit_log):
    fake_llm.push_json({"value": 42, "label": "answer"})
    client = make_client(fake_llm, audit_log)
    out = client.complete_json("test", MESSAGES, Answer)
    assert out == Answer(value=42, label="answer")
    body = fake_llm.requests[0]
    assert body["model"] == "fake-model"
    assert body["temperature"] == 0
    assert body["response_format"] == {"type": "json_object"}  # openai/ compatible server: JSON mode
    assert body["messages"] == MESSAGES
    assert len(audit_log) == 1
    rec = audit_log[0]
    assert rec["ok"] is True and rec["error"] is None
    assert rec["model"] == MODEL and rec["purpose"] == "test"
    assert (rec["prompt_tokens"], rec["completion_tokens"]) == (100, 20)
    assert rec["cost_usd"] == 0.0  # unknown model: no price
    assert json.loads(rec["response"]) == {"value": 42, "label": "answer"}
    assert "what is 6*7?" in rec["prompt"]
    assert rec["latency_s"] >= 0
    assert client.usage.calls == 1 and client.usage.total_tokens == 120


def test_invalid_json_then_valid_retries_with_error(fake_llm, audit_log):
    fake_llm.push_text("this is not json at all").push_json({"value": 1, "label": "x"})
    client = make_client(fake_llm, audit_log)
    assert client.complete_json("test", MESSAGES, Answer).value == 1
    assert len(fake_llm.requests) == 2
    second = fake_llm.requests[1]["messages"]
    assert second[-2] == {"role": "assistant", "content": "this is not json at all"}
    assert "not valid JSON" in second[-1]["content"]
    assert [r["ok"] for r in audit_log] == [False, True]
    assert "invalid output" in audit_log[0]["error"]
    assert client.usage.calls == 2 and client.usage.prompt_tokens == 200


def test_schema_error_is_fed_back(fake_llm, audit_log):
    fake_llm.push_json({"value": "many", "label": "x"}).push_json({"value": 3, "label": "x"})
    client = make_client(fake_llm, audit_log)
    assert client.complete_json("test", MESSAGES, Answer).value == 3
    feedback = fake_llm.requests[1]["messages"][-1]["content"]
    assert "field 'value'" in feedback


def test_check_callback_problem_is_fed_back(fake_llm, audit_log):
    fake_llm.push_json({"value": 5, "label": "x"}).push_json({"value": 6, "label": "x"})
    client = make_client(fake_llm, audit_log)
    def even(a: Answer) -> str | None:
        return None if a.value % 2 == 0 else f"{a.value} is odd; send an even value"

    out = client.complete_json("test", MESSAGES, Answer, check=even)
    assert out.value == 6
    assert "5 is odd; send an even value" in fake_llm.requests[1]["messages"][-1]["content"]


def test_invalid_output_exhausted_raises(fake_llm, audit_log):
    for _ in range(3):
        fake_llm.push_text("{broken")
    client = make_client(fake_llm, audit_log, max_invalid_retries=2)
    with pytest.raises(LLMInvalidOutput) as info:
        client.complete_json("test", MESSAGES, Answer)
    assert isinstance(info.value, LLMUnavailable) and isinstance(info.value, ClinagentError)
    assert len(fake_llm.requests) == 3 and len(audit_log) == 3
    assert not any(r["ok"] for r in audit_log)


def test_rate_limit_then_success_backs_off(fake_llm, audit_log):
    fake_llm.push_status(429, "slow down").push_status(429, "slow down").push_json({"value": 7, "label": "x"})
    sleeps: list[float] = []
    client = make_client(fake_llm, audit_log, backoff_s=0.5, backoff_max_s=10.0)
    client._sleep = sleeps.append  # record the schedule instead of waiting
    assert client.complete_json("test", MESSAGES, Answer).value == 7
    assert len(fake_llm.requests) == 3
    assert len(sleeps) == 2
    assert 0.5 <= sleeps[0] <= 0.55 and 1.0 <= sleeps[1] <= 1.1  # exponential: 0.5, 1.0 (+<=10% jitter)
    assert [r["ok"] for r in audit_log] == [False, False, True]
    assert "RateLimitError" in audit_log[0]["error"] and "429" in audit_log[0]["error"]


def test_server_errors_exhaust_retries(fake_llm, audit_log):
    for _ in range(3):
        fake_llm.push_status(500, "boom")
    client = make_client(fake_llm, audit_log, max_retries=2)
    with pytest.raises(LLMUnavailable) as info:
        client.complete_json("test", MESSAGES, Answer)
    assert "did not answer after 3 attempt(s)" in str(info.value)
    assert len(fake_llm.requests) == 3 and len(audit_log) == 3


def test_slow_reply_times_out_then_retry_succeeds(fake_llm, audit_log):
    fake_llm.push_slow(2.0, {"value": 0, "label": "late"}).push_json({"value": 8, "label": "on time"})
    client = make_client(fake_llm, audit_log, timeout_s=0.5)
    out = client.complete_json("test", MESSAGES, Answer)
    assert out.label == "on time"
    assert audit_log[0]["ok"] is False and "Timeout" in audit_log[0]["error"]
    assert audit_log[0]["latency_s"] < 1.9


def test_slow_server_exhausts_retries(fake_llm, audit_log):
    for _ in range(2):
        fake_llm.push_slow(1.5, {"value": 0, "label": "late"})
    client = make_client(fake_llm, audit_log, timeout_s=0.3, max_retries=1)
    with pytest.raises(LLMUnavailable):
        client.complete_json("test", MESSAGES, Answer)
    assert len(audit_log) == 2


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_server_down_raises_unavailable(llm_env, audit_log):
    client = make_client(None, audit_log, api_base=f"http://127.0.0.1:{_closed_port()}/v1", max_retries=1)
    with pytest.raises(LLMUnavailable):
        client.complete_json("test", MESSAGES, Answer)
    assert len(audit_log) == 2 and not audit_log[0]["ok"]


def test_token_budget_stops_before_sending(fake_llm, audit_log):
    fake_llm.push_json({"value": 1, "label": "x"}).push_json({"value": 2, "label": "x"})
    client = make_client(fake_llm, audit_log, max_tokens_total=125)
    client.complete_json("test", MESSAGES, Answer)  # 120 tokens used; the next prompt alone is ~10 more
    with pytest.raises(LLMBudgetExceeded) as info:
        client.complete_json("test", MESSAGES, Answer)
    assert "token budget" in str(info.value)
    assert len(fake_llm.requests) == 1  # nothing sent once the budget is spent
    assert audit_log[-1]["ok"] is False and "budget" in audit_log[-1]["error"]


def test_money_budget_uses_configured_prices(fake_llm, audit_log):
    fake_llm.push_json({"value": 1, "label": "x"}).push_json({"value": 2, "label": "x"})
    client = make_client(fake_llm, audit_log, input_cost_per_token=1e-4, output_cost_per_token=2e-4,
                         max_cost_usd=0.01)
    client.complete_json("test", MESSAGES, Answer)
    assert audit_log[0]["cost_usd"] == pytest.approx(100 * 1e-4 + 20 * 2e-4)  # 0.014 > 0.01
    with pytest.raises(LLMBudgetExceeded, match="money budget"):
        client.complete_json("test", MESSAGES, Answer)
    assert len(fake_llm.requests) == 1


def test_store_prompts_false_keeps_only_hashes(fake_llm, audit_log):
    fake_llm.push_json({"value": 1, "label": "x"})
    client = make_client(fake_llm, audit_log, store_prompts=False)
    client.complete_json("test", MESSAGES, Answer)
    rec = audit_log[0]
    assert "prompt" not in rec and "response" not in rec
    expected = hashlib.sha256(json.dumps(MESSAGES, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    assert rec["prompt_sha256"] == expected
    assert "what is 6*7" not in json.dumps(rec)


def test_api_key_never_in_audit(fake_llm, audit_log):
    key = FAKE_KEY
    # the provider echoes the key in an error and in a reply; neither may reach the audit
    fake_llm.push_status(429, f"invalid key {key}")
    fake_llm.push_text(f"my key is {key} and sk-otherkey1234567890")
    fake_llm.push_json({"value": 1, "label": "x"})
    client = make_client(fake_llm, audit_log)
    client.complete_json("test", MESSAGES, Answer)
    dumped = json.dumps(list(audit_log))
    assert key not in dumped and "sk-otherkey1234567890" not in dumped
    assert "<secret>" in dumped
    # the key did go to the provider, as a header only
    auth = [v for h in fake_llm.headers for k, v in h.items() if k.lower() == "authorization"]
    assert auth and all(v == f"Bearer {key}" for v in auth)
    assert all(key not in json.dumps(body) for body in fake_llm.requests)


def test_response_format_rejected_falls_back_to_prompt_only(fake_llm, audit_log):
    fake_llm.push_status(400, "response_format json_object is not supported by this model")
    fake_llm.push_json({"value": 9, "label": "x"})
    client = make_client(fake_llm, audit_log)
    assert client.complete_json("test", MESSAGES, Answer).value == 9
    assert fake_llm.requests[0]["response_format"] == {"type": "json_object"}
    assert "response_format" not in fake_llm.requests[1]


def test_unknown_provider_error_is_not_retried(fake_llm, audit_log):
    fake_llm.push_status(401, "bad key")
    client = make_client(fake_llm, audit_log, max_retries=3)
    with pytest.raises(LLMUnavailable, match="refused"):
        client.complete_json("test", MESSAGES, Answer)
    assert len(fake_llm.requests) == 1


def test_json_mode_follows_model_capabilities(fake_llm):
    from clinagent_lab.llm.client import _import_litellm
    from clinagent_lab.llm.replies import format_level as _format_level

    litellm = _import_litellm()
    assert _format_level(litellm, "gpt-4o") == 0  # structured outputs: JSON schema
    assert _format_level(litellm, MODEL) == 1  # OpenAI-compatible server: JSON mode
    fake_llm.push_json({"value": 4, "label": "x"})
    client = make_client(fake_llm)
    client._format_level = 0  # as for a model with response-schema support
    assert client.complete_json("test", MESSAGES, Answer).value == 4
    fmt = fake_llm.requests[0]["response_format"]
    assert fmt["type"] == "json_schema" and fmt["json_schema"]["name"] == "Answer"
    assert fmt["json_schema"]["schema"] == Answer.model_json_schema()
