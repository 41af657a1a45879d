"""Synthetic generators: on-disk format, planted shortcut strength in train vs test, determinism."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from clinagent_lab.data.formats import detect_format, load_dataset
from clinagent_lab.data.splits import assign_splits, check_leakage
from clinagent_lab.data.synth import SYNTH_KINDS, _ensure_builtin, generate
from clinagent_lab.data.synth.classification import draw_drain, shortcut_flags


def _rate(frame, column, split, positive_label):
    cell = frame[frame["split"].isin(split)]
    pos = cell[cell["label"] == positive_label][column].mean()
    neg = cell[cell["label"] != positive_label][column].mean()
    return pos, neg


def test_registered():
    _ensure_builtin()
    assert {"chest_drain", "dermoscopy", "drain_overlay"} <= set(SYNTH_KINDS.names())


def test_chest_drain_correlated_in_train_independent_in_test(tmp_path):
    out = generate("chest_drain", tmp_path / "cd", seed=1, n=200, image_size=16, correlation=0.8)
    frame = pd.read_csv(out / "manifest.csv")
    assert list(frame.columns) == ["image", "label", "split", "patient_id", "chest_drain", "sex", "age"]
    pos, neg = _rate(frame, "chest_drain", ["train", "val"], "pneumothorax")
    assert pos == pytest.approx(0.9, abs=0.03) and neg == pytest.approx(0.1, abs=0.03)
    tpos, tneg = _rate(frame, "chest_drain", ["test"], "pneumothorax")
    assert tpos == pytest.approx(0.5, abs=0.06) and tneg == pytest.approx(0.5, abs=0.06)
    assert frame.groupby("patient_id")["split"].nunique().max() == 1  # grouped by patient
    assert frame["patient_id"].value_counts().max() == 2 and frame["patient_id"].nunique() < len(frame)
    shares = frame["split"].value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.6, abs=0.06) and shares["test"] == pytest.approx(0.2, abs=0.06)
    # sex is independent of the label
    assert abs(_rate(frame.assign(m=(frame.sex == "M").astype(int)), "m", ["train", "val", "test"],
                     "pneumothorax")[0] - 0.5) < 0.2
    img = np.asarray(Image.open(out / frame["image"].iloc[0]))
    assert img.shape == (16, 16) and img.dtype == np.uint8


def test_chest_drain_is_visible_and_finding_subtle(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import cross_val_predict

    out = generate("chest_drain", tmp_path / "cd", seed=0, n=160, image_size=16, correlation=0.0)
    frame = pd.read_csv(out / "manifest.csv")
    images = np.stack([np.asarray(Image.open(out / p), dtype=float) / 255 for p in frame["image"]])
    drain = frame["chest_drain"].to_numpy()
    positive = (frame["label"] == "pneumothorax").to_numpy().astype(int)
    brightest = images.max(axis=(1, 2))
    assert roc_auc_score(drain, brightest) == pytest.approx(1.0)  # the brightest pixel finds the drain
    assert roc_auc_score(positive, brightest) < 0.6  # ...and says nothing about the finding
    flat = images.reshape(len(images), -1)

    def probe(target):  # cross-validated linear probe on raw pixels
        p = cross_val_predict(LogisticRegression(max_iter=2000), flat, target, cv=4, method="predict_proba")
        return roc_auc_score(target, p[:, 1])

    finding, shortcut = probe(positive), probe(drain)
    assert 0.62 < finding < shortcut  # the finding is learnable, the drain is easier


def test_chest_drain_finding_spread_fades_some_pneumothoraces(tmp_path):
    """Varying visibility lowers what the pixels say about the finding (the demo relies on this)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import cross_val_predict

    def finding_auroc(spread: float) -> float:  # cross-validated linear probe on raw pixels
        out = generate("chest_drain", tmp_path / f"s{spread}", seed=1, n=200, image_size=16, correlation=0.0,
                       finding_spread=spread)
        frame = pd.read_csv(out / "manifest.csv")
        flat = np.stack([np.asarray(Image.open(out / p), dtype=float).ravel() / 255 for p in frame["image"]])
        positive = (frame["label"] == "pneumothorax").to_numpy().astype(int)
        p = cross_val_predict(LogisticRegression(max_iter=2000), flat, positive, cv=4, method="predict_proba")
        return roc_auc_score(positive, p[:, 1])

    plain, faded = finding_auroc(0.0), finding_auroc(0.9)
    assert faded < plain - 0.05
    with pytest.raises(ValueError, match="finding_spread"):
        generate("chest_drain", tmp_path / "bad", n=20, image_size=8, finding_spread=1.5)


def test_chest_drain_deterministic(tmp_path):
    a = generate("chest_drain", tmp_path / "a", seed=5, n=30, image_size=8)
    b = generate("chest_drain", tmp_path / "b", seed=5, n=30, image_size=8)
    assert (a / "manifest.csv").read_text() == (b / "manifest.csv").read_text()
    assert (a / "images/0007.png").read_bytes() == (b / "images/0007.png").read_bytes()


