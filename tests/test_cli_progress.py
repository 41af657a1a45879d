"""The command line's progress displays: live line on a terminal, plain lines otherwise, --verbose epochs."""

from __future__ import annotations

import io
from types import SimpleNamespace

from clinagent_lab.cli_progress import LiveProgress, PlainProgress, ProgressPrinter, print_summary, progress_display

EVENTS = [
    {"type": "iteration_started", "iteration": 1, "idea": "baseline", "max_epochs": 3, "rationale": "first"},
    {"type": "data_started", "iteration": 1, "data_path": "data"},
    {"type": "cell", "iteration": 1, "index": 4, "total": 16},
    {"type": "fit_started", "iteration": 1, "max_epochs": 3, "budget_s": 60.0},
    *({"type": "epoch", "iteration": 1, "epoch": e, "max_epochs": 3, "budget_s": 60.0,
       "metrics": {"val_loss": 0.5, "val_auroc": 0.7 + 0.05 * e}} for e in range(3)),
    {"type": "fit_finished", "iteration": 1},
    {"type": "iteration_finished", "iteration": 1, "status": "ok", "decision": "baseline",
     "selection_value": 0.8, "wall_s": 12.0, "reason": "first iteration"},
    {"type": "loop_finished", "reason": "budget spent", "best_iteration": 1},
]


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def feed(display) -> str:
    for event in EVENTS:
        display(event)
    if hasattr(display, "close"):
        display.close()
    return display.stream.getvalue()


def test_the_display_follows_the_stream_and_the_flag():
    assert type(progress_display(False, io.StringIO())) is PlainProgress
    assert type(progress_display(False, Tty())) is LiveProgress
    assert type(progress_display(True, Tty())) is ProgressPrinter


def test_plain_output_has_two_lines_per_iteration_and_no_control_characters():
    out = feed(PlainProgress(io.StringIO()))
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines[0] == "iteration 1 · baseline · started (up to 3 epochs)"
    assert lines[1].startswith("iteration 1 · baseline · ok · selection 0.8000 · baseline")
    assert not any("epoch" in line for line in lines[1:]) and "\x1b" not in out
    assert "loop finished: budget spent" in out


def test_verbose_prints_every_epoch():
    out = feed(ProgressPrinter(io.StringIO()))
    assert [line.split(" · ")[0].strip() for line in out.splitlines() if "epoch " in line] == \
        ["epoch 1/3", "epoch 2/3", "epoch 3/3"]
    assert "val_auroc 0.8000" in out


def test_live_line_ends_with_the_outcome_of_the_iteration():
    out = feed(LiveProgress(Tty()))
    assert "iteration 1 · baseline" in out and "3/3" in out
    assert "ok · 0.8000 · baseline · 12 s" in out
    assert "epoch 1/3" not in out  # no per-epoch lines


def test_summary_table():
    its = [SimpleNamespace(index=1, idea="baseline", status="ok", selection_value=0.81, decision="baseline",
                           wall_s=40.0),
           SimpleNamespace(index=2, idea="dfr", status="crash", selection_value=None, decision="discarded",
                           wall_s=3.0)]
    out = io.StringIO()
    print_summary(SimpleNamespace(iterations=its, best_iteration=1), out)
    text = out.getvalue()
    assert "baseline ★" in text and "0.8100" in text and "crash" in text and "-" in text


def test_summary_shows_false_alarms_with_and_without_the_confounder():
    def metrics(with_, without):
        return {"confounders": {"chest_drain": {"reliance": {"fpr_confounder_pos": with_,
                                                             "fpr_confounder_neg": without}}}}

    its = [SimpleNamespace(index=1, idea="baseline", status="ok", selection_value=0.84, decision="baseline",
                           wall_s=100.0, val_metrics=metrics(0.82, 0.0)),
           SimpleNamespace(index=2, idea="group_balanced", status="ok", selection_value=0.86, decision="kept",
                           wall_s=120.0, val_metrics=metrics(0.2, 0.15))]
    spec = SimpleNamespace(mitigated_confounders=lambda: [SimpleNamespace(name="chest_drain")])
    final = SimpleNamespace(iteration=2, metrics=metrics(0.25, 0.1))
    out = io.StringIO()
    print_summary(SimpleNamespace(iterations=its, best_iteration=2, spec=spec, final_test=final), out)
    text = out.getvalue()
    assert "false alarms with / without chest_drain" in text
    assert "82% / 0%" in text and "20% / 15%" in text
    assert "test split (once), iteration 2: false alarms with / without chest_drain 25% / 10%" in text
