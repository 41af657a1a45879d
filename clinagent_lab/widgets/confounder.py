"""Confounder view and the clinician's other levers.

:class:`ConfounderView` shows, for one confounder (chest drain, ruler, hospital...), the target-class score
distributions by label x group, the FPR and TPR of each group at the current threshold and the dependence
of the score on the confounder given the label (partial correlation, conditional MI, HSIC, with permutation
p-values), and lets the clinician mark "false positives in <confounder>=<group> are unacceptable (max FPR X)"
as a ``group_fpr_bound`` annotation. :class:`AnnotationControls` adds a class priority (multiclass:
``class_priority``) and a free-text ``note``.

The figure is the same matplotlib figure as the static PNG (:func:`.static.confounder_figure`), redrawn when
the threshold moves; the numbers come from the evaluator's ``confounder_metrics``.
"""

from __future__ import annotations

from typing import Any

import ipywidgets as w
import pandas as pd
import traitlets
from markupsafe import escape

from ..records import Annotation
from ..errors import RecipeError
from ..recipe import Recipe
from ..spec import TaskSpec
from .annotate import AnnotationSink, Submitter, sink_widgets
from .figdata import ConfounderFigureData, confounder_figure_data
from .templating import render
from .static import confounder_figure, figure_png, format_value

__all__ = ["AnnotationControls", "ConfounderView", "rates_table"]


def rates_table(data: ConfounderFigureData) -> str:
    """HTML table of n, FPR, TPR and AUROC per group at the view's threshold."""
    rows = [{"group": g, "negatives": len(data.scores[(0, g)]), "positives": len(data.scores[(1, g)]),
             "fpr": format_value(data.fpr_by_group.get(g)), "tpr": format_value(data.tpr_by_group.get(g)),
             "auroc": format_value(data.auroc_by_group.get(g))} for g in data.groups]
    return render("rates.html.j2", name=data.name, rows=rows)


class ConfounderView(w.VBox, Submitter):
    """One confounder's view of an iteration's validation predictions.

    Args:
        predictions: the validation predictions table.
        recipe: the iteration's recipe.
        spec: the task spec (maps the confounder name to its column).
        confounder_name: which confounder.
        iteration: the iteration index the annotations refer to.
        sink: where annotations go; None keeps them in :attr:`annotations` only.
        threshold: starting threshold (default: ``metrics["threshold"]``, else the recipe's rule).
        metrics: the iteration's ``metrics.json`` (its dependence p-values are reused).
        show_sink: include the sink's own widget (the server bridge's confirmation line).
    """

    threshold = traitlets.Float(0.5)

    def __init__(self, predictions: pd.DataFrame, recipe: Recipe, spec: TaskSpec | None, confounder_name: str, *,
                 iteration: int | None = None, sink: AnnotationSink | None = None, threshold: float | None = None,
                 metrics: dict[str, Any] | None = None, show_sink: bool = True, **kwargs: Any) -> None:
        self.predictions, self.recipe, self.spec, self.name = predictions, recipe, spec, confounder_name
        self.iteration, self.sink, self.metrics, self._show_sink = iteration, sink, metrics, show_sink
        self.annotations = []
        self.data = confounder_figure_data(predictions, recipe, spec, confounder_name, threshold=threshold,
                                           metrics=metrics)
        self._build()
        super().__init__(children=self._children(), **kwargs)
        self.add_class("clinagent-confounder")
        self.threshold = self.data.threshold if self.data.threshold is not None else 0.5
        self._render()

    def _build(self) -> None:
        groups = self.data.groups
        default = self.data.positive_value if self.data.positive_value in groups else groups[-1]
        self.title = w.HTML(f"<b>Confounder {escape(self.name)}</b> (column <code>{escape(self.data.column)}"
                            f"</code>, score of {escape(self.data.target_class)})")
        self.image = w.Image(format="png", layout=w.Layout(max_width="100%"))
        self.table = w.HTML()
        self.group = w.Dropdown(options=groups, value=default, layout=w.Layout(width="140px"))
        self.max_fpr = w.BoundedFloatText(value=0.1, min=0.0, max=1.0, step=0.01, layout=w.Layout(width="80px"))
        self.mark_button = w.Button(description="Mark", button_style="warning",
                                    tooltip="the next iterations must keep this group's FPR under the bound")
        self.status = w.HTML()
        self.mark_button.on_click(lambda _b: self.mark_fpr_bound())

    def _children(self) -> list[w.Widget]:
        row = w.HBox([w.HTML(f"False positives with {escape(self.name)} ="), self.group,
                      w.HTML("are unacceptable: max FPR"), self.max_fpr, self.mark_button])
        extra = sink_widgets(self.sink) if self._show_sink else []
        return [self.title, self.image, self.table, row, self.status, *extra]

    @traitlets.observe("threshold")
    def _threshold_changed(self, change: dict[str, Any]) -> None:
        if self.data.threshold is None or change["new"] != self.data.threshold:
            self.data = confounder_figure_data(self.predictions, self.recipe, self.spec, self.name,
                                               threshold=change["new"], metrics=self.metrics)
            self._render()

    def _render(self) -> None:
        self.image.value = figure_png(confounder_figure(self.data))
        self.table.value = rates_table(self.data)

    def mark_fpr_bound(self, group: str | None = None, max_fpr: float | None = None, text: str = "") -> Annotation:
        """Record "false positives in <confounder>=<group> are unacceptable (max FPR X)".

        Args:
            group: the confounder value (as shown; default: the dropdown's).
            max_fpr: the bound in [0, 1] (default: the box's).
            text: the clinician's words (default: a sentence with the current FPR of that group).
        """
        group = str(self.group.value if group is None else group)
        bound = float(self.max_fpr.value if max_fpr is None else max_fpr)
        if group not in self.data.groups:
            raise RecipeError(f"'{group}' is not a value of {self.name}", where="argument 'group'",
                              fix=f"use one of {self.data.groups}")
        if not 0.0 <= bound <= 1.0:
            raise RecipeError(f"max FPR must lie in [0, 1], got {bound}", where="argument 'max_fpr'",
                              fix="give a proportion such as 0.1")
        now = format_value(self.data.fpr_by_group.get(group))
        annotation = Annotation(kind="group_fpr_bound", iteration=self.iteration,
                                value={"confounder": self.name, "group": group, "max_fpr": bound},
                                text=text or f"False positives with {self.name}={group} are unacceptable: FPR at "
                                             f"most {bound:.2f} (now {now} at threshold "
                                             f"{format_value(self.data.threshold)})")
        return self._submit(annotation)


