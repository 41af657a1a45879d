"""Static figures (matplotlib, Agg, PNG): what exported notebooks, reports and kernel-less views show.

Figures are drawn on :class:`matplotlib.figure.Figure` objects with an Agg canvas, never through
``pyplot``, so no global state or GUI backend is involved and drawing is safe from any thread. The numbers
come from :mod:`.figdata` (the frozen evaluator's functions).

Example:
    >>> import numpy as np, pandas as pd
    >>> from clinagent_lab.recipe import Recipe
    >>> p = np.linspace(0.05, 0.95, 20)
    >>> df = pd.DataFrame({"label": [0, 1] * 10, "prob_no": 1 - p, "prob_yes": p})
    >>> recipe = Recipe(task_type="binary_classification", classes=["no", "yes"])
    >>> fig = roc_figure(roc_figure_data(df, recipe, bootstrap=0))
    >>> len(figure_png(fig)) > 1000
    True
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..errors import RecipeError
from ..recipe import Recipe
from ..spec import TaskSpec
from .figdata import (
    ConfounderFigureData,
    RocCurve,
    RocFigureData,
    confounder_figure_data,
    roc_figure_data,
)

__all__ = [
    "DEPENDENCE_LABELS",
    "confounder_figure",
    "confounder_figure_data",
    "draw_roc",
    "figure_png",
    "format_value",
    "new_figure",
    "note_figure",
    "roc_figure",
    "roc_figure_data",
    "save_confounder_png",
    "save_figure",
    "save_roc_png",
]

_DPI = 110
_BAND_COLOR = "#9ecae1"
_CURVE_COLOR = "#08519c"
_POINT_COLOR = "#d62728"
_NEG_COLOR = "#6baed6"
_POS_COLOR = "#fd8d3c"

#: dependence measure -> label shown to the clinician
DEPENDENCE_LABELS = {"partial_correlation": "partial correlation r", "conditional_mi": "conditional MI (nats)",
                     "hsic": "conditional HSIC"}


def format_value(value: float | None, digits: int = 3) -> str:
    """``value`` rounded for display, or ``n/a`` when undefined."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def new_figure(width: float, height: float) -> Figure:
    """A figure of ``width`` x ``height`` inches on its own Agg canvas (no pyplot, no global state)."""
    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def figure_png(fig: Figure) -> bytes:
    """The figure as PNG bytes."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return buf.getvalue()


def save_figure(fig: Figure, path: str | Path) -> Path:
    """Write the figure as a PNG (folders created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(figure_png(fig))
    return path


def note_figure(title: str, text: str) -> Figure:
    """A figure that only says why there is nothing to plot."""
    fig = new_figure(6.0, 1.6)
    ax = fig.add_subplot()
    ax.axis("off")
    ax.set_title(title, fontsize=10)
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=9)
    return fig


# ------------------------------------------------------------------------------------------------------ ROC


def draw_roc(ax: Any, fpr: Any, tpr: Any, *, label: str, band: tuple[Any, Any, Any] | None = None,
             band_step: str | None = "post", band_label: str = "", point: tuple[float, float, str] | None = None,
             ) -> None:
    """One ROC on ``ax``: the chance diagonal, the band ``(fpr grid, low, high)``, the curve and the operating
    point ``(fpr, tpr, label)``, on equal unit axes. The marks carry the ids ``band``, ``curve`` and
    ``operating-point`` (in an SVG)."""
    ax.plot([0, 1], [0, 1], color="0.75", lw=0.8, ls="--")
    if band is not None:
        ax.fill_between(band[0], band[1], band[2], step=band_step, color=_BAND_COLOR, alpha=0.6, lw=0,
                        label=band_label, gid="band")
    ax.plot(fpr, tpr, color=_CURVE_COLOR, lw=1.6, label=label, gid="curve")
    if point is not None:
        ax.plot([point[0]], [point[1]], "o", color=_POINT_COLOR, ms=7, label=point[2], gid="operating-point")
    ax.legend(loc="lower right", fontsize=7, frameon=False)
    ax.set_xlim(-0.01, 1.01)
    ax.set_ylim(-0.01, 1.01)
    ax.set_aspect("equal")
    ax.tick_params(labelsize=7)


