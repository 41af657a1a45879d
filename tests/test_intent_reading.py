"""Classes of phrasing the offline parser reads by method: pronouns, "X matters", errors weighed against each
other, "ignore X", typos, numbers in words, constraints in separate sentences, negation scope."""

from __future__ import annotations

import pytest

from clinagent_lab.cli import DEMO_REQUEST, _spec_summary
from clinagent_lab.intent import parse_offline
from clinagent_lab.intent.anaphora import pronoun_mentions
from clinagent_lab.intent.matching import Mention
from clinagent_lab.intent.normalize import normalize, numbers_as_digits
from clinagent_lab.intent.weighing import weigh


def actions(text: str) -> dict[str, str]:
    return {c.name: c.action for c in parse_offline(text).confounders}


# -- pronouns ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("Pneumothorax on chest X-rays. Many of these patients have chest drains. Don't let the model rely on them.",
     {"chest_drain": "mitigate"}),
    ("melanoma, dermoscopy. Rulers turn up in half the photos; make sure the model ignores them.",
     {"ruler": "mitigate"}),
    ("wrist fractures; casts and splints are common. It must not lean on either of them.", {"cast": "mitigate"}),
    ("dermoscopy melanoma. Rulers and ink markings are everywhere. These must not matter.",
     {"ruler": "mitigate", "ink_marking": "mitigate"}),
    ("CXR pneumothorax. Drains are in a lot of films. Is it using them? Just report it.",
     {"chest_drain": "report"}),
    ("pneumothorax on CXR with chest drains. Don't let it cheat.", {"chest_drain": "mitigate"}),
])
def test_pronoun_refers_back_to_the_named_confounder(text: str, expected: dict[str, str]) -> None:
    assert actions(text) == expected


def test_pronoun_before_a_noun_or_as_the_model_is_not_a_confounder() -> None:
    text = "rulers are present. these images are small. it should work well."
    assert pronoun_mentions(text, [Mention("ruler", 0, 6)]) == []


# -- "X matters", "X is what counts", "prioritise X" ------------------------------------------------------


@pytest.mark.parametrize("text, risk", [
    (DEMO_REQUEST, "sensitivity"),
    ("pneumonia on CXR, recall is what counts", "sensitivity"),
    ("fractures on wrist films, prioritise sensitivity", "sensitivity"),
    ("melanoma on dermoscopy; specificity matters most", "specificity"),
    ("pneumothorax. Specificity is king here.", "specificity"),
    ("pneumonia CXR, favour sensitivity over specificity", "sensitivity"),
])
def test_stated_priority(text: str, risk: str) -> None:
    assert parse_offline(text).risk_preference == risk


def test_demo_card_says_sensitivity() -> None:
    summary = _spec_summary(parse_offline(DEMO_REQUEST))
    assert "risk:        sensitivity" in summary
    assert "('chest_drain', None, 'mitigate')" in summary


# -- two errors weighed against each other -----------------------------------------------------------------


@pytest.mark.parametrize("text, risk", [
    ("melanoma vs nevus; an unnecessary biopsy is cheap next to a late diagnosis", "sensitivity"),
    ("wrist fractures: better an extra x-ray than a missed fracture", "sensitivity"),
    ("pneumothorax, an extra CT is nothing compared with sending someone home with a pneumothorax",
     "sensitivity"),
    ("pneumonia CXR. Overcalling wastes beds, but a missed pneumonia in a child is far worse.", "sensitivity"),
    ("pneumonia on CXR. A missed case will be caught at follow-up, that's fine; false alarms are costly.",
     "specificity"),
    ("fractures: unnecessary referrals are worse than a missed case", "specificity"),
    ("pneumothorax; a false alarm is acceptable, a missed one is not", "sensitivity"),
])
def test_errors_weighed(text: str, risk: str) -> None:
    assert parse_offline(text).risk_preference == risk


