"""`clinagent cache`, `clinagent weights` and the --pretrained/--devices/--accelerator flags."""

from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from clinagent_lab.cli import build_parser, main
from clinagent_lab.cli_resources import rerun_recipe_param, scale_overrides
from tests.test_models_weights import NAME, _put_in_hub_cache, _timm_state


def test_cache_info_and_clear(tmp_path, monkeypatch, capsys):
    from clinagent_lab.data.cache import image_cache
    from clinagent_lab.data.formats import load_dataset
    from clinagent_lab.data.synth import generate

    monkeypatch.setenv("CLINAGENT_CACHE_DIR", str(tmp_path / "cache"))
    assert main(["cache", "info"]) == 0 and "(empty)" in capsys.readouterr().out
    ds = load_dataset(generate("dermoscopy", tmp_path / "d", n=48, image_size=16, seed=0))
    image_cache(ds.read_image, ds.table["path"].tolist(), np.arange(10), size=8, channels=3)
    assert main(["cache", "info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["root"] == str(tmp_path / "cache") and info["entries"][0]["shape"] == [10, 8, 8, 3]
    assert main(["cache", "info"]) == 0 and "10x8x8x3" in capsys.readouterr().out
    assert main(["cache", "clear"]) == 0 and "removed 1 cache entry" in capsys.readouterr().out
    assert main(["cache", "info", "--json"]) == 0 and json.loads(capsys.readouterr().out)["entries"] == []


def test_weights_list_and_flags(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    assert main(["weights", "list"]) == 0 and "weights pull" in capsys.readouterr().out
    _put_in_hub_cache(tmp_path / "hub", _timm_state(0))
    assert main(["weights", "list"]) == 0 and NAME in capsys.readouterr().out
    args = build_parser().parse_args(["run", "--intent", "x", "--data", "y", "--pretrained", NAME,
                                      "--accelerator", "cpu", "--devices", "1"])
    fixed = scale_overrides(args)
    assert fixed["model.pretrained"] == NAME and fixed["model.architecture"] == "timm:test_resnet"
    assert len(fixed["model.pretrained_sha256"]) == 64 and fixed["training.accelerator"] == "cpu"
    assert scale_overrides(argparse.Namespace(pretrained="none", devices=None, accelerator=None)) == \
        {"model.pretrained": None}
    code = main(["run", "--intent", "x", "--data", str(tmp_path), "--accelerator", "cpu", "--devices", "4096"])
    assert code == 2 and "this machine has" in capsys.readouterr().err
    code = main(["run", "--intent", "x", "--data", str(tmp_path), "--pretrained", "resnet18.a1_in1kk"])
    assert code == 2 and "resnet18.a1_in1k" in capsys.readouterr().err


def test_rerun_flags_patch_the_recipe_parameter(tmp_path):
    import nbformat

    from clinagent_lab.recipe import Recipe

    recipe = Recipe(task_type="binary_classification", classes=["a", "b"]).model_dump(mode="json")
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(f"seed = 0\nrecipe = {recipe!r}\n", metadata={"tags": ["parameters"]})]
    nbformat.write(nb, tmp_path / "iteration.ipynb")
    params = rerun_recipe_param(tmp_path / "iteration.ipynb", {"training.devices": 2})
    assert params["recipe"]["training"]["devices"] == 2 and params["recipe"]["classes"] == ["a", "b"]
    with pytest.raises(Exception, match="recipe parameter"):
        nb.cells = [nbformat.v4.new_code_cell("seed = 0", metadata={"tags": ["parameters"]})]
        nbformat.write(nb, tmp_path / "other.ipynb")
        rerun_recipe_param(tmp_path / "other.ipynb", {})
    # an iteration run by injection: the template's cell is empty, the recipe is in the run folder's parameters file
    from clinagent_lab.runfolder import RunFolder

    run = RunFolder(tmp_path / "iter_01")
    run.path.mkdir()
    nb.cells = [nbformat.v4.new_code_cell("seed = 0\nrecipe = {}", metadata={"tags": ["parameters"]})]
    nbformat.write(nb, run.notebook)
    run.write_parameters({"seed": 0, "recipe": recipe})
    assert rerun_recipe_param(run.notebook, {"training.devices": 3})["recipe"]["training"]["devices"] == 3
