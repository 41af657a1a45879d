"""Template rendering, parameter baking, frozen cells, and the papermill executor's states."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import nbformat
import papermill as pm
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from clinagent_lab.errors import RecipeError, UnknownNameError
from clinagent_lab.notebooks.executor import NotebookExecutor
from clinagent_lab.notebooks.render import (TEMPLATES, bake_parameters, declared_parameters, frozen_hash,
                                            hook_names, load_template, render_iteration, template_path,
                                            verify_frozen)
from clinagent_lab.notebooks.rerun import check_parameters

PARAMS = ["data_path", "data_format", "splits_path", "output_dir", "events_path", "seed", "recipe", "spec",
          "max_epochs", "time_budget_s"]


@pytest.mark.parametrize("name", TEMPLATES)
def test_templates_declare_the_same_parameters_and_tags(name):
    nb = load_template(name)
    assert declared_parameters(nb) == PARAMS
    assert sum("frozen" in c.metadata.get("tags", []) for c in nb.cells) >= 2
    assert all("clinagent" in c.metadata.get("tags", []) for c in nb.cells)


def test_unknown_template_lists_known():
    with pytest.raises(UnknownNameError, match="classification.ipynb"):
        template_path("nope.ipynb")


def test_render_fills_hooks_and_bakes_parameters(tmp_path):
    out = render_iteration("classification.ipynb", tmp_path / "nb.ipynb",
                           custom_code={"loss": "def custom_loss(logits, labels):\n    return logits.sum()"},
                           title="Iteration 2", rationale="because", parameters={"seed": 7, "recipe": {"a": 1}})
    nb = nbformat.read(out, as_version=4)
    hook = next(c for c in nb.cells if "hook:loss" in c.metadata["tags"])
    assert "def custom_loss" in hook.source
    params = next(c for c in nb.cells if "parameters" in c.metadata["tags"])
    assert "seed = 7" in params.source and 'recipe = {"a": 1}' in params.source
    assert nb.cells[0].source.startswith("## Iteration 2")
    assert frozen_hash(nb) == frozen_hash(load_template("classification.ipynb"))


def test_render_refuses_unknown_hook(tmp_path):
    with pytest.raises(RecipeError, match="unknown code hook 'evaluation'"):
        render_iteration("classification.ipynb", tmp_path / "nb.ipynb", custom_code={"evaluation": "x = 1"})


def test_changed_frozen_cell_is_refused():
    nb = load_template("classification.ipynb")
    frozen = next(c for c in nb.cells if "frozen" in c.metadata["tags"])
    frozen.source += "\nval_metrics['auroc'] = 1.0"
    with pytest.raises(RecipeError, match="frozen"):
        verify_frozen(nb, "classification.ipynb")


def test_bake_parameters_rejects_undeclared():
    with pytest.raises(RecipeError, match="declared parameters: a, b"):
        bake_parameters("a = 1  # one\nb = 2", {"c": 3})
    assert bake_parameters("a = 1  # one\nb = 2", {"a": [1, 2]}) == "a = [1, 2]  # one\nb = 2"


def test_rerun_parameter_check_lists_declared(tmp_path):
    path = render_iteration("classification.ipynb", tmp_path / "nb.ipynb")
    with pytest.raises(RecipeError, match="not declared.*declared parameters: data_path"):
        check_parameters(path, {"learning_rate": 0.1})


def _notebook(tmp_path: Path, *sources: str) -> Path:
    nb = new_notebook(cells=[new_code_cell(s) for s in sources])
    nb.cells[0].metadata["tags"] = ["parameters"]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = tmp_path / "in.ipynb"
    nbformat.write(nb, path)
    return path


def test_executor_ok_and_cell_events(tmp_path):
    nb = _notebook(tmp_path, "x = 1", "y = x + 1\nprint(y)")
    events = []
    result = NotebookExecutor(poll_s=0.1).execute(nb, tmp_path / "out.ipynb", {"x": 41}, timeout_s=120,
                                                  events_path=tmp_path / "ev.jsonl", on_event=events.append)
    assert result.status == "ok", result.error
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert "42" in out.cells[-1].outputs[0]["text"]
    assert [e["index"] for e in events if e["type"] == "cell"] == [0, 1, 2]  # params, injected, body


def test_executor_crash_records_exception_and_cell(tmp_path):
    nb = _notebook(tmp_path, "x = 1", "raise ValueError('bad input in cell two')")
    result = NotebookExecutor(poll_s=0.1).execute(nb, tmp_path / "out.ipynb", {}, timeout_s=120,
                                                  events_path=tmp_path / "ev.jsonl")
    assert result.status == "crash"
    assert result.error["ename"] == "ValueError" and "bad input" in result.error["evalue"]
    assert result.error["cell_index"] == 1
    assert (tmp_path / "out.ipynb").exists()  # the failed notebook is kept for reading


def test_executor_timeout_kills_the_run(tmp_path):
    nb = _notebook(tmp_path, "x = 1", "import time\ntime.sleep(120)")
    start = time.monotonic()
    result = NotebookExecutor(poll_s=0.1).execute(nb, tmp_path / "out.ipynb", {}, timeout_s=8,
                                                  events_path=tmp_path / "ev.jsonl")
    assert result.status == "timeout"
    assert time.monotonic() - start < 60
    assert "budget" in result.error["evalue"]


def test_executor_stop_from_another_thread(tmp_path):
    nb = _notebook(tmp_path, "x = 1", "import time\ntime.sleep(120)")
    ex = NotebookExecutor(poll_s=0.1)
    timer = threading.Timer(6.0, ex.stop)
    timer.start()
    result = ex.execute(nb, tmp_path / "out.ipynb", {}, timeout_s=100, events_path=tmp_path / "ev.jsonl")
    timer.cancel()
    assert result.status == "stopped"
    assert not ex.running


@pytest.mark.slow
def test_classification_template_runs_with_plain_papermill(drain_data, tmp_path):
    """The packaged template runs through papermill itself, with parameters only."""
    from clinagent_lab.agent.engine import prepare_data
    from clinagent_lab.data.splits import split_table
    from clinagent_lab.intent import ground_spec, parse_offline
    from clinagent_lab.plan.initializer import initialize_recipe
    from clinagent_lab.recipe import apply_patch
    from tests.conftest import FAST

    dataset, fp = prepare_data(drain_data)
    split_table(dataset).to_csv(tmp_path / "splits.csv", index=False)
    spec = ground_spec(parse_offline("pneumothorax on chest x-rays"), fp)
    recipe = apply_patch(initialize_recipe(spec, fp), {**FAST, "training.max_epochs": 1})
    pm.execute_notebook(str(template_path("classification.ipynb")), str(tmp_path / "out.ipynb"),
                        kernel_name="python3", progress_bar=False, cwd=str(tmp_path),
                        parameters={"data_path": str(drain_data), "splits_path": str(tmp_path / "splits.csv"),
                                    "output_dir": str(tmp_path / "run"), "recipe": recipe.model_dump(mode="json"),
                                    "spec": spec.model_dump(mode="json")})
    import json

    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert 0.0 <= metrics["auroc"] <= 1.0
    assert (tmp_path / "run" / "model.ckpt").exists()
    assert (tmp_path / "run" / "val_predictions.csv").exists()
