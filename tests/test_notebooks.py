"""Template rendering, parameters through papermill's injection, frozen cells, and the executor's states."""

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
from clinagent_lab.notebooks.parameters import notebook_values, papermill_command, rerun_parameters
from clinagent_lab.notebooks.render import (TEMPLATES, declared_parameters, frozen_hash, hook_names,
                                            load_template, render_iteration, template_path, verify_frozen)
from clinagent_lab.notebooks.rerun import check_parameters
from clinagent_lab.runfolder import RunFolder

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


def test_render_fills_hooks_and_keeps_the_template_parameters_cell(tmp_path):
    out = render_iteration("classification.ipynb", tmp_path / "nb.ipynb",
                           custom_code={"loss": "def custom_loss(logits, labels):\n    return logits.sum()"},
                           title="Iteration 2", rationale="because")
    nb = nbformat.read(out, as_version=4)
    hook = next(c for c in nb.cells if "hook:loss" in c.metadata["tags"])
    assert "def custom_loss" in hook.source
    params = next(c for c in nb.cells if "parameters" in c.metadata["tags"])
    template = next(c for c in load_template("classification.ipynb").cells if "parameters" in c.metadata["tags"])
    assert params.source == template.source  # values go in through papermill's injection, not into this cell
    assert not any("injected-parameters" in c.metadata["tags"] for c in nb.cells)
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


# ------------------------------------------------------------------------------ parameters through injection

VALUES = {"x": 41, "output_dir": ".", "name": "2026-12-04",
          "recipe": {"lr": 1e-05, "classes": ["a", "b"], "max_time_s": None, "flags": {"on": "yes", "n": 1.5}}}


def _run_folder_with_parameters(tmp_path: Path) -> tuple[Path, RunFolder]:
    nb = _notebook(tmp_path, "x = 1\noutput_dir = '.'\nname = ''\nrecipe = {}\nmax_epochs = None",
                   "print(x + 1, recipe['lr'], name, max_epochs)")
    run = RunFolder(tmp_path / "run")
    run.path.mkdir()
    assert run.write_parameters(VALUES) == run.parameters
    return nb, run


def test_parameters_file_round_trips_and_goes_in_by_injection(tmp_path):
    nb, run = _run_folder_with_parameters(tmp_path)
    assert run.read_parameters() == VALUES  # types kept: floats, None, nested dicts, a date-like string
    assert run.parameters.read_text().startswith("# the values papermill injected")
    result = NotebookExecutor(poll_s=0.1).execute(nb, run.notebook, run.read_parameters(), timeout_s=120,
                                                  events_path=run.events)
    assert result.status == "ok", result.error
    out = nbformat.read(run.notebook, as_version=4)
    assert out.cells[0].source == nbformat.read(nb, as_version=4).cells[0].source  # the parameters cell as it was
    assert out.cells[1].metadata["tags"] == ["injected-parameters"]
    assert notebook_values(out, ("injected-parameters",)) == VALUES
    assert out.metadata["papermill"]["parameters"] == VALUES
    assert "42 1e-05 2026-12-04 None" in out.cells[2].outputs[0]["text"]


