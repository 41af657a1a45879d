"""Structured questions on the TaskSpec: built by the parser, answered by a person, old files still load."""

from __future__ import annotations

import pytest

from clinagent_lab.data.base import ColumnAssociation, DatasetFingerprint
from clinagent_lab.errors import ClinagentError
from clinagent_lab.intent import ground_spec, parse_offline
from clinagent_lab.spec import Question, TaskSpec


def drain_data(*, flagged: bool = True) -> DatasetFingerprint:
    assoc = ColumnAssociation(column="chest_drain", kind="binary", auroc=0.86 if flagged else 0.52,
                              flagged=flagged)
    counts = {"0": 150, "1": 50}
    return DatasetFingerprint(
        format="csv", root="/data", task_type="binary_classification", classes=["0", "1"], n_images=200,
        class_counts=counts, split_counts={"train": counts}, splits_given=False, split_rule="by group",
        image_sizes={"min": [8, 8], "median": [8, 8], "max": [8, 8]}, channels=[1],
        metadata_columns=["chest_drain"], associations=[assoc], imbalance_ratio=3.0)


def test_old_plain_string_questions_still_load() -> None:
    spec = TaskSpec.model_validate({"questions": ["Is sex a concern?", "Which class?"]})
    assert [(q.id, q.text, q.options) for q in spec.questions] == [("q1", "Is sex a concern?", []),
                                                                  ("q2", "Which class?", [])]
    assert TaskSpec.model_validate_json(spec.model_dump_json()) == spec


def test_named_confounder_without_action_is_a_choice_with_default() -> None:
    spec = parse_offline("pneumothorax on CXR, chest drains present in many images")
    q = spec.question("confounder_action:chest_drain")
    assert q is not None and q.field == "confounders.chest_drain.action" and q.default == "report"
    assert [o.value for o in q.options] == ["mitigate", "report"]


def test_answer_sets_field_removes_question_and_logs() -> None:
    spec = parse_offline("pneumothorax on CXR, chest drains present in many images")
    new = spec.answer("confounder_action:chest_drain", "mitigate")
    assert new.confounder("chest_drain").action == "mitigate"
    assert new.question("confounder_action:chest_drain") is None
    assert new.assumptions[-1].startswith("Answered by the clinician: You mentioned chest drain")
    assert spec.confounder("chest_drain").action == "report", "the original spec is unchanged"


def test_answer_risk_and_modality() -> None:
    spec = parse_offline("pneumothorax, never miss one and avoid false alarms")
    assert spec.answer("risk_preference", "sensitivity").risk_preference == "sensitivity"
    vague = parse_offline("find the abnormal ones in these images")
    assert vague.answer("modality", "chest_xray").modality == "chest_xray"


def test_answer_ignore_drops_an_offered_confounder() -> None:
    grounded = ground_spec(parse_offline("pneumothorax on chest x-rays"), drain_data())
    q = grounded.question("confounder_action:chest_drain")
    assert q is not None and "ignore" in [o.value for o in q.options]
    assert grounded.answer(q.id, "ignore").confounders == []


@pytest.mark.parametrize("qid, value, message", [
    ("nope", "mitigate", "no open question with id 'nope'"),
    ("confounder_action:chest_drain", "destroy", "'destroy' is not an answer"),
])
def test_bad_answers_raise(qid: str, value: str, message: str) -> None:
    spec = parse_offline("pneumothorax on CXR, chest drains present in many images")
    with pytest.raises(ClinagentError, match=message):
        spec.answer(qid, value)


def test_metric_class_answer_sets_nested_param() -> None:
    spec = TaskSpec(primary_metric={"name": "sensitivity_at_specificity", "params": {"specificity": 0.8}},
                    questions=[Question(id="metric_class", text="which class?", field="primary_metric.params.class",
                                        options=[{"value": "MEL", "label": "MEL"}], default="MEL")])
    assert spec.answer("metric_class", "MEL").primary_metric.params["class"] == "MEL"


# -- safe default: a named confounder the data shows is a shortcut is mitigated, and the question stays -----


def test_named_confounder_without_action_is_mitigated_when_the_data_says_it_predicts() -> None:
    grounded = ground_spec(parse_offline("pneumothorax on CXR, chest drains present in many images"), drain_data())
    assert grounded.confounder("chest_drain").action == "mitigate"
    q = grounded.question("confounder_action:chest_drain")
    assert q is not None and q.default == "mitigate"
    assert any("mitigate by default" in a for a in grounded.assumptions)
    assert grounded.answer(q.id, "report").confounder("chest_drain").action == "report"


def test_named_confounder_without_action_stays_report_when_the_data_says_it_does_not_predict() -> None:
    grounded = ground_spec(parse_offline("pneumothorax on CXR, chest drains present in many images"),
                           drain_data(flagged=False))
    assert grounded.confounder("chest_drain").action == "report"
    assert grounded.question("confounder_action:chest_drain").default == "report"


def test_stated_report_is_kept_even_when_the_data_says_it_predicts() -> None:
    grounded = ground_spec(parse_offline("pneumothorax on CXR, don't worry about chest drains"), drain_data())
    assert grounded.confounder("chest_drain").action == "report"
