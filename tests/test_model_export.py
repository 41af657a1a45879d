"""``clinagent export``: the exported kept model gives the notebook's validation probabilities (1e-4)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from clinagent_lab.cli import main
from clinagent_lab.data.formats import load_dataset
from clinagent_lab.commands.export import export_model, preprocess

pytestmark = pytest.mark.slow


def _validation_inputs(session, info) -> tuple[np.ndarray, pd.DataFrame]:
    """The best iteration's validation images, preprocessed as preprocessing.json says, and its predictions."""
    best = session.best()
    pred = pd.read_csv(Path(best.output_dir) / "val_predictions.csv", dtype={"image_id": str})
    dataset = load_dataset(session.data_path)
    row = {str(i): k for k, i in enumerate(dataset.table["image_id"].astype(str))}
    images = np.stack([preprocess(dataset.read_image(row[i]), info) for i in pred["image_id"]])
    return images, pred


def _expected(pred: pd.DataFrame, classes: list[str]) -> np.ndarray:
    return pred[[f"prob_{c}" for c in classes]].to_numpy(float)


def test_onnx_export_reproduces_the_notebook_probabilities(e2e_session, tmp_path):
    import onnxruntime as ort

    engine, _ = e2e_session
    assert main(["export", str(engine.session.out_dir), "--format", "onnx", "--out", str(tmp_path)]) == 0
    info = json.loads((tmp_path / "preprocessing.json").read_text())
    card = json.loads((tmp_path / "model_card.json").read_text())
    best = engine.session.best()
    assert info["class_names"] == best.recipe.classes and info["threshold"] == best.val_metrics["threshold"]
    assert card["model"].startswith(f"iteration {best.index}") and card["mitigation"] == best.recipe.debias.method
    assert "Model card" in (tmp_path / "model_card.md").read_text()
    images, pred = _validation_inputs(engine.session, info)
    session = ort.InferenceSession(str(tmp_path / "model.onnx"), providers=["CPUExecutionProvider"])
    probs = session.run(["probabilities"], {"image": images})[0]
    np.testing.assert_allclose(probs, _expected(pred, info["class_names"]), atol=1e-4)


def test_torchscript_export_reproduces_the_notebook_probabilities(e2e_session, tmp_path):
    import torch

    engine, _ = e2e_session
    path = export_model(engine.session.out_dir, "torchscript", tmp_path)
    info = json.loads((tmp_path / "preprocessing.json").read_text())
    images, pred = _validation_inputs(engine.session, info)
    model = torch.jit.load(str(path))
    with torch.no_grad():
        probs = model(torch.from_numpy(images)).numpy()
    np.testing.assert_allclose(probs, _expected(pred, info["class_names"]), atol=1e-4)


def test_export_errors_exit_2(tmp_path, capsys):
    assert main(["export", str(tmp_path / "missing")]) == 2
    assert "no session found" in capsys.readouterr().err
