"""Inline SVG figures for the report: no files, no scripts, no fonts to fetch.

A tiny plotting layer (axes on [x0, x1] x [y0, y1], polylines, a shaded band, markers, a diagonal) is enough
for the three kinds of figure a report needs: the validation metric over iterations, the ROC with its
bootstrap band, and the reliability diagram. Every figure carries a ``<title>`` and ``aria-label``.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from markupsafe import Markup

__all__ = ["Plot", "iterations_figure", "line_chart", "reliability_figure", "roc_figure"]

COLORS = ("#1f5fa8", "#c2571a", "#2e7d32", "#7b1fa2", "#6d6d6d")


def _ok(v: float | None) -> bool:
    return v is not None and math.isfinite(float(v))


@dataclass
class Plot:
    """One SVG plot area with data coordinates mapped onto pixels."""

    title: str
    x_label: str
    y_label: str
    x_range: tuple[float, float] = (0.0, 1.0)
    y_range: tuple[float, float] = (0.0, 1.0)
    width: int = 360
    height: int = 300
    margin: tuple[int, int, int, int] = (24, 16, 44, 52)  # top, right, bottom, left
    parts: list[str] = field(default_factory=list)
    legend: list[tuple[str, str, str]] = field(default_factory=list)  # label, colour, kind
    legend_top_left: bool = False

    # --- coordinates -------------------------------------------------------------------------------
    def x(self, v: float) -> float:
        top, right, bottom, left = self.margin
        lo, hi = self.x_range
        return left + (float(v) - lo) / ((hi - lo) or 1.0) * (self.width - left - right)

    def y(self, v: float) -> float:
        top, right, bottom, left = self.margin
        lo, hi = self.y_range
        return self.height - bottom - (float(v) - lo) / ((hi - lo) or 1.0) * (self.height - top - bottom)

    def _points(self, xs: Sequence[float], ys: Sequence[float]) -> str:
        return " ".join(f"{self.x(a):.1f},{self.y(b):.1f}" for a, b in zip(xs, ys) if _ok(a) and _ok(b))

    # --- marks -------------------------------------------------------------------------------------
    def line(self, xs: Sequence[float], ys: Sequence[float], color: str, label: str = "", *, width: float = 2,
             dash: str = "", step: bool = False) -> None:
        if step:
            xs, ys = _steps(xs, ys)
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        self.parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="{width}"{dash_attr} '
                          f'points="{self._points(xs, ys)}"/>')
        if label:
            self.legend.append((label, color, "line"))

    def band(self, xs: Sequence[float], low: Sequence[float], high: Sequence[float], color: str,
             label: str = "") -> None:
        upper = self._points(xs, high)
        lower = " ".join(reversed(self._points(xs, low).split()))
        self.parts.append(f'<polygon fill="{color}" fill-opacity="0.18" stroke="none" points="{upper} {lower}"/>')
        if label:
            self.legend.append((label, color, "band"))

    def markers(self, xs: Sequence[float], ys: Sequence[float], color: str, label: str = "", *,
                hollow: bool = False, r: float = 4.0, titles: Sequence[str] | None = None) -> None:
        for i, (a, b) in enumerate(zip(xs, ys)):
            if not (_ok(a) and _ok(b)):
                continue
            fill = "white" if hollow else color
            tip = f"<title>{html.escape(titles[i])}</title>" if titles else ""
            self.parts.append(f'<circle cx="{self.x(a):.1f}" cy="{self.y(b):.1f}" r="{r}" fill="{fill}" '
                              f'stroke="{color}" stroke-width="1.5">{tip}</circle>')
        if label:
            self.legend.append((label, color, "hollow" if hollow else "marker"))

    def diagonal(self) -> None:
        lo, hi = max(self.x_range[0], self.y_range[0]), min(self.x_range[1], self.y_range[1])
        self.line([lo, hi], [lo, hi], "#9e9e9e", width=1, dash="4 3")

    # --- rendering ---------------------------------------------------------------------------------
    def _axes(self, x_ticks: Sequence[float], y_ticks: Sequence[float], x_tick_labels: Sequence[str] | None) -> str:
        top, right, bottom, left = self.margin
        out = [f'<rect x="{left}" y="{top}" width="{self.width - left - right}" '
               f'height="{self.height - top - bottom}" fill="white" stroke="#bdbdbd"/>']
        for i, t in enumerate(x_ticks):
            label = x_tick_labels[i] if x_tick_labels else f"{t:g}"
            out.append(f'<line x1="{self.x(t):.1f}" x2="{self.x(t):.1f}" y1="{self.height - bottom}" '
                       f'y2="{self.height - bottom + 4}" stroke="#616161"/>'
                       f'<text x="{self.x(t):.1f}" y="{self.height - bottom + 16}" text-anchor="middle">'
                       f"{html.escape(label)}</text>")
        for t in y_ticks:
            out.append(f'<line x1="{left - 4}" x2="{left}" y1="{self.y(t):.1f}" y2="{self.y(t):.1f}" '
                       f'stroke="#616161"/><line x1="{left}" x2="{self.width - right}" y1="{self.y(t):.1f}" '
                       f'y2="{self.y(t):.1f}" stroke="#eeeeee"/>'
                       f'<text x="{left - 7}" y="{self.y(t) + 4:.1f}" text-anchor="end">{t:g}</text>')
        out.append(f'<text x="{(left + self.width - right) / 2:.1f}" y="{self.height - 8}" '
                   f'text-anchor="middle">{html.escape(self.x_label)}</text>')
        out.append(f'<text transform="translate(14,{(top + self.height - bottom) / 2:.1f}) rotate(-90)" '
                   f'text-anchor="middle">{html.escape(self.y_label)}</text>')
        return "".join(out)

    def _legend(self) -> str:
        top, right, bottom, left = self.margin
        out = []
        for i, (label, color, kind) in enumerate(self.legend):
            if self.legend_top_left:
                x, y = left + 8, top + 16 + 16 * i
            else:
                widest = max(len(item[0]) for item in self.legend)
                x = self.width - right - 28 - int(6.2 * widest)
                y = self.height - bottom - 12 - 16 * (len(self.legend) - 1 - i)
            if kind == "band":
                mark = f'<rect x="{x}" y="{y - 6}" width="16" height="10" fill="{color}" fill-opacity="0.25"/>'
            elif kind in ("marker", "hollow"):
                fill = "white" if kind == "hollow" else color
                mark = f'<circle cx="{x + 8}" cy="{y - 1}" r="4" fill="{fill}" stroke="{color}"/>'
            else:
                mark = f'<line x1="{x}" x2="{x + 16}" y1="{y - 1}" y2="{y - 1}" stroke="{color}" stroke-width="2"/>'
            out.append(f'{mark}<text x="{x + 22}" y="{y + 3}">{html.escape(label)}</text>')
        return "".join(out)

    def render(self, x_ticks: Sequence[float] = (0, 0.25, 0.5, 0.75, 1.0),
               y_ticks: Sequence[float] = (0, 0.25, 0.5, 0.75, 1.0),
               x_tick_labels: Sequence[str] | None = None, desc: str = "") -> Markup:
        title = html.escape(self.title)
        return Markup(
            f'<svg class="figure" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {self.width} {self.height}" '
            f'width="{self.width}" height="{self.height}" role="img" aria-label="{title}">'
            f"<title>{title}</title><desc>{html.escape(desc)}</desc>"
            f'<g font-family="sans-serif" font-size="11" fill="#212121">'
            f"{self._axes(x_ticks, y_ticks, x_tick_labels)}{''.join(self.parts)}{self._legend()}</g></svg>")


def _steps(xs: Sequence[float], ys: Sequence[float]) -> tuple[list[float], list[float]]:
    sx, sy = [], []
    for i, (a, b) in enumerate(zip(xs, ys)):
        if i:
            sx.append(a)
            sy.append(sy[-1])
        sx.append(a)
        sy.append(b)
    return sx, sy


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


def line_chart(title: str, x_label: str, y_label: str, series: dict[str, tuple[Sequence[float], Sequence[float]]],
               desc: str = "") -> Markup:
    """A generic multi-series line chart with markers."""
    all_x = [x for xs, _ in series.values() for x in xs]
    all_y = [y for _, ys in series.values() for y in ys]
    plot = Plot(title, x_label, y_label, x_range=_nice_range(all_x), y_range=_nice_range(all_y))
    for (label, (xs, ys)), color in zip(series.items(), COLORS):
        plot.line(xs, ys, color, label)
        plot.markers(xs, ys, color)
    lo, hi = plot.y_range
    return plot.render(x_ticks=sorted(set(all_x)), y_ticks=[lo + (hi - lo) * k / 4 for k in range(5)], desc=desc)


def iterations_figure(indices: Sequence[int], selection: Sequence[float | None], primary: Sequence[float | None],
                      kept: Sequence[bool], selection_name: str, primary_name: str) -> Markup:
    """Validation metric per iteration: the selection metric (filled = kept, hollow = not) and the primary."""
    values = list(selection) + list(primary)
    plot = Plot("Validation metric over iterations", "iteration", "validation value",
                x_range=(min(indices) - 0.5, max(indices) + 0.5) if indices else (0.5, 1.5),
                y_range=_nice_range(values), width=520)
    plot.line(indices, selection, COLORS[0], f"selection: {selection_name}")
    kept_x = [i for i, k in zip(indices, kept) if k]
    kept_y = [v for v, k in zip(selection, kept) if k]
    other_x = [i for i, k in zip(indices, kept) if not k]
    other_y = [v for v, k in zip(selection, kept) if not k]
    plot.markers(kept_x, kept_y, COLORS[0], "kept (best so far)")
    plot.markers(other_x, other_y, COLORS[0], "discarded", hollow=True)
    if selection_name != primary_name:
        plot.line(indices, primary, COLORS[1], f"primary: {primary_name}", dash="5 3")
        plot.markers(indices, primary, COLORS[1])
    lo, hi = plot.y_range
    return plot.render(x_ticks=list(indices), y_ticks=[round(lo + (hi - lo) * k / 4, 3) for k in range(5)],
                       desc="validation selection value per iteration; kept iterations filled")


def roc_figure(roc: dict, operating: tuple[float, float] | None, auroc_text: str) -> Markup:
    """ROC of the test split with its bootstrap band and the operating point chosen on validation."""
    plot = Plot("ROC (test split)", "1 - specificity (false-positive rate)", "sensitivity (true-positive rate)")
    plot.diagonal()
    if roc.get("low") is not None:
        plot.band(roc["grid"], roc["low"], roc["high"], COLORS[0], "95% bootstrap band")
    plot.line(roc["fpr"], roc["tpr"], COLORS[0], f"ROC (AUROC {auroc_text})", step=False)
    if operating is not None:
        plot.markers([operating[0]], [operating[1]], COLORS[1], "operating point", r=5,
                     titles=[f"FPR {operating[0]:.3f}, TPR {operating[1]:.3f}"])
    return plot.render(desc="empirical ROC with a pointwise 95% bootstrap band")


def reliability_figure(reliability: dict) -> Markup:
    """Reliability diagram: observed positive fraction against mean predicted probability per bin."""
    plot = Plot("Reliability (test split)", "mean predicted probability", "observed fraction positive",
                legend_top_left=True)
    plot.diagonal()
    pairs = [(m, o, c) for m, o, c in zip(reliability.get("mean_predicted") or [],
                                          reliability.get("observed_fraction") or [],
                                          reliability.get("counts") or []) if _ok(m) and _ok(o)]
    if pairs:
        xs, ys, counts = zip(*pairs)
        plot.line(xs, ys, COLORS[0], "model")
        plot.markers(xs, ys, COLORS[0], titles=[f"n = {c}" for c in counts])
    return plot.render(desc="perfect calibration lies on the diagonal")
