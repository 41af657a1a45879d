"""The test split, once: the kept iteration's model evaluated by ``final_test.ipynb`` in its own kernel.

Running the test evaluation as a notebook keeps any custom code of the kept model inside a kernel and makes
the final number auditable and rerunnable. ``test_reads`` is saved *before* the notebook runs, so a crash
still counts as a read.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import SessionConflict, SessionError
from ..events import headline
from ..fileio import now_iso
from ..notebooks.render import FINAL_TEST_TEMPLATE, check_parameters, render_iteration
from ..records import FinalTest
from ..runfolder import RunFolder
from ..tasks import get_backend
from .prepare import prepare_image_cache

if TYPE_CHECKING:
    from .engine import Engine, EventSink

__all__ = ["run_final_test"]


def run_final_test(engine: Engine, on_event: EventSink | None = None,
                   timeout_s: float | None = None) -> FinalTest:
    """Evaluate the best iteration on the test split; refuses a second read."""
    s = engine.session
    if s.final_test is not None or s.test_reads > 0:
        when = s.final_test.evaluated_at if s.final_test else "an earlier attempt"
        raise SessionConflict(f"the test split was already evaluated ({when})",
                              fix="the test split is read once per session; start a new session to test again")
    best = s.best()
    if best is None or not best.checkpoint or not Path(best.checkpoint).exists():
        raise SessionError("no kept model to evaluate", fix="run at least one successful iteration first")
    with engine.lock:
        s.test_reads += 1
        s.log("test_split_read", iteration=best.index)
        engine.save()
    engine.emit(on_event, "test_started", iteration=best.index)
    run = RunFolder.final_test(engine.out)
    threshold = best.val_metrics.get("threshold")
    params = {**engine.notebook_parameters(best.recipe), "checkpoint": str(Path(best.checkpoint).resolve()),
              "threshold": threshold if isinstance(threshold, (int, float)) else None}
    render_iteration(FINAL_TEST_TEMPLATE, run.input_notebook, custom_code=best.recipe.custom_code)
    check_parameters(run.input_notebook, params)
    run.write_parameters(params)
    prepare_image_cache(engine, best.recipe, include_test=True)
    result = engine.executor.execute(run.input_notebook, run.notebook, params,
                                     timeout_s=timeout_s or max(600.0, s.spec.budget.iteration_minutes * 60),
                                     events_path=run.events, cwd=run.path, prewarm_next=False)
    if result.status != "ok":
        with engine.lock:
            s.log("final_test_failed", status=result.status, error=result.error)
            engine.save()
        raise SessionError(f"the test evaluation ended with status '{result.status}': "
                           f"{(result.error or {}).get('evalue', '')}", where=str(run.notebook),
                           fix="read the notebook; the test split counts as read")
    metrics = run.read_metrics(test=True)
    info = run.read_run_info()
    written = run.test_predictions(get_backend(best.recipe.task_type))
    path = engine.out / written.name
    path.write_bytes(written.read_bytes())
    final = FinalTest(iteration=best.index, metrics=metrics, evaluated_at=now_iso(),
                      n_samples=int(info.n_samples or 0), predictions=str(path))
    with engine.lock:
        s.final_test = final
        s.status = "finished"
        s.log("final_test", iteration=best.index, primary=metrics.get("primary"),
              test_loader_reads=info.test_reads, notebook=str(run.notebook))
        engine.save()
    engine.emit(on_event, "session_finished", iteration=best.index, metrics=headline(metrics),
                predictions=str(path))
    return final
