"""The three seed tasks, end to end through the CLI on synthetic data written in their real on-disk formats."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from clinagent_lab.cli import main

pytestmark = pytest.mark.slow

TINY = ["--set", "training.max_epochs=1", "--max-iterations", "1", "--iteration-minutes", "3"]

SEEDS = {
    "isic2019": ("classify dermoscopic lesions into the ISIC categories, melanoma matters most, sensitivity at "
                 "80% specificity", {"n": 96, "image_size": 16}, ["--set", "data.image_size=16"]),
    "siim_acr": ("pneumothorax, don't let chest drains fool it", {"n": 96, "image_size": 32},
                 ["--set", "data.image_size=16"]),
    "grazpedwri": ("detect wrist fractures, only 5% of images have boxes",
                   {"n": 40, "image_size": 32, "box_fraction": 0.25},
                   ["--set", "data.image_size=32", "--set", "data.batch_size=4"]),
}


@pytest.mark.parametrize("kind", sorted(SEEDS))
def test_seed_request_runs_on_its_format(kind: str, tmp_path: Path, capsys) -> None:
    from clinagent_lab.data.formats import detect_format
    from clinagent_lab.data.synth import generate

    request, options, extra = SEEDS[kind]
    data = generate(kind, tmp_path / "data", seed=0, **options)
    assert detect_format(data) == kind
    out = tmp_path / "run"
    code = main(["run", "--intent", request, "--data", str(data), "--out", str(out), *TINY, *extra])
    assert code == 0, capsys.readouterr().err
    s = json.loads((out / "session.json").read_text())
    spec, final = s["spec"], s["final_test"]
    it = s["iterations"][0]
    assert it["status"] == "ok" and s["test_reads"] == 1
    splits = pd.read_csv(out / "splits.csv", dtype=str)
    # grouped splits: no patient / lesion in two splits
    assert splits.groupby("group_id")["split"].nunique().max() == 1
    if kind == "isic2019":
        assert spec["task_type"] == "multiclass_classification" and len(spec["classes"]) == 8
        assert spec["primary_metric"] == {"name": "sensitivity_at_specificity", "direction": "maximize",
                                          "params": {"specificity": 0.8, "class": "MEL"}}
        for key in ("auroc_macro", "balanced_accuracy", "per_class", "sensitivity_at_specificity"):
            assert key in final["metrics"], key
        assert set(final["metrics"]["per_class"]) == set(spec["classes"])
    elif kind == "siim_acr":
        assert spec["task_type"] == "binary_classification"
        assert spec["classes"] == ["normal", "pneumothorax"]
        assert spec["confounders"][0]["name"] == "chest_drain" and spec["confounders"][0]["column"]
        assert "chest_drain" in final["metrics"]["confounders"]
    else:
        assert spec["task_type"] == "detection" and spec["primary_metric"]["name"] == "map50"
        assert spec["supervision"]["kind"] == "mixed"
        assert "map50" in it["val_metrics"] and "map50" in final["metrics"]
