"""`clinagent run` asks the spec's open questions on a terminal, takes defaults with --yes, prints otherwise."""

from __future__ import annotations

import io

from clinagent_lab.cli import build_parser
from clinagent_lab.cli_questions import ask_questions, format_question
from clinagent_lab.intent import parse_offline

REQUEST = "pneumothorax on CXR, chest drains present in many images, never miss one but avoid false alarms"


def spec():
    s = parse_offline(REQUEST)
    assert [q.id for q in s.questions] == ["risk_preference", "confounder_action:chest_drain"]
    return s


def test_terminal_answers_by_number_value_and_enter() -> None:
    out = io.StringIO()
    answered = ask_questions(spec(), inp=io.StringIO("1\n\n"), out=out, interactive=True)
    assert answered.risk_preference == "sensitivity"
    assert answered.confounder("chest_drain").action == "report", "Enter takes the default"
    assert answered.questions == []
    assert "(default)" in out.getvalue() and "2 question(s) before training" in out.getvalue()
    assert any(a.startswith("Answered by the clinician") for a in answered.assumptions)


def test_terminal_reasks_after_a_wrong_answer() -> None:
    out = io.StringIO()
    answered = ask_questions(spec(), inp=io.StringIO("maybe\nspecificity\nmitigate\n"), out=out,
                             interactive=True)
    assert answered.risk_preference == "specificity"
    assert answered.confounder("chest_drain").action == "mitigate"
    assert "'maybe' is not one of the options" in out.getvalue()


def test_yes_takes_every_default_and_says_so() -> None:
    out = io.StringIO()
    answered = ask_questions(spec(), yes=True, inp=io.StringIO("1\n"), out=out)
    assert answered.risk_preference == "balanced" and answered.questions == []
    assert sum("(--yes)" in a for a in answered.assumptions) == 2


def test_without_a_terminal_questions_are_printed_and_stay_open() -> None:
    out = io.StringIO()
    s = spec()
    assert ask_questions(s, inp=io.StringIO(""), out=out) == s
    text = out.getvalue()
    assert "no terminal" in text and format_question(s.questions[0]) in text


def test_run_has_a_yes_flag() -> None:
    args = build_parser().parse_args(["run", "--intent", "x", "--data", "d", "--yes"])
    assert args.yes is True


def test_demo_card_on_the_demo_data_says_sensitivity_and_mitigates_drains(tmp_path) -> None:
    from clinagent_lab.agent.prepare import interpret, prepare_data
    from clinagent_lab.cli import DEMO_REQUEST, _spec_summary
    from clinagent_lab.data.synth import generate

    data = generate("chest_drain", tmp_path / "data", seed=0, n=120, image_size=16, correlation=0.8)
    _, fingerprint = prepare_data(data)
    summary = _spec_summary(interpret(DEMO_REQUEST, fingerprint))
    assert "risk:        sensitivity" in summary
    assert "('chest_drain', 'chest_drain', 'mitigate')" in summary