class AnnotationControls(w.VBox, Submitter):
    """Class priority (multiclass tasks) and a free-text note.

    Args:
        classes: the task's class names.
        iteration: the iteration index the annotations refer to.
        sink: where annotations go; None keeps them in :attr:`annotations` only.
        show_sink: include the sink's own widget (the server bridge's confirmation line).
    """

    def __init__(self, classes: list[str], *, iteration: int | None = None, sink: AnnotationSink | None = None,
                 show_sink: bool = True, **kwargs: Any) -> None:
        self.classes, self.iteration, self.sink = list(classes), iteration, sink
        self.annotations = []
        self.priority_class = w.Dropdown(options=self.classes, layout=w.Layout(width="160px"))
        self.weight = w.BoundedFloatText(value=2.0, min=0.1, max=100.0, step=0.5, layout=w.Layout(width="80px"))
        self.priority_button = w.Button(description="Set priority")
        self.note = w.Textarea(placeholder="Anything the next iteration should know", layout=w.Layout(width="520px"))
        self.note_button = w.Button(description="Add note")
        self.status = w.HTML()
        self.priority_button.on_click(lambda _b: self.set_class_priority())
        self.note_button.on_click(lambda _b: self.add_note())
        rows: list[w.Widget] = []
        if len(self.classes) > 2:
            rows.append(w.HBox([w.HTML("Missing class"), self.priority_class, w.HTML("costs"), self.weight,
                                w.HTML("times more"), self.priority_button]))
        rows += [w.HBox([self.note, self.note_button]), self.status]
        extra = sink_widgets(sink) if show_sink else []
        super().__init__(children=rows + extra, **kwargs)
        self.add_class("clinagent-annotations")

    def set_class_priority(self, name: str | None = None, weight: float | None = None, text: str = "") -> Annotation:
        """Record ``class_priority`` {class, weight}: misses of that class weigh ``weight`` times more."""
        name = str(self.priority_class.value if name is None else name)
        weight = float(self.weight.value if weight is None else weight)
        if name not in self.classes:
            raise RecipeError(f"unknown class '{name}'", where="argument 'name'", fix=f"use one of {self.classes}")
        if weight <= 0:
            raise RecipeError(f"a class weight must be positive, got {weight}", where="argument 'weight'",
                              fix="give a factor such as 2")
        annotation = Annotation(kind="class_priority", iteration=self.iteration,
                                value={"class": name, "weight": weight},
                                text=text or f"Missing {name} costs {weight:g} times more")
        return self._submit(annotation)

    def add_note(self, text: str | None = None) -> Annotation | None:
        """Record a free-text ``note`` (None, with a message, when the text is empty)."""
        text = (self.note.value if text is None else text).strip()
        if not text:
            self.status.value = "Write something first."
            return None
        annotation = self._submit(Annotation(kind="note", text=text, iteration=self.iteration))
        self.note.value = ""
        return annotation
