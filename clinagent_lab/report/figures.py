"""The report's figures: matplotlib figures (Agg canvas, never ``pyplot``) inlined as SVG.

Each figure is written by :func:`figure_svg`, which makes the SVG fit for a self-contained HTML page and for
a reproducible report: ids are hashed with a fixed salt per figure (``svg.hashsalt``) and prefixed with the
figure's name (several SVGs share one document), the metadata block (with its date) and the global
``<style>`` are dropped, text stays text (``svg.fonttype: none``: searchable, no embedded glyphs) and a
``<title>``/``<desc>`` pair and ``aria-label`` describe it. The same inputs give the same bytes.

The marks a reader (or a test) looks for carry ids: ``roc-curve``, ``roc-band``, ``roc-operating-point``,
``iterations-selection``, ``iterations-kept``, ``iterations-discarded``, ``reliability-model``.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Sequence
from typing import Any

import matplotlib
from markupsafe import Markup
from matplotlib.figure import Figure

from ..widgets.static import draw_roc, new_figure

__all__ = ["figure_svg", "iterations_figure", "reliability_figure", "roc_figure"]

COLORS = ("#1f5fa8", "#c2571a", "#2e7d32", "#7b1fa2", "#6d6d6d")
_FONT = 8


def _ok(v: float | None) -> bool:
    return v is not None and math.isfinite(float(v))


def figure_svg(fig: Figure, name: str, title: str, desc: str = "") -> Markup:
    """``fig`` as an inline ``<svg class="figure">`` whose ids all start with ``name-`` (deterministic)."""
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": f"clinagent-{name}", "svg.fonttype": "none"}):
        fig.savefig(buf, format="svg", metadata={"Date": None})
    svg = buf.getvalue()
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r'\s*<style type="text/css">.*?</style>', "", svg, flags=re.S)  # global '*' rule: in report.css
    svg = svg.replace(' id="', f' id="{name}-').replace("url(#", f"url(#{name}-").replace('href="#', f'href="#{name}-')
    end = svg.index(">")  # the root element: keep its size and namespaces, add ours, title and desc first
    return Markup(f'<svg class="figure" role="img" aria-label="{html.escape(title)}" data-figure="{name}"'
                  f"{svg[len('<svg'):end]}><title>{html.escape(title)}</title><desc>{html.escape(desc)}</desc>"
                  f"{svg[end + 1:].strip()}")


def _axes(fig: Figure, x_label: str, y_label: str) -> Any:
    ax = fig.add_subplot()
    ax.set_xlabel(x_label, fontsize=_FONT)
    ax.set_ylabel(y_label, fontsize=_FONT)
    ax.tick_params(labelsize=_FONT - 1)
    ax.grid(True, color="#eeeeee", lw=0.6)
    ax.set_axisbelow(True)
    return ax


def _nice_range(values: Sequence[float | None]) -> tuple[float, float]:
    vals = [float(v) for v in values if _ok(v)]
    if not vals:
        return 0.0, 1.0
    lo, hi = min(vals), max(vals)
    if 0.0 <= lo and hi <= 1.0:
        pad = max(0.05, (hi - lo) * 0.15)
        return max(0.0, math.floor((lo - pad) * 10) / 10), min(1.0, math.ceil((hi + pad) * 10) / 10)
    pad = (hi - lo) * 0.1 or 1.0
    return lo - pad, hi + pad


def iterations_figure(indices: Sequence[int], selection: Sequence[float | None], primary: Sequence[float | None],
                      kept: Sequence[bool], selection_name: str, primary_name: str) -> Markup:
    """Validation metric per iteration: the selection metric (filled = kept, hollow = not) and the primary."""
    fig = new_figure(5.6, 3.0)
    ax = _axes(fig, "iteration", "validation value")
    xs = [i for i, v in zip(indices, selection) if _ok(v)]
    ys = [float(v) for v in selection if _ok(v)]
    ax.plot(xs, ys, color=COLORS[0], lw=1.6, label=f"selection: {selection_name}", gid="selection")
    kept_pts = [(i, float(v)) for i, v, k in zip(indices, selection, kept) if k and _ok(v)]
    other_pts = [(i, float(v)) for i, v, k in zip(indices, selection, kept) if not k and _ok(v)]
    for pts, label, face, gid in ((kept_pts, "kept (best so far)", COLORS[0], "kept"),
                                  (other_pts, "discarded", "white", "discarded")):
        if pts:
            ax.plot(*zip(*pts), ls="none", marker="o", ms=6, mfc=face, mec=COLORS[0], mew=1.4, label=label,
                    gid=gid)
    if selection_name != primary_name:
        pts = [(i, float(v)) for i, v in zip(indices, primary) if _ok(v)]
        if pts:
            ax.plot(*zip(*pts), color=COLORS[1], lw=1.2, ls="--", marker="o", ms=4,
                    label=f"primary: {primary_name}", gid="primary")
    ax.set_xticks(list(indices))
    ax.set_xlim(min(indices, default=1) - 0.5, max(indices, default=1) + 0.5)
    ax.set_ylim(*_nice_range(list(selection) + list(primary)))
    ax.legend(fontsize=_FONT - 1, frameon=False, loc="best")
    return figure_svg(fig, "iterations", "Validation metric over iterations",
                      "validation selection value per iteration; kept iterations filled")


def roc_figure(roc: dict[str, Any], operating: tuple[float, float] | None, auroc_text: str) -> Markup:
    """ROC of the test split with its bootstrap band and the operating point chosen on validation."""
    fig = new_figure(4.0, 4.0)
    ax = fig.add_subplot()
    band = (roc["grid"], roc["low"], roc["high"]) if roc.get("low") is not None else None
    point = None
    if operating is not None:
        point = (operating[0], operating[1], f"operating point (FPR {operating[0]:.3f}, TPR {operating[1]:.3f})")
    draw_roc(ax, roc["fpr"], roc["tpr"], label=f"ROC (AUROC {auroc_text})", band=band,
             band_label="95% bootstrap band", point=point)
    ax.set_xlabel("1 - specificity (false-positive rate)", fontsize=_FONT)
    ax.set_ylabel("sensitivity (true-positive rate)", fontsize=_FONT)
    return figure_svg(fig, "roc", "ROC (test split)", "empirical ROC with a pointwise 95% bootstrap band and "
                                                      "the operating point chosen on validation")


def reliability_figure(reliability: dict[str, Any]) -> Markup:
    """Reliability diagram: observed positive fraction against mean predicted probability per bin."""
    fig = new_figure(4.0, 4.0)
    ax = _axes(fig, "mean predicted probability", "observed fraction positive")
    ax.plot([0, 1], [0, 1], color="0.6", lw=0.8, ls="--", label="perfect calibration")
    pairs = [(m, o) for m, o in zip(reliability.get("mean_predicted") or [],
                                    reliability.get("observed_fraction") or []) if _ok(m) and _ok(o)]
    if pairs:
        ax.plot(*zip(*pairs), color=COLORS[0], lw=1.6, marker="o", ms=4, label="model", gid="model")
    ax.set_xlim(-0.02, 1.02)
    ax.set_ylim(-0.02, 1.02)
    ax.set_aspect("equal")
    ax.legend(fontsize=_FONT - 1, frameon=False, loc="upper left")
    return figure_svg(fig, "reliability", "Reliability (test split)", "perfect calibration lies on the diagonal")
