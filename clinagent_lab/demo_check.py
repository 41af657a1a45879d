"""The demo's lesson on fresh data: the baseline and the kept model scored on a new synthetic draw.

The session's test split is read once, for the kept iteration alone, so it cannot show what the mitigation
changed. The demo knows how its data were made, so it draws a second, independent set from the same generator
(another seed) in which the shortcut is independent of the label everywhere, "another hospital where drains
say nothing about pneumothorax", and scores both checkpoints on all of it at each one's validation threshold.
The session's own test split is not touched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

from .cli_progress import false_alarms
from .data.formats import load_dataset
from .tasks import get_backend

__all__ = ["external_check", "print_external_check"]


def external_check(session: Any, data_dir: str | Path) -> list[tuple[Any, dict[str, Any]]]:
    """``[(iteration, metrics)]`` on ``data_dir`` for the baseline and the kept iteration (if another).

    Every image of ``data_dir`` is scored, whatever its split (none was seen in training); the threshold is
    the iteration's own, chosen on validation.
    """
    import pandas as pd  # deferred with the rest of the data stack

    baseline = next((it for it in session.iterations if it.decision == "baseline"), None)
    chosen = [it for it in (baseline, session.best()) if it is not None and it.checkpoint]
    chosen = list({it.index: it for it in chosen}.values())
    dataset = load_dataset(str(data_dir))
    backend = get_backend(session.spec.task_type)
    out = []
    for it in chosen:
        module = backend.load_checkpoint(it.checkpoint, it.recipe).eval()
        datamodule = backend.make_datamodule(dataset, it.recipe, session.spec, include_test=True)
        splits = ("train", "val", "test")
        predictions = pd.concat([backend.predict(module, datamodule, s) for s in splits], ignore_index=True)
        threshold = it.val_metrics.get("threshold")
        threshold = threshold if isinstance(threshold, (int, float)) else None
        out.append((it, backend.evaluate(predictions, it.recipe, session.spec, dataset, threshold=threshold)))
    return out


def print_external_check(rows: list[tuple[Any, dict[str, Any]]], confounder: str, n: int,
                         stream: TextIO | None = None) -> None:
    """A line per model: AUROC, sensitivity, specificity, the false alarms with / without the shortcut."""
    print(f"\nfresh synthetic data ({n} images, {confounder} independent of the label; not the test split):",
          file=stream)
    for it, m in rows:
        keys = [k for k in ("auroc", "sensitivity", "specificity") if isinstance(m.get(k), (int, float))]
        shown = ", ".join(f"{k} {m[k]:.3f}" for k in keys)
        print(f"  iteration {it.index} ({it.idea or 'change'}, {it.decision}): {shown}; false alarms with / "
              f"without {confounder} {false_alarms(m, confounder)}", file=stream)
