"""Batch reruns of an executed iteration notebook: same seed, same number; seed studies; bad parameters.

The baseline iteration of the shared end-to-end session (tests/conftest.py) is rerun here: its values went in
through papermill's injection and are kept in parameters.yaml, its epoch plan in replay.yaml.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from clinagent_lab.cli import main
from clinagent_lab.errors import RecipeError
from clinagent_lab.notebooks import rerun as rerun_module
from clinagent_lab.notebooks.parameters import notebook_values
from clinagent_lab.notebooks.render import load_template
from clinagent_lab.notebooks.rerun import check_parameters, seed_study
from clinagent_lab.runfolder import RunFolder

pytestmark = pytest.mark.slow



@pytest.fixture(scope="module")
def iteration(e2e_session):
    """(Iteration, path of its executed notebook): the baseline of the shared end-to-end session."""
    engine, _ = e2e_session
    it = engine.session.iterations[0]
    assert it.status == "ok", it.error
    assert isinstance(it.val_metrics.get("auroc"), float)
    return it, Path(it.notebook)


def test_the_executed_notebook_is_papermills_with_the_values_injected(iteration):
    it, notebook = iteration
    import nbformat

    run = RunFolder(notebook.parent)
    nb = nbformat.read(notebook, as_version=4)
    recorded = run.read_parameters()
    assert recorded["recipe"] == it.recipe.model_dump(mode="json") and recorded["seed"] == it.recipe.seed
    # the template's parameters cell as it is, papermill's injected cell after it with the recorded values
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    template = next(c for c in load_template("classification.ipynb").cells if "parameters" in c.metadata["tags"])
    assert nb.cells[index].source == template.source
    assert nb.cells[index + 1].metadata["tags"] == ["injected-parameters"]
    assert notebook_values(nb, ("injected-parameters",)) == recorded == nb.metadata["papermill"]["parameters"]
    # the plan for an exact replay sits beside it, not in it
    assert run.read_parameters(replay=True) == {"max_epochs": run.read_run_info().replay_epochs()}
    assert "max_epochs" not in recorded


def test_cli_rerun_same_seed_reproduces_validation_auroc(iteration, tmp_path, capsys):
    it, notebook = iteration
    code = main(["rerun", str(notebook), "--seed", "0", "--out", str(tmp_path / "r0")])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["status"] == "ok"
    assert out["metrics"]["auroc"] == it.val_metrics["auroc"]  # exactly: same seed, same machine
    assert out["metrics"]["selection_value"] == it.selection_value
    metrics = json.loads((tmp_path / "r0" / "metrics.json").read_text())
    assert metrics["auroc"] == it.val_metrics["auroc"]
    assert Path(out["output"]) == tmp_path / "r0" / "iteration.ipynb" and Path(out["output"]).exists()
    run = RunFolder(notebook.parent)
    assert out["papermill"].startswith(f"papermill {notebook} {tmp_path / 'r0' / 'iteration.ipynb'} "
                                       f"-f {run.parameters} -f {run.replay_parameters} -p time_budget_s ")
    assert out["papermill"].endswith(f"-p seed 0 --cwd {tmp_path / 'r0'}")
    replayed = RunFolder(tmp_path / "r0").read_run_info()
    assert replayed.recorded_plan() == run.read_run_info().recorded_plan()  # the same epochs


def test_plain_papermill_with_the_parameters_files_gives_the_same_number(iteration, tmp_path):
    it, notebook = iteration
    run = RunFolder(notebook.parent)
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-m", "papermill", str(notebook), "out.ipynb", "-f", str(run.parameters),
                           "-f", str(run.replay_parameters), "-p", "seed", "0", "--no-progress-bar"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    metrics = json.loads((tmp_path / "metrics.json").read_text())  # output_dir "." is the caller's cwd
    assert metrics["auroc"] == it.val_metrics["auroc"]
    assert (tmp_path / "out.ipynb").exists()


def test_a_baked_notebook_without_a_parameters_file_still_reruns(iteration, tmp_path):
    # sessions recorded before injection: the values baked into the parameters cell, no parameters.yaml or
    # replay.yaml; the plan comes from run_info.json
    import nbformat
    from papermill.translators import PythonTranslator

    it, notebook = iteration
    run = RunFolder(notebook.parent)
    nb = nbformat.read(notebook, as_version=4)
    values = notebook_values(nb, ("injected-parameters",))
    nb.cells = [c for c in nb.cells if "injected-parameters" not in c.metadata.get("tags", [])]
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    cell.source = "\n".join(  # each declared line's value replaced, its comment kept, as older sessions did
        f"{name} = {PythonTranslator.translate(values[name])}  #{line.split('#', 1)[1]}" if name in values else line
        for line in cell.source.splitlines() for name in [line.split("=", 1)[0].strip()])
    old = tmp_path / "iter_01"
    old.mkdir()
    nbformat.write(nb, old / "iteration.ipynb")
    (old / "run_info.json").write_text(run.run_info.read_text())
    result = rerun_module.rerun_notebook(old / "iteration.ipynb", seed=0, out_dir=tmp_path / "r", timeout_s=600)
    assert result["status"] == "ok", result["error"]
    assert result["metrics"]["auroc"] == it.val_metrics["auroc"]
    assert " -f " not in result["command"] and "max_epochs" in result["command"]


def test_seed_study_prints_mean_sd_and_writes_files(iteration, tmp_path, capsys):
    it, notebook = iteration
    out = tmp_path / "study"
    code = main(["rerun", str(notebook), "--seeds", "0", "1", "2", "--workers", "2", "--out", str(out)])
    text = capsys.readouterr().out
    assert code == 0
    assert "3/3 runs ok" in text and "±" in text
    study = json.loads((out / "seed_study.json").read_text())
    assert [r["seed"] for r in study["runs"]] == [0, 1, 2]
    assert all(r["status"] == "ok" for r in study["runs"])
    aurocs = [r["metrics"]["auroc"] for r in study["runs"]]
    assert aurocs[0] == it.val_metrics["auroc"]  # seed 0 is the iteration's own seed
    # the summary is the mean and sample sd of the per-run numbers
    assert study["summary"]["auroc"]["mean"] == pytest.approx(statistics.fmean(aurocs))
    assert study["summary"]["auroc"]["sd"] == pytest.approx(statistics.stdev(aurocs))
    assert study["summary"]["auroc"]["n"] == 3
    line = next(ln for ln in text.splitlines() if ln.strip().startswith("auroc "))
    assert f"{statistics.fmean(aurocs):.4f} ± {statistics.stdev(aurocs):.4f}" in line
    csv = pd.read_csv(out / "seed_study.csv").set_index("metric")
    assert csv.loc["auroc", "n"] == 3
    assert csv.loc["auroc", "mean"] == pytest.approx(statistics.fmean(aurocs), abs=1e-6)
    for seed in (0, 1, 2):
        assert (out / f"seed_{seed}" / "metrics.json").exists()


def test_undeclared_parameter_exits_2_naming_the_declared_ones(iteration, tmp_path, capsys):
    _, notebook = iteration
    code = main(["rerun", str(notebook), "-p", "learning_rate", "0.1", "--out", str(tmp_path / "x")])
    err = capsys.readouterr().err
    assert code == 2
    assert "learning_rate" in err and "seed" in err and "max_epochs" in err and "time_budget_s" in err
    assert "Traceback" not in err
    assert not (tmp_path / "x").exists()  # refused before anything ran
    with pytest.raises(RecipeError, match="learning_rate"):
        check_parameters(notebook, {"learning_rate": 0.1})


def test_seed_study_reports_failures_next_to_successes(iteration, tmp_path, monkeypatch):
    _, notebook = iteration
    original = rerun_module.rerun_notebook

    def seed_1_gets_no_time(nb, *, seed=None, params=None, out_dir=None, timeout_s=3600.0, **kw):
        if seed == 1:  # a real run that overruns its budget and is killed
            timeout_s = 0.1
        return original(nb, seed=seed, params=params, out_dir=out_dir, timeout_s=timeout_s, **kw)

    monkeypatch.setattr(rerun_module, "rerun_notebook", seed_1_gets_no_time)
    study = seed_study(notebook, [0, 1], out_dir=tmp_path / "study")
    statuses = {r["seed"]: r["status"] for r in study.runs}
    assert statuses == {0: "ok", 1: "timeout"}
    assert study.n_ok == 1
    text = study.summary_text()
    assert "1/2 runs ok" in text
    assert "seed 1: timeout" in text and "budget" in text
    assert study.summary["auroc"]["n"] == 1 and study.summary["auroc"]["sd"] == 0.0
    saved = json.loads((tmp_path / "study" / "seed_study.json").read_text())
    failed = next(r for r in saved["runs"] if r["seed"] == 1)
    assert failed["status"] == "timeout" and failed["error"]["ename"] == "Timeout" and failed["metrics"] == {}
    ok = next(r for r in saved["runs"] if r["seed"] == 0)
    assert saved["summary"]["auroc"]["mean"] == ok["metrics"]["auroc"]


def test_a_revised_epoch_plan_is_replayed_by_plain_papermill_from_replay_yaml(iteration, tmp_path):
    # a run whose second epoch revised its plan (3 epochs after the first steps, then 2) records both counts;
    # replay.yaml pins both switches, so plain papermill trains the same schedule
    _, notebook = iteration
    run = RunFolder(notebook.parent)
    copy = RunFolder(tmp_path / "iter_01")
    copy.path.mkdir()
    for name in (notebook.name, run.parameters.name, run.run_info.name):
        (copy.path / name).write_bytes((notebook.parent / name).read_bytes())
    info = json.loads(copy.run_info.read_text())
    copy.run_info.write_text(json.dumps({**info, "max_epochs": 2, "epoch_plan": [3, 2]}))
    copy.write_parameters({"max_epochs": copy.read_run_info().replay_epochs()}, replay=True)
    assert "max_epochs:\n- 3\n- 2" in copy.replay_parameters.read_text()
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.run([sys.executable, "-m", "papermill", str(copy.notebook), "out.ipynb",
                           "-f", str(copy.parameters), "-f", str(copy.replay_parameters), "-p", "seed", "0",
                           "--no-progress-bar"], cwd=out, env=env, capture_output=True, text=True,
                          timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    replayed = json.loads((out / "run_info.json").read_text())
    assert replayed["epoch_plan"] == [3, 2] and replayed["max_epochs"] == 2 and replayed["epochs_run"] == 2
    plans = [json.loads(line) for line in (out / "events.jsonl").read_text().splitlines()]
    assert [(e["stage"], e["epochs"]) for e in plans if e["type"] == "plan"] == [("first_steps", 3),
                                                                                 ("second_epoch", 2)]


@pytest.mark.parametrize("value", [0, [4, 0], [1, 2, 3], "many", 2.5, []])
def test_bad_epoch_parameter_is_refused_with_the_fix(value):
    from clinagent_lab.notebooks.runtime import _epoch_parameter

    with pytest.raises(RecipeError, match="max_epochs") as info:
        _epoch_parameter(value)
    assert "whole number" in str(info.value.fix)
