"""Predictions carry each image's identifier as its source names it, so they join back to the source table.

One test per format: the manifest's path as written, the ISIC image id, the SIIM ImageId, the GRAZPEDWRI-DX
file stem, the MedMNIST split and index. Each runs the real loader, split, datamodule and prediction writer
(an untrained model: the scores do not matter here, the identifiers do) and joins the written CSV back.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from clinagent_lab.agent.engine import prepare_data
from clinagent_lab.data.synth import generate
from clinagent_lab.intent import parse_offline
from clinagent_lab.plan.initializer import initialize_recipe
from clinagent_lab.tasks import classification as backend

pytestmark = pytest.mark.slow


def written_predictions(data: Path, request: str, tmp_path: Path, split: str = "val",
                        **options):
    dataset, fp = prepare_data(data, format_options=options or None)
    spec = parse_offline(request, fp)
    recipe = initialize_recipe(spec, fp, seed=0)
    dm = backend.make_datamodule(dataset, recipe, spec)
    module = backend.make_module(recipe, dataset, spec, dm)
    path = backend.save_predictions(backend.predict(module, dm, split), tmp_path / f"{split}_predictions.csv")
    return backend.load_predictions(path), dataset


def assert_joins(pred: pd.DataFrame, source: pd.DataFrame, key: str, label_of) -> None:
    joined = pred.merge(source, left_on="image_id", right_on=key, how="left", validate="one_to_one")
    assert len(pred) > 0 and joined[key].notna().all(), "every prediction finds its source row"
    assert joined["label"].tolist() == [label_of(row) for _, row in joined.iterrows()]


def test_manifest_path_as_written(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (root / "images").mkdir(parents=True)
    rows = []
    for i in range(40):
        Image.fromarray(np.full((16, 16), 5 * i, np.uint8)).save(root / "images" / f"test_{i:05d}.png")
        rows.append({"image": f"images/test_{i:05d}.png", "label": ["normal", "pneumothorax"][i % 2],
                     "patient_id": f"p{i}"})
    pd.DataFrame(rows).to_csv(root / "manifest.csv", index=False)
    pred, _ = written_predictions(root, "pneumothorax on chest x-rays", tmp_path)
    manifest = pd.read_csv(root / "manifest.csv")
    assert pred["image_id"].str.startswith("images/test_").all()
    assert_joins(pred, manifest.rename(columns={"label": "source_label"}), "image",
                 lambda r: int(r["source_label"] == "pneumothorax"))


def test_isic_image_id(tmp_path: Path) -> None:
    root = generate("isic2019", tmp_path / "isic", seed=0, n=80, image_size=16)
    pred, dataset = written_predictions(root, "classify dermoscopy lesions into the ISIC categories", tmp_path)
    gt = pd.read_csv(next(root.rglob("*GroundTruth*.csv")))
    assert pred["image_id"].str.startswith("ISIC_").all()
    assert_joins(pred, gt, "image", lambda r: dataset.classes.index(
        next(c for c in dataset.classes if r[c] == 1)))


def test_siim_image_id(tmp_path: Path) -> None:
    root = generate("siim_acr", tmp_path / "siim", seed=0, n=60, image_size=32)
    pred, _ = written_predictions(root, "pneumothorax on chest x-rays", tmp_path)
    rle = pd.read_csv(root / "train-rle.csv", skipinitialspace=True, dtype=str)
    positive = rle.groupby("ImageId")["EncodedPixels"].agg(lambda s: int((s.str.strip() != "-1").any()))
    source = positive.rename("source_label").reset_index()
    assert pred["image_id"].str.startswith("1.2.276.").all()
    assert_joins(pred, source, "ImageId", lambda r: r["source_label"])


def test_grazpedwri_file_stem(tmp_path: Path) -> None:
    root = generate("grazpedwri", tmp_path / "wrist", seed=0, n=40, image_size=32)
    pred, dataset = written_predictions(root, "fracture or no fracture on wrist x-rays", tmp_path)
    csv = pd.read_csv(next(root.rglob("dataset.csv")))
    labels = dict(zip(dataset.table["image_id"], dataset.table["label"]))
    assert set(pred["image_id"]) <= set(csv["filestem"].astype(str))
    assert_joins(pred, csv.assign(filestem=csv["filestem"].astype(str)), "filestem",
                 lambda r: labels[r["filestem"]])


def test_medmnist_split_and_index(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 40), ("val", 12), ("test", 12)):
        arrays[f"{split}_images"] = rng.integers(0, 255, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = rng.integers(0, 2, (n, 1), dtype=np.uint8)
    np.savez(tmp_path / "pneumoniamnist.npz", **arrays)
    pred, _ = written_predictions(tmp_path / "pneumoniamnist.npz", "pneumonia on paediatric chest x-rays",
                                  tmp_path)
    split_index = pred["image_id"].str.extract(r"^(?P<split>train|val|test)_(?P<index>\d+)$")
    assert split_index.notna().all().all()
    source = [int(arrays[f"{s}_labels"][int(i), 0]) for s, i in split_index.itertuples(index=False)]
    assert pred["label"].tolist() == source
