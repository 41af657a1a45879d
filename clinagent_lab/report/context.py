"""What every report section reads: the loaded session folder plus the statistics computed once for it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..evaluation import BootstrapCI
from .inputs import ReportInputs
from .stats import (
    BootstrapSettings,
    bootstrap_settings,
    metric_intervals,
    prediction_arrays,
    roc_band,
    target_index,
)

__all__ = ["ReportContext", "build_context"]


@dataclass
class ReportContext:
    """A session folder ready to report: inputs, test intervals and ROC band (empty before the final test)."""

    inputs: ReportInputs
    settings: BootstrapSettings | None = None
    intervals: dict[str, BootstrapCI] = field(default_factory=dict)
    roc: dict[str, Any] | None = None

    @property
    def session(self):
        return self.inputs.session

    @property
    def raw(self) -> dict[str, Any]:
        return self.inputs.raw

    def position(self, index: int) -> int:
        """Position of iteration ``index`` in ``session.iterations`` (its JSON path component)."""
        return next(i for i, it in enumerate(self.session.iterations) if it.index == index)


def build_context(inputs: ReportInputs) -> ReportContext:
    """Compute the bootstrap intervals and ROC band of the final test (classification) once."""
    ctx = ReportContext(inputs=inputs)
    best, final, pred = inputs.best, inputs.session.final_test, inputs.predictions
    if best is None or final is None or pred is None:
        return ctx
    ctx.settings = bootstrap_settings(best.recipe)
    ctx.intervals = metric_intervals(pred, best.recipe, final.metrics, inputs.groups, ctx.settings)
    k = target_index(best.recipe)
    if k is not None:
        y, probs = prediction_arrays(pred, best.recipe.classes)
        ctx.roc = roc_band(y == k, probs[:, k], inputs.groups, ctx.settings)
    return ctx
