"""The results cell: one iteration's validation results, interactive and static.

The JupyterLab sidebar inserts into the open notebook::

    from clinagent_lab.widgets import show_results; show_results("<iteration dir>", session_id="<id>")

which shows the ROC widget, one confounder view per confounder in ``metrics.json``, the class-priority and
note controls, and the static PNGs (``roc.png``, ``confounder_<name>.png``; written if missing) so that an
exported notebook, or one opened without a kernel, still shows the plots. The recipe and spec come from the
session (``session.json`` two levels above the iteration folder).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..errors import ClinagentError, DataValidationError, SessionError
from ..recipe import Recipe
from ..records import SESSION_FILE, Session
from ..runfolder import RunFolder
from ..spec import TaskSpec
from ..tasks import get_backend
from .annotate import AnnotationSink, ServerSink, SessionFileSink, sink_widgets
from .figdata import _classes_target
from .saliency import saliency_pngs
from .static import format_value, save_confounder_png, save_roc_png
from .summary import clinician_sentence, clinician_summary_html, metric_table_html

__all__ = ["IterationResults", "ResultsView", "load_iteration", "make_sink", "show_results"]

_ITER_DIR = re.compile(r"^iter_(\d+)$")


@dataclass
class IterationResults:
    """What an iteration folder holds, with the recipe and spec that produced it."""

    folder: Path
    #: a table for classification; the backend's own form (a list of records) for detection
    predictions: pd.DataFrame | list[dict[str, Any]]
    metrics: dict[str, Any]
    recipe: Recipe
    spec: TaskSpec | None
    iteration: int | None
    session_dir: Path | None


def _session_for(folder: Path) -> Session | None:
    session_dir = folder.parent.parent
    return Session.load(session_dir) if (session_dir / SESSION_FILE).exists() else None


def _iteration_index(folder: Path, session: Session | None) -> int | None:
    if session is not None:
        for it in session.iterations:
            if it.output_dir and Path(it.output_dir).resolve() == folder.resolve():
                return it.index
    match = _ITER_DIR.match(folder.name)
    return int(match.group(1)) if match else None


def load_iteration(iteration_dir: str | Path, *, recipe: Recipe | None = None,
                   spec: TaskSpec | None = None) -> IterationResults:
    """Read the validation predictions (the task backend's file) and ``metrics.json``, and find the recipe and
    spec in the session.

    Args:
        iteration_dir: ``<session>/iterations/iter_NN``.
        recipe: use this recipe instead of the session's (a folder outside a session needs it).
        spec: use this spec instead of the session's.
    """
    folder = Path(iteration_dir)
    if not folder.is_dir():
        raise DataValidationError(f"iteration folder {folder} does not exist", where=str(folder),
                                  fix="pass the folder the sidebar shows for the iteration")
    session = _session_for(folder)
    index = _iteration_index(folder, session)
    if recipe is None and session is not None and index is not None:
        recipe = session.iteration(index).recipe
    if recipe is None:
        raise SessionError("no recipe for this iteration folder", where=str(folder.parent.parent / SESSION_FILE),
                           fix="open an iteration inside a session folder, or pass recipe=...")
    run, backend = RunFolder(folder), get_backend(recipe.task_type)
    predictions_path = run.predictions(backend)
    if not predictions_path.exists():
        raise DataValidationError(f"{predictions_path.name} is missing", where=str(predictions_path),
                                  fix="show results of an iteration that finished")
    predictions = backend.load_predictions(predictions_path)
    return IterationResults(folder=folder, predictions=predictions, metrics=run.read_metrics(),
                            recipe=recipe, spec=spec or (session.spec if session else None), iteration=index,
                            session_dir=folder.parent.parent if session is not None else None)


def make_sink(session_dir: Path | None, session_id: str | None) -> AnnotationSink | None:
    """The server (from the browser) when a session id is given, with the session file as fallback."""
    fallback = SessionFileSink(session_dir) if session_dir is not None else None
    if session_id:
        return ServerSink(session_id, fallback=fallback)
    return fallback


@dataclass
class ResultsView:
    """The widgets and PNGs of one iteration. Displaying it twice shows it once."""

    results: IterationResults
    sink: AnnotationSink | None
    roc: Any = None
    confounders: dict[str, Any] = field(default_factory=dict)
    controls: Any = None
    pngs: list[Path] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    displayed: bool = False

    @property
    def widget(self) -> Any:
        """All the interactive parts in one box."""
        import ipywidgets as w  # only inside a kernel

        parts = [self.roc, *self.confounders.values(), self.controls]
        return w.VBox([p for p in parts if p is not None] + sink_widgets(self.sink))

    @property
    def annotations(self) -> list[Any]:
        parts = [self.roc, *self.confounders.values(), self.controls]
        return [a for p in parts if p is not None for a in p.annotations]

    def _ipython_display_(self) -> None:
        if self.displayed:
            return
        self.displayed = True
        from IPython.display import HTML, Image, display  # only inside a kernel

        display(HTML(_heading(self.results)))
        for note in self.notes:
            display(HTML(f"<p><i>{note}</i></p>"))
        display(self.widget)
        for path in self.pngs:
            display(Image(filename=str(path)))
        display(HTML(metric_table_html(self.results.metrics)))


def _heading(res: IterationResults) -> str:
    """The clinician's sentence first, then the selection figures in one muted line."""
    m = res.metrics
    which = f"Iteration {res.iteration}" if res.iteration is not None else res.folder.name
    name = m.get("selection_metric") or m.get("primary_metric") or "primary"
    extra = [f"selected on {str(name).replace('_', ' ')} {format_value(m.get('selection_value'))}"]
    if name != "auroc" and isinstance(m.get("auroc", m.get("auroc_macro")), (int, float)):
        extra.append(f"AUROC {format_value(m.get('auroc', m.get('auroc_macro')))}")
    sentence = _sentence(res)
    if not sentence:  # the sentence names the threshold itself
        extra.append(f"threshold {format_value(m.get('threshold'))}")
    return clinician_summary_html(f"{which}: validation results", sentence, extra)


def _sentence(res: IterationResults) -> str:
    """Empty for tasks whose metrics carry no confusion counts (detection)."""
    try:
        classes, positive = _classes_target(res.recipe, None, None)
    except ClinagentError:
        classes, positive = list(res.recipe.classes), None
    columns = {c.name: c.column for c in (res.spec.confounders if res.spec else []) if c.column}
    return clinician_sentence(res.metrics, res.predictions, classes=classes, positive=positive,
                              confounder_columns=columns)


def _static_pngs(res: IterationResults, names: list[str]) -> list[Path]:
    roc = res.folder / "roc.png"
    paths = [roc if roc.exists() else save_roc_png(res.predictions, res.recipe, roc,
                                                   threshold=res.metrics.get("threshold"))]
    for name in names:
        path = res.folder / f"confounder_{name}.png"
        paths.append(path if path.exists() else save_confounder_png(res.predictions, res.recipe, res.spec, name,
                                                                    path, metrics=res.metrics))
    return paths


def _confounder_views(res: IterationResults, sink: AnnotationSink | None, names: list[str],
                      notes: list[str]) -> dict[str, Any]:
    from .confounder import ConfounderView  # deferred: pulls in ipywidgets, slow to import

    views: dict[str, Any] = {}
    for name in names:
        try:
            views[name] = ConfounderView(res.predictions, res.recipe, res.spec, name, iteration=res.iteration,
                                         sink=sink, metrics=res.metrics, show_sink=False)
        except ClinagentError as exc:
            notes.append(f"confounder {name}: {exc.what}")
    return views


def _link(roc: Any, views: dict[str, Any]) -> None:
    for view in views.values():
        def follow(class_name: str, threshold: float, view: Any = view) -> None:
            if class_name == view.data.target_class:
                view.threshold = threshold
        roc.on_threshold(follow)


def show_results(iteration_dir: str | Path, *, session_id: str | None = None, sink: AnnotationSink | None = None,
                 bootstrap: int | None = None, display: bool = True, recipe: Recipe | None = None,
                 spec: TaskSpec | None = None) -> ResultsView:
    """Show an iteration's results: ROC widget, confounder views, annotation controls and static PNGs.

    Args:
        iteration_dir: ``<session>/iterations/iter_NN``.
        session_id: the session's id on the Jupyter server: annotations are posted there from the browser
            (falling back to the session file when no browser shows the widgets).
        sink: where annotations go, overriding the choice above.
        bootstrap: resamples for the ROC band (default: the recipe's ``evaluation.bootstrap``).
        display: display now (the returned view then displays nothing more).
        recipe: recipe for a folder outside a session.
        spec: spec for a folder outside a session.

    Returns:
        The :class:`ResultsView` (widgets, PNG paths, the annotations made so far).
    """
    from .confounder import AnnotationControls  # deferred: pulls in ipywidgets, slow to import
    from .roc import RocWidget  # deferred: pulls in anywidget, slow to import

    res = load_iteration(iteration_dir, recipe=recipe, spec=spec)
    sink = sink if sink is not None else make_sink(res.session_dir, session_id)
    view = ResultsView(results=res, sink=sink)
    if get_backend(res.recipe.task_type).has_boxes:
        view.notes.append("detection results have no ROC view; see metrics.json and the report")
    else:
        names = list(res.metrics.get("confounders") or {})
        view.roc = RocWidget(res.predictions, res.recipe, iteration=res.iteration, sink=sink,
                             threshold=res.metrics.get("threshold"), bootstrap=bootstrap, show_sink=False)
        view.confounders = _confounder_views(res, sink, names, view.notes)
        _link(view.roc, view.confounders)
        view.controls = AnnotationControls(res.recipe.classes, iteration=res.iteration, sink=sink,
                                           show_sink=False)
        view.pngs = _static_pngs(res, names)
        view.pngs += saliency_pngs(res)  # Grad-CAM maps, baseline beside this iteration (widgets/saliency.py)
    if display:
        from IPython.display import display as show  # only inside a kernel

        show(view)
    return view