def _draw_curve(ax: Any, curve: RocCurve) -> None:
    if not curve.defined:
        ax.plot([0, 1], [0, 1], color="0.75", lw=0.8, ls="--")
        ax.text(0.5, 0.5, "undefined: one class absent", ha="center", va="center", fontsize=8)
        ax.set_xlim(-0.01, 1.01)
        ax.set_ylim(-0.01, 1.01)
        ax.set_aspect("equal")
    else:
        b, p = curve.band, curve.point
        point = None
        if p.fpr is not None and p.tpr is not None:
            point = (p.fpr, p.tpr, f"t={format_value(p.threshold)}: sens {format_value(p.sensitivity, 2)}, "
                                   f"spec {format_value(p.specificity, 2)}")
        draw_roc(ax, curve.fpr, curve.tpr, label=f"AUROC {format_value(curve.auroc)}",
                 band=(b.fpr, b.low, b.high) if b is not None else None,
                 band_label=f"{b.confidence:.0%} bootstrap band" if b is not None else "", point=point)
    ax.set_xlabel("1 - specificity (FPR)", fontsize=8)
    ax.set_ylabel("sensitivity (TPR)", fontsize=8)
    ax.set_title(curve.class_name + (" (target)" if curve.is_target else ""), fontsize=9)


def roc_figure(data: RocFigureData) -> Figure:
    """ROC curve(s) with band and operating point: one panel per class shown."""
    n = len(data.curves)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig = new_figure(3.4 * cols, 3.4 * rows)
    for i, curve in enumerate(data.curves):
        _draw_curve(fig.add_subplot(rows, cols, i + 1), curve)
    return fig


# ---------------------------------------------------------------------------------------------- confounder


def _cell_label(label: int, group: str) -> str:
    return f"{'pos' if label else 'neg'}\n{group}"


def _draw_scores(ax: Any, data: ConfounderFigureData) -> None:
    cells = [(lab, g) for lab in (0, 1) for g in data.groups]
    rng = np.random.default_rng(0)
    for i, cell in enumerate(cells):
        s = data.scores[cell]
        color = _POS_COLOR if cell[0] else _NEG_COLOR
        if len(s) >= 2:
            ax.boxplot([s], positions=[i], widths=0.55, showfliers=False,
                       medianprops={"color": "k"}, boxprops={"color": "0.4"}, whiskerprops={"color": "0.4"},
                       capprops={"color": "0.4"})
        ax.scatter(i + rng.uniform(-0.18, 0.18, len(s)), s, s=6, color=color, alpha=0.6, lw=0)
    if data.threshold is not None:
        ax.axhline(data.threshold, color=_POINT_COLOR, lw=1, ls="--", label=f"threshold {data.threshold:.3f}")
        ax.legend(loc="upper left", fontsize=7, frameon=False)
    ax.set_xticks(range(len(cells)), [_cell_label(*c) + f"\n(n={len(data.scores[c])})" for c in cells],
                  fontsize=7)
    ax.set_ylabel(f"score of {data.target_class}", fontsize=8)
    ax.tick_params(axis="y", labelsize=7)
    ax.set_title(f"scores by label x {data.name}", fontsize=9)


def _draw_rates(ax: Any, data: ConfounderFigureData) -> None:
    x = np.arange(len(data.groups))
    for offset, (rate, values, color) in zip((-0.2, 0.2), (("FPR", data.fpr_by_group, _NEG_COLOR),
                                                           ("TPR", data.tpr_by_group, _POS_COLOR))):
        heights = [values.get(g) for g in data.groups]
        ax.bar(x + offset, [h if h is not None else 0.0 for h in heights], width=0.38, color=color, label=rate)
        for xi, h in zip(x + offset, heights):
            ax.text(xi, (h or 0.0) + 0.02, format_value(h, 2), ha="center", fontsize=7)
    ax.set_xticks(x, [f"{data.name}={g}" for g in data.groups], fontsize=7)
    ax.set_ylim(0, 1.12)
    ax.tick_params(axis="y", labelsize=7)
    ax.legend(loc="upper right", fontsize=7, frameon=False)
    ax.set_title(f"FPR / TPR by group at t={format_value(data.threshold)}", fontsize=9)