def test_chest_drain_loads_and_passes_leakage(tmp_path):
    out = generate("chest_drain", tmp_path / "cd", n=60, image_size=8)
    assert detect_format(out) == "csv_manifest"
    ds = load_dataset(out)
    assert ds.classes == ["normal", "pneumothorax"] and ds.source["group_column"] == "patient_id"
    assert set(ds.metadata_columns) == {"chest_drain", "sex", "age"}
    ds, rule = assign_splits(ds)
    assert rule == "dataset's own train/val/test split kept"
    check_leakage(ds)


def test_dermoscopy_classes_imbalance_ruler(tmp_path):
    out = generate("dermoscopy", tmp_path / "d", seed=0, n=300, image_size=12)
    frame = pd.read_csv(out / "manifest.csv")
    counts = frame["label"].value_counts()
    assert set(counts.index) == {"MEL", "NV", "BCC", "BKL"} and counts.idxmax() == "NV"
    assert counts["NV"] > 2 * counts["BCC"]
    mel, other = _rate(frame, "ruler", ["train", "val"], "MEL")
    assert mel == pytest.approx(0.6, abs=0.05) and other == pytest.approx(0.2, abs=0.05)
    assert frame.groupby("lesion_id")["split"].nunique().max() == 1
    assert frame.groupby("lesion_id")["label"].nunique().max() == 1
    img = np.asarray(Image.open(out / frame["image"].iloc[0]))
    assert img.shape == (12, 12, 3)
    # classes differ in colour: mean lesion-area darkness MEL < NV < BKL
    means = {c: np.mean([np.asarray(Image.open(out / p), dtype=float)[3:9, 3:9].mean()
                         for p in frame.loc[frame.label == c, "image"][:10]]) for c in ("MEL", "NV", "BKL")}
    assert means["MEL"] < means["NV"] < means["BKL"]
    ds = load_dataset(out)
    assert ds.source["group_column"] == "lesion_id" and ds.read_image(0).shape == (12, 12, 3)


def _fake_pneumoniamnist(path, sizes=(40, 20, 20), seed=0):
    rng = np.random.default_rng(seed)
    arrays = {}
    for split, n in zip(("train", "val", "test"), sizes):
        arrays[f"{split}_images"] = rng.integers(60, 180, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (rng.random((n, 1)) < 0.7).astype(np.uint8)
    np.savez(path, **arrays)
    return path


def test_drain_overlay_on_medmnist_layout(tmp_path):
    base = _fake_pneumoniamnist(tmp_path / "pneumoniamnist.npz")
    out = generate("drain_overlay", tmp_path / "ov", base=str(base), seed=0, correlation=1.0)
    frame = pd.read_csv(out / "manifest.csv")
    assert frame["split"].value_counts().to_dict() == {"train": 40, "val": 20, "test": 20}
    assert set(frame["label"]) == {"normal", "pneumonia"}
    trainval = frame[frame.split != "test"]
    assert ((trainval.label == "pneumonia") == (trainval.chest_drain == 1)).all()  # correlation 1
    tpos, tneg = _rate(frame, "chest_drain", ["test"], "pneumonia")
    assert tpos == pytest.approx(0.5, abs=0.1) and tneg == pytest.approx(0.5, abs=0.2)
    raw = np.load(base)
    for _, row in frame.head(10).iterrows():
        img = np.asarray(Image.open(out / row["image"]))
        split, i = row["source_id"].split("_")
        original = raw[f"{split}_images"][int(i)]
        changed = img != original
        assert changed.any() == bool(row["chest_drain"])  # only the drain pixels change
        assert (img[changed] == 250).all()
    ds = load_dataset(out)
    assert ds.source["splits_given"] and "chest_drain" in ds.metadata_columns


def test_drain_overlay_max_per_split(tmp_path):
    base = _fake_pneumoniamnist(tmp_path / "p.npz")
    out = generate("drain_overlay", tmp_path / "ov", base=base, max_per_split=10, thickness=2)
    frame = pd.read_csv(out / "manifest.csv")
    assert frame["split"].value_counts().to_dict() == {"train": 10, "val": 10, "test": 10}
    out = generate("drain_overlay", tmp_path / "ov2", base=base, n=40)
    frame = pd.read_csv(out / "manifest.csv")
    assert frame["split"].value_counts().to_dict() == {"train": 20, "val": 10, "test": 10}


def test_shortcut_flags_exact_counts():
    rng = np.random.default_rng(0)
    positive = np.array([True] * 50 + [False] * 50)
    splits = np.array(["train"] * 100)
    flags = shortcut_flags(positive, splits, 0.6, rng)
    assert flags[:50].sum() == 40 and flags[50:].sum() == 10


def test_draw_drain_draws_a_line():
    rng = np.random.default_rng(0)
    img = np.zeros((28, 28), np.uint8)
    out = draw_drain(img, rng)
    ys, xs = np.nonzero(out)
    assert len(ys) >= 10 and np.ptp(ys) >= 8
    slope_fit = np.polyfit(ys, xs, 1, full=True)[1]
    assert slope_fit.size == 0 or slope_fit[0] / len(ys) < 1.0  # straight
    assert img.max() == 0  # input untouched