def test_plain_papermill_reruns_with_the_file_and_an_override(tmp_path):
    import shlex
    import subprocess
    import sys

    nb, run = _run_folder_with_parameters(tmp_path)
    pm.execute_notebook(str(nb), str(run.notebook), parameters=run.read_parameters(), progress_bar=False,
                        kernel_name="python3")
    files, overrides, values = rerun_parameters(run.notebook, {"x": 9})
    assert files == [run.parameters] and overrides == {"x": 9} and values == {**VALUES, "x": 9}
    (tmp_path / "re").mkdir()
    command = papermill_command(run.notebook, tmp_path / "re" / "out.ipynb", files=files, overrides=overrides,
                                cwd=tmp_path / "re")
    assert f"-f {run.parameters}" in command and "-p x 9" in command
    argv = shlex.split(command)
    proc = subprocess.run([sys.executable, "-m", *argv, "--no-progress-bar"], capture_output=True, text=True,
                          timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = nbformat.read(tmp_path / "re" / "out.ipynb", as_version=4)
    # papermill replaced the injected cell: every recorded value is back, with the override
    assert notebook_values(out, ("injected-parameters",)) == {**VALUES, "x": 9}
    assert "10 1e-05 2026-12-04 None" in out.cells[2].outputs[0]["text"]


def test_rerun_parameters_replay_the_recorded_epoch_plan(tmp_path):
    nb, run = _run_folder_with_parameters(tmp_path)
    nb.rename(run.notebook)
    run.run_info.write_text('{"evaluator_hash": "e", "epoch_plan": [3, 2], "max_epochs": 2}')
    # before replay.yaml is written (sessions recorded before it existed): the plan from run_info.json
    files, overrides, values = rerun_parameters(run.notebook, {"seed": 1}, timeout_s=600)
    assert files == [run.parameters]
    assert overrides == {"max_epochs": [3, 2], "time_budget_s": 600.0, "seed": 1}
    run.write_parameters({"max_epochs": [3, 2]}, replay=True)
    assert run.read_parameters(replay=True) == {"max_epochs": [3, 2]} == run.replay_values()
    files, overrides, values = rerun_parameters(run.notebook, {"seed": 1}, timeout_s=600)
    assert files == [run.parameters, run.replay_parameters]
    assert overrides == {"time_budget_s": 600.0, "seed": 1}
    assert values == {**VALUES, "max_epochs": [3, 2], "time_budget_s": 600.0, "seed": 1}
    # an explicit max_epochs replaces the plan; without a budget the recipe's guard stays
    files, overrides, _ = rerun_parameters(run.notebook, {"max_epochs": 5})
    assert files == [run.parameters] and overrides == {"max_epochs": 5}
    assert rerun_parameters(run.notebook, {})[1] == {}


def test_a_baked_notebook_of_an_older_session_reruns_with_its_own_values(tmp_path):
    # recorded before injection: values in the parameters cell, no parameters file, the plan in run_info.json
    nb = _notebook(tmp_path, "x = 41  # baked\noutput_dir = '.'\nmax_epochs = None", "print(x)")
    folder = RunFolder(tmp_path)
    folder.run_info.write_text('{"evaluator_hash": "e", "epoch_plan": [4], "max_epochs": 4}')
    files, overrides, values = rerun_parameters(nb, {"seed": 0}, timeout_s=60)
    assert files == [] and overrides == values == {"max_epochs": 4, "time_budget_s": 60.0, "seed": 0}
    assert notebook_values(nbformat.read(nb, as_version=4)) == {"x": 41, "output_dir": ".", "max_epochs": None}
    # a notebook that wrote its outputs elsewhere is brought back to the rerun's working folder
    nb = _notebook(tmp_path, "x = 41\noutput_dir = '/somewhere'\nmax_epochs = None", "print(x)")
    assert rerun_parameters(nb, {})[1] == {"max_epochs": 4, "output_dir": "."}


def test_recording_an_iteration_leaves_the_executed_notebook_as_papermill_wrote_it(tmp_path):
    from clinagent_lab.agent.iteration import _read_back
    from clinagent_lab.evaluation.evaluate import evaluator_hash
    from clinagent_lab.records import Iteration
    from clinagent_lab.recipe import Recipe
    from clinagent_lab.runfolder import RunInfo

    run = RunFolder(tmp_path / "iter_01")
    render_iteration("classification.ipynb", run.notebook)  # stands in for papermill's output
    before = run.notebook.read_bytes()
    run.write_metrics({"auroc": 0.75, "primary": 0.75, "selection_value": 0.75})
    run.write_run_info(RunInfo(evaluator_hash=evaluator_hash(), epochs_run=2, max_epochs=2, epoch_plan=[3, 2]))
    it = Iteration(index=1, status="ok", recipe=Recipe(task_type="binary_classification", classes=["a", "b"]),
                   rationale="baseline", notebook=str(run.notebook), output_dir=str(run.path))
    _read_back(it, run)
    assert it.status == "ok", it.error
    assert run.notebook.read_bytes() == before
    assert run.read_parameters(replay=True) == {"max_epochs": [3, 2]}
