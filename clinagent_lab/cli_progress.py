"""What the ``clinagent`` command line shows while the loop runs, and the table it ends with.

Three displays, one per situation, all fed the engine's events (``on_event``):

- :class:`LiveProgress` (a terminal): one live line per iteration, redrawn in place with the epoch, the
  validation metric and the time left; the line stays, summarised, when the iteration ends.
- :class:`PlainProgress` (not a terminal: a log file, CI, a pipe): one line when an iteration starts and one
  when it ends, nothing per epoch, no control characters.
- :class:`ProgressPrinter` (``--verbose``): a line per epoch as well, with every validation metric.

:func:`progress_display` picks one; :func:`print_summary` prints the compact table of a finished session.

Example:
    >>> import io
    >>> out = io.StringIO()
    >>> show = PlainProgress(out)
    >>> show({"type": "iteration_started", "iteration": 1, "idea": "baseline", "max_epochs": 4})
    >>> show({"type": "epoch", "iteration": 1, "epoch": 0, "max_epochs": 4, "metrics": {"val_auroc": 0.71}})
    >>> show({"type": "iteration_finished", "iteration": 1, "status": "ok", "decision": "baseline",
    ...       "selection_value": 0.8123, "wall_s": 42.0, "reason": "first iteration"})
    >>> print(out.getvalue().strip())
    iteration 1 · baseline · started (up to 4 epochs)
    iteration 1 · baseline · ok · selection 0.8123 · baseline (first iteration) · 42 s
"""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn
from rich.table import Table

__all__ = ["LiveProgress", "PlainProgress", "ProgressPrinter", "progress_display", "print_summary",
           "selection_of"]

#: Which validation metric a progress line shows, best first (the first one an epoch event carries).
SHOWN_METRICS = ("val_group_balanced_auroc", "val_auroc", "val_auroc_macro", "val_map50", "val_balanced_accuracy",
                 "val_loss")
_NICE = {"val_group_balanced_auroc": "group-balanced AUROC", "val_auroc": "AUROC", "val_auroc_macro": "macro AUROC",
         "val_map50": "mAP@50", "val_balanced_accuracy": "balanced accuracy", "val_loss": "loss"}


def selection_of(metrics: dict[str, Any]) -> tuple[str, float] | None:
    """The metric a progress line shows: (human name, value), or None when the epoch carried none.

    >>> selection_of({"val_loss": 0.4, "val_auroc": 0.81})
    ('AUROC', 0.81)
    """
    for key in SHOWN_METRICS:
        value = metrics.get(key)
        if isinstance(value, (int, float)):
            return _NICE[key], float(value)
    return None


def _finished_text(event: dict[str, Any]) -> str:
    value = event.get("selection_value")
    shown = f"{value:.4f}" if isinstance(value, (int, float)) else "-"
    text = f"{event.get('status')} · selection {shown} · {event.get('decision')}"
    if event.get("reason"):
        text += f" ({event['reason']})"
    if isinstance(event.get("wall_s"), (int, float)):
        text += f" · {event['wall_s']:.0f} s"
    if event.get("error"):
        text += f"\n    error: {str(event['error'])[:300]}"
    return text


class _Tracker:
    """Epoch, metric and time left of the running iteration, from its events."""

    def __init__(self) -> None:
        self.started: dict[int, float] = {}
        self.budget: dict[int, float] = {}

    def start(self, it: int) -> None:
        self.started[it] = time.monotonic()

    def left_s(self, event: dict[str, Any]) -> float | None:
        it = event.get("iteration")
        if event.get("budget_s"):
            self.budget[it] = float(event["budget_s"])
        if it not in self.started or it not in self.budget:
            return None
        elapsed = time.monotonic() - self.started[it]
        left = self.budget[it] - elapsed
        done, total = int(event.get("epoch", -1)) + 1, event.get("max_epochs")
        if done > 0 and isinstance(total, int) and total >= done:  # the pace so far, capped by the budget
            left = min(left, elapsed / done * (total - done))
        return max(0.0, left)