def test_weigh_returns_the_sentence_it_read() -> None:
    text = "pneumothorax on cxr. i'd rather have a few false alarms than miss a case."
    assert weigh(text) == [("sensitivity", (20, len(text)))]


# -- "ignore X", "X must not matter", "not just picking up X" -> mitigate; waving away -> report -------------


@pytest.mark.parametrize("text, expected", [
    ("pneumothorax on CXR, ignore the chest drains", {"chest_drain": "mitigate"}),
    ("melanoma dermoscopy, rulers must not matter", {"ruler": "mitigate"}),
    ("pneumothorax. Make sure it is not just picking up the chest tubes.", {"chest_drain": "mitigate"}),
    ("pneumothorax; the hospitals should make no difference", {"site": "mitigate"}),
    ("melanoma dermoscopy, you can ignore the rulers", {"ruler": "report"}),
    ("melanoma dermoscopy, rulers don't matter to me", {"ruler": "report"}),
    ("pneumothorax CXR, don't worry about drains", {"chest_drain": "report"}),
])
def test_mitigate_or_report(text: str, expected: dict[str, str]) -> None:
    assert actions(text) == expected


# -- typos and numbers in words -------------------------------------------------------------------------


@pytest.mark.parametrize("typed, read", [("pneumothroax", "pneumothorax"), ("fracutre", "fracture"),
                                         ("melanomma", "melanoma"), ("specifity", "specificity"),
                                         ("lesion", "lesion"), ("features", "features")])
def test_typos_and_transpositions(typed: str, read: str) -> None:
    assert normalize(typed).text == read


@pytest.mark.parametrize("text, expected", [
    ("two in fifty", "2 in 50"), ("twelve percent", "12 percent"), ("ninety-five percent", "95 percent"),
    ("one in ten", "1 in 10"), ("one of them", "one of them"), ("two thirds", "two thirds"),
    ("a quarter", "a quarter"), ("one hundred and twenty", "120"),
])
def test_numbers_as_digits(text: str, expected: str) -> None:
    assert numbers_as_digits(text) == expected


@pytest.mark.parametrize("text, fraction", [
    ("detect wrist fractures with boxes; two in fifty images have boxes", 0.04),
    ("box the fractures. A quarter of the images are annotated.", 0.25),
    ("wrist fracture detection with bounding boxes, twelve percent are boxed", 0.12),
])
def test_box_fraction_in_words_and_other_sentences(text: str, fraction: float) -> None:
    spec = parse_offline(text)
    assert spec.task_type == "detection"
    assert spec.supervision.kind == "mixed" and spec.supervision.box_fraction == pytest.approx(fraction)


def test_operating_point_in_words() -> None:
    spec = parse_offline("pneumothorax, sensitivity at ninety percent specificity")
    assert spec.primary_metric.name == "sensitivity_at_specificity"
    assert spec.primary_metric.params["specificity"] == pytest.approx(0.9)


# -- task in one sentence, constraints in others; negation scope ------------------------------------------


def test_task_and_constraints_in_separate_sentences() -> None:
    spec = parse_offline("We see a lot of wrist trauma in kids.\nThe task: fractures, with boxes.\n"
                         "- only 5% of the films have boxes\n- casts must not matter\n- never miss one")
    assert (spec.task_type, spec.target_classes, spec.risk_preference) == ("detection", ["fracture"],
                                                                           "sensitivity")
    assert spec.supervision.box_fraction == pytest.approx(0.05)
    assert {c.name: c.action for c in spec.confounders} == {"cast": "mitigate"}


@pytest.mark.parametrize("text, targets", [
    ("dermoscopy: not melanoma, I want basal cell carcinoma", ["basal cell carcinoma"]),
    ("dermoscopy - don't miss melanoma", ["melanoma"]),
    ("chest x-rays: pneumonia, not pneumothorax", ["pneumonia"]),
])
def test_negation_scope(text: str, targets: list[str]) -> None:
    assert parse_offline(text).target_classes == targets
