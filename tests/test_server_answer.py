"""``POST /clinagent/api/spec/answer``: a structured question answered returns the new spec; bad ids are 400."""

from __future__ import annotations

import pytest

from clinagent_lab.spec import TaskSpec

from .test_server_handlers import call, jp_server_config, manager, data_dir  # noqa: F401 (fixtures)

pytest_plugins = ["pytest_jupyter.jupyter_server"]

STRUCTURED = hasattr(TaskSpec, "answer")


def _spec_with_question() -> dict:
    spec = TaskSpec(task_type="binary_classification", modality="chest_xray", objective="detect pneumothorax",
                    target_classes=["pneumothorax"])
    data = spec.model_dump(mode="json")
    data["questions"] = [{"id": "risk_preference", "text": "Which mistake is worse?", "field": "risk_preference",
                          "options": [{"value": "sensitivity", "label": "Missing a case"},
                                      {"value": "specificity", "label": "A false alarm"},
                                      {"value": "balanced", "label": "Both the same"}],
                          "default": "balanced"}]
    return data


@pytest.mark.skipif(not STRUCTURED, reason="TaskSpec.answer (structured questions) has not landed yet")
async def test_answer_sets_the_field_and_removes_the_question(jp_fetch, manager):  # noqa: F811
    code, spec = await call(jp_fetch, "POST", "spec", "answer",
                            body={"spec": _spec_with_question(), "question_id": "risk_preference",
                                  "value": "sensitivity"})
    assert code == 200, spec
    assert spec["risk_preference"] == "sensitivity" and spec["questions"] == []


@pytest.mark.skipif(not STRUCTURED, reason="TaskSpec.answer (structured questions) has not landed yet")
@pytest.mark.parametrize("question_id, value", [("nope", "sensitivity"), ("risk_preference", "sometimes")])
async def test_bad_answer_is_400_with_what_where_fix(jp_fetch, manager, question_id, value):  # noqa: F811
    code, answer = await call(jp_fetch, "POST", "spec", "answer",
                              body={"spec": _spec_with_question(), "question_id": question_id, "value": value})
    assert code == 400 and answer["what"] and answer["fix"]


async def test_answer_body_is_validated(jp_fetch, manager):  # noqa: F811
    code, answer = await call(jp_fetch, "POST", "spec", "answer", body={"question_id": "x", "value": "y"})
    assert code == 400 and answer["field"] == "spec"
    if not STRUCTURED:  # a plain-string spec: a clear 400 instead of a crash
        spec = TaskSpec(objective="x").model_dump(mode="json")
        code, answer = await call(jp_fetch, "POST", "spec", "answer",
                                  body={"spec": spec, "question_id": "q1", "value": "y"})
        assert code == 400 and "structured questions" in answer["what"]