class ProgressPrinter:
    """``--verbose``: a line per event that matters, a line per epoch with every validation metric."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tracker = _Tracker()

    def __call__(self, event: dict[str, Any]) -> None:
        kind, it = event.get("type"), event.get("iteration")
        if kind == "iteration_started":
            self.tracker.start(it)
            self._print(f"\n▶ iteration {it} ({event.get('idea')}): {event.get('rationale', '')[:300]}")
        elif kind == "epoch":
            metrics = event.get("metrics") or {}
            shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith("val_"))
            left = self.tracker.left_s(event)
            tail = f" · {left:.0f} s left" if left is not None else ""
            self._print(f"  epoch {int(event.get('epoch', 0)) + 1}/{event.get('max_epochs')} · {shown}{tail}")
        elif kind == "iteration_finished":
            self._print(f"  ■ {_finished_text(event)}")
        else:
            self._other(event)

    def _other(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if kind == "loop_finished":
            self._print(f"\nloop finished: {event.get('reason')}; best iteration {event.get('best_iteration')}")
        elif kind == "test_started":
            self._print(f"evaluating iteration {event.get('iteration')} on the test split (once)…")
        elif kind == "session_finished":
            m = event.get("metrics") or {}
            self._print("test: " + ", ".join(f"{k} {v:.4f}" for k, v in m.items() if isinstance(v, float)))

    def _print(self, text: str) -> None:
        print(text, file=self.stream, flush=True)


class PlainProgress(ProgressPrinter):
    """Not a terminal: a line when an iteration starts and one when it ends; no per-epoch lines."""

    def __call__(self, event: dict[str, Any]) -> None:
        kind, it = event.get("type"), event.get("iteration")
        if kind == "iteration_started":
            self.tracker.start(it)
            epochs = event.get("max_epochs")
            self._print(f"iteration {it} · {event.get('idea')} · started"
                        + (f" (up to {epochs} epochs)" if epochs else ""))
            self.idea = event.get("idea")
        elif kind == "iteration_finished":
            self._print(f"iteration {it} · {getattr(self, 'idea', None) or 'change'} · {_finished_text(event)}")
        elif kind != "epoch":
            self._other(event)


#: events after which the live lines end and a plain line follows
_LOOP_EVENTS = ("loop_finished", "test_started", "session_finished")


class LiveProgress(ProgressPrinter):
    """A terminal: one live line per iteration (rich), redrawn on each epoch, kept when it ends."""

    def __init__(self, stream: TextIO | None = None) -> None:
        super().__init__(stream)
        self.console = Console(file=self.stream)
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(bar_width=18), MofNCompleteColumn(),
                                 TextColumn("{task.fields[detail]}"), console=self.console, transient=False)
        self.tasks: dict[int, Any] = {}
        self.ideas: dict[int, str] = {}

    def __call__(self, event: dict[str, Any]) -> None:
        kind, it = event.get("type"), event.get("iteration")
        if kind == "iteration_started":
            self.tracker.start(it)
            self.ideas[it] = event.get("idea") or "change"
            if not self.progress.live.is_started:
                self.progress.start()
            self.tasks[it] = self.progress.add_task(f"iteration {it} · {self.ideas[it]}",
                                                    total=event.get("max_epochs") or None, detail="starting")
        elif kind == "data_started" and it in self.tasks:
            self.progress.update(self.tasks[it], detail="preparing data")
        elif kind == "fit_started" and it in self.tasks:
            self.progress.update(self.tasks[it], total=event.get("max_epochs"), detail="training")
        elif kind == "epoch" and it in self.tasks:
            shown = selection_of(event.get("metrics") or {})
            left = self.tracker.left_s(event)
            detail = " · ".join(p for p in (f"{shown[0]} {shown[1]:.3f}" if shown else "",
                                            f"{left:.0f} s left" if left is not None else "") if p)
            self.progress.update(self.tasks[it], completed=int(event.get("epoch", 0)) + 1,
                                 total=event.get("max_epochs"), detail=detail)
        elif kind == "fit_finished" and it in self.tasks:
            self.progress.update(self.tasks[it], detail="evaluating")
        elif kind == "iteration_finished" and it in self.tasks:
            value = event.get("selection_value")
            shown = f"{value:.4f}" if isinstance(value, (int, float)) else "-"
            wall = f" · {event['wall_s']:.0f} s" if isinstance(event.get("wall_s"), (int, float)) else ""
            self.progress.update(self.tasks[it], detail=f"{event.get('status')} · {shown} · "
                                                        f"{event.get('decision')}{wall}")
            if event.get("error"):
                self._print(f"    error: {str(event['error'])[:300]}")
        elif kind in _LOOP_EVENTS:  # the kernel's cell and plan events leave the live line as it is
            self.close()
            self._other(event)

    def close(self) -> None:
        """End the live display (the lines drawn so far stay on the screen)."""
        if self.progress.live.is_started:
            self.progress.stop()

    def _print(self, text: str) -> None:
        self.console.print(text, highlight=False, markup=False)


def progress_display(verbose: bool = False, stream: TextIO | None = None) -> ProgressPrinter:
    """``--verbose`` lines, a live display on a terminal, plain lines otherwise."""
    stream = stream or sys.stderr
    if verbose:
        return ProgressPrinter(stream)
    if getattr(stream, "isatty", lambda: False)():
        return LiveProgress(stream)
    return PlainProgress(stream)


def print_summary(session: Any, stream: TextIO | None = None) -> None:
    """The compact table of a session's iterations; with a confounder to mitigate, how often each iteration
    flags the negatives that carry it, and those that do not (validation; the test split's once read)."""
    stream = stream or sys.stdout
    console = Console(file=stream, width=None if getattr(stream, "isatty", lambda: False)() else 140)
    table = Table(title="iterations", title_justify="left", show_edge=False, pad_edge=False)
    confounder = _mitigated(session)
    columns = [("#", "right"), ("idea", "left"), ("status", "left"), ("selection", "right"),
               ("decision", "left"), ("time", "right")]
    if confounder:
        columns.insert(4, (f"false alarms with / without {confounder}", "right"))
    for name, justify in columns:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    rounds = any(getattr(it, "round", None) for it in session.iterations)  # --parallel: candidates by round
    if rounds:
        table.add_column("round", justify="right")
    for it in session.iterations:
        value = f"{it.selection_value:.4f}" if it.selection_value is not None else "-"
        wall = f"{it.wall_s:.0f} s" if it.wall_s is not None else "-"
        mark = " ★" if session.best_iteration == it.index else ""
        row = [str(it.index), (it.idea or "change") + mark, it.status, value, it.decision, wall,
               *([str(it.round or "-")] if rounds else [])]
        if confounder:
            row.insert(4, false_alarms(getattr(it, "val_metrics", None) or {}, confounder))
        table.add_row(*row)
    console.print(table)
    final = getattr(session, "final_test", None)
    if confounder and final is not None:
        console.print(f"test split (once), iteration {final.iteration}: false alarms with / without "
                      f"{confounder} {false_alarms(final.metrics, confounder)}", highlight=False)


def _mitigated(session: Any) -> str | None:
    spec = getattr(session, "spec", None)
    names = [c.name for c in spec.mitigated_confounders()] if spec is not None else []
    return names[0] if names else None


def false_alarms(metrics: dict[str, Any], confounder: str) -> str:
    """``"82% / 0%"``: the share of negatives flagged with the confounder and without it ("-": unknown)."""
    reliance = ((metrics.get("confounders") or {}).get(confounder) or {}).get("reliance") or {}
    with_, without = reliance.get("fpr_confounder_pos"), reliance.get("fpr_confounder_neg")
    if not isinstance(with_, (int, float)) or not isinstance(without, (int, float)):
        return "-"
    return f"{with_:.0%} / {without:.0%}"