def dependence_lines(data: ConfounderFigureData) -> list[str]:
    """The dependence measures (with permutation p-values) and the reliance numbers, as text lines."""
    lines = [f"score of {data.target_class} vs {data.name}, given the label:"]
    dep, p = data.dependence or {}, data.dependence_p or {}
    for key, label in DEPENDENCE_LABELS.items():
        lines.append(f"  {label}: {format_value(dep.get(key))}  (p = {format_value(p.get(key))})")
    if data.reliance:
        lines.append(f"excess FPR in {data.name}={data.positive_value}: "
                     f"{format_value(data.reliance.get('excess_fpr'))}")
        lines.append(f"excess TPR in {data.name}={data.positive_value}: "
                     f"{format_value(data.reliance.get('excess_tpr'))}")
    aurocs = ", ".join(f"{g}: {format_value(v)}" for g, v in data.auroc_by_group.items())
    lines.append(f"AUROC by group: {aurocs}")
    return lines


def _draw_dependence(ax: Any, data: ConfounderFigureData) -> None:
    ax.axis("off")
    ax.set_title("dependence on the confounder", fontsize=9)
    ax.text(0.0, 1.0, "\n".join(dependence_lines(data)), va="top", ha="left", fontsize=7.5, family="monospace",
            transform=ax.transAxes)


def confounder_figure(data: ConfounderFigureData) -> Figure:
    """Three panels: scores by label x group, FPR/TPR by group at the threshold, dependence as text."""
    fig = new_figure(13.0, 3.6)
    grid = fig.add_gridspec(1, 3, width_ratios=[1.3, 1.0, 1.1])
    _draw_scores(fig.add_subplot(grid[0]), data)
    _draw_rates(fig.add_subplot(grid[1]), data)
    _draw_dependence(fig.add_subplot(grid[2]), data)
    return fig


# ------------------------------------------------------------------------------------------- entry points


def save_roc_png(predictions: pd.DataFrame, recipe: Recipe, path: str | Path, *, threshold: float | None = None,
                 bootstrap: int | None = None) -> Path:
    """Draw the ROC figure of ``predictions`` and save it as a PNG.

    Args:
        predictions: the predictions table (``label``, ``prob_<class>`` per class).
        recipe: the iteration's recipe (classes, target class, operating-point rule, bootstrap count, seed).
        path: where to write the PNG.
        threshold: the target class's threshold (default: chosen by the recipe's rule, as the evaluator).
        bootstrap: resamples for the band (default ``recipe.evaluation.bootstrap``).
    """
    return save_figure(roc_figure(roc_figure_data(predictions, recipe, threshold, bootstrap=bootstrap)), path)


def save_confounder_png(predictions: pd.DataFrame, recipe: Recipe, spec: TaskSpec | None, confounder_name: str,
                        path: str | Path, *, metrics: dict[str, Any] | None = None,
                        threshold: float | None = None, n_permutations: int = 200) -> Path:
    """Draw the confounder figure of ``confounder_name`` and save it as a PNG.

    A multiclass task without a target class gets a figure saying why nothing is shown (the evaluator
    skips confounders there as well). ``metrics`` (the iteration's ``metrics.json``) lets the figure reuse
    the evaluator's dependence p-values instead of recomputing the permutations.
    """
    try:
        data = confounder_figure_data(predictions, recipe, spec, confounder_name, threshold=threshold,
                                      metrics=metrics, n_permutations=n_permutations)
    except RecipeError as exc:
        return save_figure(note_figure(f"confounder {confounder_name}", exc.what), path)
    return save_figure(confounder_figure(data), path)
