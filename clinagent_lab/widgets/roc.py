"""Interactive ROC view: curve(s) with the bootstrap band, a threshold slider that moves the operating point,
the evaluator's sensitivity / specificity / PPV / NPV at that threshold, a class selector for multiclass
tasks, and a "Pin" control ("I need at least [sensitivity] of [0.90] here") that records an
``operating_point`` annotation for the next iteration.

Controls are core ipywidgets (built into JupyterLab 4); the plot is a small anywidget that draws SVG in the
browser (anywidget ships its own frontend, no labextension build). Every number is computed in the kernel
by the evaluator's functions (:mod:`.figdata`); the browser only draws.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anywidget
import ipywidgets as w
import numpy as np
import pandas as pd
import traitlets

from ..records import Annotation
from ..errors import RecipeError
from ..recipe import Recipe
from .annotate import ASSETS, AnnotationSink, Submitter, sink_widgets
from .figdata import (
    OperatingPoint,
    RocCurve,
    RocFigureData,
    operating_point,
    prediction_arrays,
    roc_figure_data,
)
from .templating import render
from .static import format_value

__all__ = ["PIN_KINDS", "RocPlot", "RocWidget", "plot_curve", "thin_curve"]

#: what a pin can ask for
PIN_KINDS = ("sensitivity", "specificity", "threshold")


def thin_curve(fpr: np.ndarray, tpr: np.ndarray) -> np.ndarray:
    """Indices of the corners of a step-shaped ROC (points inside straight runs dropped; shape unchanged)."""
    n = len(fpr)
    if n <= 2:
        return np.arange(n)
    inner = np.arange(1, n - 1)
    same_x = (fpr[inner - 1] == fpr[inner]) & (fpr[inner] == fpr[inner + 1])
    same_y = (tpr[inner - 1] == tpr[inner]) & (tpr[inner] == tpr[inner + 1])
    return np.r_[0, inner[~(same_x | same_y)], n - 1]


def _floats(values: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in np.asarray(values, dtype=float)]


def plot_curve(curve: RocCurve) -> dict[str, Any]:
    """The JSON the SVG plot draws for one curve (corners only; +inf threshold as None)."""
    if not curve.defined:
        return {"name": curve.class_name, "fpr": [], "tpr": [], "thresholds": [], "band": None, "auroc": None}
    keep = thin_curve(curve.fpr, curve.tpr)
    band = None
    if curve.band is not None:
        band = {"fpr": _floats(curve.band.fpr), "low": _floats(curve.band.low), "high": _floats(curve.band.high)}
    return {"name": curve.class_name, "fpr": _floats(curve.fpr[keep]), "tpr": _floats(curve.tpr[keep]),
            "thresholds": _floats(curve.thresholds[keep]), "band": band, "auroc": curve.auroc}


class RocPlot(anywidget.AnyWidget):
    """SVG ROC plot (browser side). ``curves``: :func:`plot_curve` dicts; ``point``: {fpr, tpr, label}."""

    _esm = ASSETS / "roc_plot.js"
    _css = ASSETS / "widgets.css"
    curves = traitlets.List([]).tag(sync=True)
    selected = traitlets.Int(0).tag(sync=True)
    point = traitlets.Dict({}).tag(sync=True)


def _readout(p: OperatingPoint) -> str:
    c = p.confusion or {}
    return render("readout.html.j2", threshold=format_value(p.threshold), sensitivity=format_value(p.sensitivity),
                  specificity=format_value(p.specificity), ppv=format_value(p.ppv), npv=format_value(p.npv),
                  tp=c.get("tp", "?"), tn=c.get("tn", "?"), positives=c.get("tp", 0) + c.get("fn", 0),
                  negatives=c.get("tn", 0) + c.get("fp", 0))


class RocWidget(w.VBox, Submitter):
    """ROC curves of one iteration's validation predictions, with a threshold slider and a Pin control.

    Args:
        predictions: the validation predictions table (``label``, ``prob_<class>``...).
        recipe: the iteration's recipe (classes, target class, operating-point rule, bootstrap count, seed).
        iteration: the iteration index the annotations refer to.
        sink: where pinned annotations go (:mod:`.annotate`); None keeps them in :attr:`annotations` only.
        threshold: initial threshold of the target class (default: the evaluator's operating point).
        bootstrap: resamples for the band (default ``recipe.evaluation.bootstrap``).
        data: precomputed :func:`roc_figure_data` (skips recomputing it).
        show_sink: include the sink's own widget (the server bridge's confirmation line).

    Attributes:
        annotations: every annotation pinned from this widget, in order.
    """

    threshold = traitlets.Float(0.5, help="threshold of the selected class")
    selected_class = traitlets.Unicode("")

    def __init__(self, predictions: pd.DataFrame, recipe: Recipe, *, iteration: int | None = None,
                 sink: AnnotationSink | None = None, threshold: float | None = None, bootstrap: int | None = None,
                 data: RocFigureData | None = None, show_sink: bool = True, **kwargs: Any) -> None:
        self.recipe, self.iteration, self.sink, self._show_sink = recipe, iteration, sink, show_sink
        self.data = data or roc_figure_data(predictions, recipe, threshold, bootstrap=bootstrap)
        self._y, self._probs = prediction_arrays(predictions, self.data.classes)
        self.annotations: list[Annotation] = []
        self._thresholds = {c.class_name: c.point.threshold for c in self.data.curves}
        self._build()
        super().__init__(children=self._children(), **kwargs)
        self.add_class("clinagent-roc")
        self.selected_class = self.data.main.class_name

    # --- layout ---------------------------------------------------------------------------------------
    def _build(self) -> None:
        names = [c.class_name for c in self.data.curves]
        lo, hi = float(np.min(self._probs)) if self._probs.size else 0.0, float(np.max(self._probs, initial=1.0))
        self.plot = RocPlot(curves=[plot_curve(c) for c in self.data.curves])
        self.class_selector = w.Dropdown(options=names, description="class",
                                         layout=w.Layout(display="flex" if len(names) > 1 else "none"))
        self.slider = w.FloatSlider(min=min(0.0, lo), max=max(1.0, float(np.nextafter(hi, np.inf))), step=0.001,
                                    description="threshold", readout_format=".3f", continuous_update=False,
                                    layout=w.Layout(width="420px"))
        self.readout = w.HTML()
        self.readout.add_class("clinagent-readout")
        self.pin_kind = w.Dropdown(options=list(PIN_KINDS), value="sensitivity", layout=w.Layout(width="130px"))
        self.pin_value = w.BoundedFloatText(min=0.0, max=1.0, step=0.01, layout=w.Layout(width="90px"))
        self.pin_button = w.Button(description="Pin", button_style="primary", icon="thumb-tack",
                                   tooltip="record this requirement for the next iteration")
        self.status = w.HTML()
        self.class_selector.observe(self._on_class, "value")
        self.slider.observe(self._on_slider, "value")
        self.pin_kind.observe(self._on_pin_kind, "value")
        self.pin_button.on_click(lambda _b: self.pin())
        self.plot.on_msg(self._on_plot_msg)

    def _children(self) -> list[w.Widget]:
        pin_row = w.HBox([w.HTML("I need at least"), self.pin_kind, w.HTML("of"), self.pin_value,
                          w.HTML("here"), self.pin_button])
        extra = sink_widgets(self.sink) if self._show_sink else []
        return [self.class_selector, self.plot, self.slider, self.readout, pin_row, self.status, *extra]

    # --- state ----------------------------------------------------------------------------------------
    @property
    def curve(self) -> RocCurve:
        """The selected class's curve."""
        return self.data.curve(self.selected_class)

    @property
    def point(self) -> OperatingPoint:
        """The operating point at the slider's threshold (evaluator's ``threshold_metrics``)."""
        k = self.curve.class_index
        return operating_point(self._y == k, self._probs[:, k], self.threshold)

    @traitlets.observe("selected_class")
    def _selected_changed(self, change: dict[str, Any]) -> None:
        self.class_selector.value = change["new"]
        self.plot.selected = [c.class_name for c in self.data.curves].index(change["new"])
        start = self._thresholds.get(change["new"])
        self.set_threshold(start if start is not None else 0.5)
        self._refresh()

    @traitlets.observe("threshold")
    def _threshold_changed(self, change: dict[str, Any]) -> None:
        self._thresholds[self.selected_class] = change["new"]
        if self.slider.value != change["new"]:
            self.slider.value = change["new"]
        self._refresh()

    def _refresh(self) -> None:
        if self.slider.value != self.threshold:  # also when the trait kept its value (0.5 given at start)
            self.slider.value = self.threshold
        p = self.point
        self.readout.value = _readout(p)
        self.plot.point = {"fpr": p.fpr, "tpr": p.tpr, "threshold": p.threshold,
                           "label": f"t={format_value(p.threshold)} sens {format_value(p.sensitivity)} "
                                    f"spec {format_value(p.specificity)}"}
        self._follow_pin(p)

    def set_threshold(self, value: float) -> None:
        """Move the operating point (as the slider does)."""
        self.threshold = float(value)

    def _on_slider(self, change: dict[str, Any]) -> None:
        self.threshold = float(change["new"])

    def _on_class(self, change: dict[str, Any]) -> None:
        self.selected_class = change["new"]

    def _on_plot_msg(self, _widget: Any, content: dict[str, Any], _buffers: Any) -> None:
        if not isinstance(content, dict) or content.get("type") != "pick":
            return
        curve = self.plot.curves[int(content.get("curve", self.plot.selected))]
        index = int(content.get("index", -1))
        if 0 <= index < len(curve["thresholds"]) and curve["thresholds"][index] is not None:
            self.set_threshold(curve["thresholds"][index])

    def _follow_pin(self, p: OperatingPoint) -> None:
        value = p.value(self.pin_kind.value)
        if value is not None:
            self.pin_value.max = max(1.0, value) if self.pin_kind.value == "threshold" else 1.0
            self.pin_value.value = round(value, 3)

    def _on_pin_kind(self, _change: dict[str, Any]) -> None:
        self._follow_pin(self.point)

    # --- annotation -----------------------------------------------------------------------------------
    def pin(self, kind: str | None = None, value: float | None = None, text: str = "") -> Annotation:
        """Record "I need at least ``kind`` of ``value`` here" as an ``operating_point`` annotation.

        Args:
            kind: ``sensitivity``, ``specificity`` or ``threshold`` (default: the dropdown's).
            value: the required value (default: the box's, which follows the slider).
            text: the clinician's words (default: a sentence describing the pin).
        """
        kind = kind or self.pin_kind.value
        value = float(self.pin_value.value if value is None else value)
        if kind not in PIN_KINDS:
            raise RecipeError(f"cannot pin '{kind}'", where="argument 'kind'", fix=f"use one of {list(PIN_KINDS)}")
        if kind != "threshold" and not 0.0 < value <= 1.0:
            raise RecipeError(f"a required {kind} must lie in (0, 1], got {value}", where="argument 'value'",
                              fix="give a proportion such as 0.9")
        payload: dict[str, Any] = {kind: value}
        if len(self.data.classes) > 2:
            payload["class"] = self.selected_class
        annotation = Annotation(kind="operating_point", value=payload, iteration=self.iteration,
                                text=text or self._pin_text(kind, value))
        return self._submit(annotation)

    def _pin_text(self, kind: str, value: float) -> str:
        p = self.point
        want = f"operate at threshold {value:.3f}" if kind == "threshold" else f"I need at least {kind} {value:.2f}"
        return (f"{want} for {self.selected_class} (pinned at threshold {format_value(p.threshold)}: "
                f"sensitivity {format_value(p.sensitivity)}, specificity {format_value(p.specificity)})")

    def on_threshold(self, callback: Callable[[str, float], None]) -> None:
        """Call ``callback(class_name, threshold)`` whenever the operating point moves."""
        self.observe(lambda change: callback(self.selected_class, change["new"]), "threshold")
