"""parse_with_llm: the offline draft goes in, a validated TaskSpec comes out, offline on failure."""

from __future__ import annotations

import pytest

from clinagent_lab.errors import IntentError
from clinagent_lab.intent.offline import parse_offline
from clinagent_lab.llm.parser import build_parser, parse_with_llm
from clinagent_lab.spec import TaskSpec

try:
    from llm_fixtures import *  # noqa: F403
    from llm_fixtures import request_json
except ImportError:  # tests collected as a package
    from tests.llm_fixtures import *  # noqa: F403
    from tests.llm_fixtures import request_json

pytestmark = pytest.mark.timeout(120)

REQUEST = "find pneumothorax on chest x-rays, at 80% specificity, and make sure chest drains are not used"


def test_llm_spec_validates_and_is_attributed(fake_llm, audit_log):
    fake_llm.push_json(spec_reply())
    client = make_client(fake_llm, audit_log)
    spec = parse_with_llm(REQUEST, make_fingerprint(), client)
    assert isinstance(spec, TaskSpec)
    assert spec.parsed_by == "llm:openai/fake-model"
    assert spec.request == REQUEST  # the typed request is kept, whatever the model echoed
    assert spec.primary_metric.name == "sensitivity_at_specificity"
    assert spec.primary_metric.params == {"specificity": 0.8}
    assert spec.confounder("chest_drain").action == "mitigate"
    payload = request_json(fake_llm, 0)
    draft = parse_offline(REQUEST, make_fingerprint())
    assert payload["draft_task_spec"]["objective"] == draft.objective
    assert payload["draft_task_spec"]["target_classes"] == draft.target_classes
    assert payload["dataset"]["classes"] == ["normal", "pneumothorax"]
    assert "root" not in payload["dataset"]
    system = fake_llm.requests[0]["messages"][0]["content"]
    assert '"primary_metric"' in system  # the TaskSpec JSON schema is in the prompt
    assert audit_log[0]["purpose"] == "parse" and audit_log[0]["ok"]


def test_spec_not_matching_dataset_is_fed_back(fake_llm):
    fake_llm.push_json(spec_reply(target_classes=["pneumo"]))
    fake_llm.push_json(spec_reply(confounders=[{"name": "chest_drain", "column": "drain_col",
                                                "action": "mitigate"}]))
    fake_llm.push_json(spec_reply())
    spec = parse_with_llm(REQUEST, make_fingerprint(), make_client(fake_llm))
    assert spec.target_classes == ["pneumothorax"]
    assert "classes ['pneumo'] are not in the dataset" in fake_llm.requests[1]["messages"][-1]["content"]
    assert "confounder columns ['drain_col']" in fake_llm.requests[2]["messages"][-1]["content"]


def test_invalid_spec_then_valid(fake_llm, audit_log):
    fake_llm.push_json(spec_reply(primary_metric={"name": "sensitivity_at_specificity"}))  # no params
    fake_llm.push_json(spec_reply())
    spec = parse_with_llm(REQUEST, make_fingerprint(), make_client(fake_llm, audit_log))
    assert spec.parsed_by.startswith("llm:")
    assert "needs params.specificity" in fake_llm.requests[1]["messages"][-1]["content"]
    assert [r["ok"] for r in audit_log] == [False, True]


def test_llm_failure_falls_back_to_offline(fake_llm):
    for _ in range(3):
        fake_llm.push_status(500, "down")
    spec = parse_with_llm(REQUEST, make_fingerprint(), make_client(fake_llm, max_retries=2))
    expected = parse_offline(REQUEST, make_fingerprint())
    assert spec.parsed_by.startswith("offline (llm failed: the model 'openai/fake-model' did not answer")
    assert spec.model_dump(exclude={"parsed_by"}) == expected.model_dump(exclude={"parsed_by"})


def test_empty_request_is_an_intent_error(fake_llm):
    with pytest.raises(IntentError):
        parse_with_llm("   ", None, make_client(fake_llm))
    assert fake_llm.requests == []


def test_build_parser(fake_llm, audit_log):
    offline = build_parser("offline", audit_log)
    assert offline(REQUEST, None) == parse_offline(REQUEST, None)
    fake_llm.push_json(spec_reply())
    parse = build_parser(MODEL, audit_log, api_base=fake_llm.api_base, backoff_s=0.01)
    spec = parse(REQUEST, make_fingerprint())
    assert spec.parsed_by == f"llm:{MODEL}" and len(audit_log) == 1
