"""Detection datamodule, detectors, teacher-student pseudo-labelling and the detection task backend."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
from pydantic import ValidationError

from clinagent_lab.data.base import Box
from clinagent_lab.data.detection_datamodule import DetectionDataModule
from clinagent_lab.data.formats import load_dataset
from clinagent_lab.data.synth.wrist import grazpedwri
from clinagent_lab.errors import DataValidationError, RecipeError, UnknownNameError
from clinagent_lab.models.detector import DETECTORS, WristDetector, pseudo_label
from clinagent_lab.notebooks.progress import TimeBudget
from clinagent_lab.recipe import Recipe, recipe_error
from clinagent_lab.spec import MetricSpec, TaskSpec
from clinagent_lab.tasks import get_backend
from clinagent_lab.tasks import detection as backend

SIZE = 64
FRACTURE = 3


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _split_by_patient(ds, fractions=(0.6, 0.2)):
    patients = sorted(ds.table["group_id"].unique())
    n_train, n_val = int(len(patients) * fractions[0]), int(len(patients) * fractions[1])
    which = {p: "train" if k < n_train else "val" if k < n_train + n_val else "test"
             for k, p in enumerate(patients)}
    ds.table["split"] = ds.table["group_id"].map(which).astype(object)
    return ds


@pytest.fixture(scope="module")
def wrist(tmp_path_factory):
    root = grazpedwri(tmp_path_factory.mktemp("wrist") / "data", seed=1, n=30, image_size=SIZE,
                      box_fraction=0.4)
    return _split_by_patient(load_dataset(root))


def _recipe(**changes) -> Recipe:
    base = {"task_type": "detection", "classes": ["no_fracture", "fracture"],
            "model": {"architecture": "fasterrcnn_small_cnn"},
            "data": {"image_size": SIZE, "batch_size": 4}, "augment": {"preset": "light"},
            "training": {"max_epochs": 1, "accelerator": "cpu"}}
    for key, value in changes.items():
        base.setdefault(key, {}).update(value) if isinstance(value, dict) else base.__setitem__(key, value)
    return Recipe.model_validate(base)


SPEC = TaskSpec(task_type="detection", target_classes=["fracture"], primary_metric=MetricSpec(name="map50"))


def _trainer(**kwargs) -> L.Trainer:
    opts = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                enable_model_summary=False, accelerator="cpu", num_sanity_val_steps=0)
    opts.update(kwargs)
    return L.Trainer(**opts)


# --- datamodule -----------------------------------------------------------------------------------------

def test_train_rows_follow_supervision(wrist) -> None:
    dm = DetectionDataModule(wrist, _recipe())
    table = wrist.table
    train = table[table["split"] == "train"]
    boxed = train["image_id"].isin(wrist.boxes)
    expected = sorted(train.index[boxed | (train["label"] == 0)])
    assert dm.train_rows() == expected
    unboxed_pos = sorted(train.index[~boxed & (train["label"] == 1)])
    assert dm.unboxed_positive_rows() == unboxed_pos and unboxed_pos
    summary = dm.supervision_summary()
    assert summary["skipped"] == len(unboxed_pos) and summary["train_images"] == len(train)
    dm.set_pseudo_boxes({table.loc[unboxed_pos[0], "image_id"]: [Box(1, 1, 9, 9, FRACTURE)]})
    assert dm.train_rows() == sorted(expected + [unboxed_pos[0]])


def test_batches_hold_resized_images_and_boxes(wrist) -> None:
    dm = DetectionDataModule(wrist, _recipe(data={"image_size": 32}, augment={"preset": "none"}))
    images, targets, metas = next(iter(dm.dataloader_for("val")))
    assert images[0].shape == (3, 32, 32) and images[0].dtype == torch.float32 and float(images[0].max()) <= 1
    for target, meta in zip(targets, metas):
        original = wrist.boxes.get(meta["image_id"], [])
        assert meta["annotated"] == (meta["image_id"] in wrist.boxes)
        assert meta["orig_size"] == (SIZE, SIZE) and meta["size"] == (32, 32)
        expected = np.array([[b.x1, b.y1, b.x2, b.y2] for b in original]).reshape(-1, 4) / 2
        assert target["boxes"].numpy() == pytest.approx(expected, abs=1e-3)
        assert target["labels"].tolist() == [b.label + 1 for b in original]


def test_test_split_is_refused_unless_included(wrist) -> None:
    with pytest.raises(DataValidationError, match="test split"):
        DetectionDataModule(wrist, _recipe()).dataloader_for("test")
    assert len(DetectionDataModule(wrist, _recipe(), include_test=True).dataloader_for("test").dataset) > 0


def test_unsplit_data_is_rejected(wrist) -> None:
    unsplit = load_dataset(wrist.root)
    with pytest.raises(DataValidationError, match="no split"):
        DetectionDataModule(unsplit, _recipe())


# --- detectors --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("architecture", DETECTORS.names())
def test_every_detector_trains_one_fast_dev_run_step(wrist, architecture: str) -> None:
    recipe = _recipe(model={"architecture": architecture}, data={"batch_size": 2})
    dm = backend.make_datamodule(wrist, recipe, SPEC)
    module = backend.make_module(recipe, wrist, SPEC)
    before = [p.detach().clone() for p in module.parameters()]
    trainer = _trainer(fast_dev_run=True)
    trainer.fit(module, datamodule=dm)
    assert torch.isfinite(trainer.callback_metrics["train_loss"])
    assert "val_map50" in trainer.callback_metrics
    assert any(not torch.equal(a, b) for a, b in zip(before, module.parameters()))


def test_unknown_architecture_lists_known_names() -> None:
    # refused when the Recipe is validated, naming the detectors there are
    with pytest.raises(ValidationError) as info:
        _recipe(model={"architecture": "yolo_v99"})
    error = recipe_error(info.value)
    assert "yolo_v99" in str(error) and error.where == "field 'model.architecture'"
    assert "fasterrcnn_mobilenet" in error.fix
    # the detector registry itself names them too (the kernel's check, for a name that reaches it)
    with pytest.raises(UnknownNameError, match="fasterrcnn_mobilenet"):
        DETECTORS.get("yolo_v99")


def test_detector_reloads_from_checkpoint(wrist, tmp_path: Path) -> None:
    recipe = _recipe()
    module = backend.make_module(recipe, wrist, SPEC)
    trainer = _trainer(max_epochs=1, limit_train_batches=1, limit_val_batches=1)
    trainer.fit(module, datamodule=backend.make_datamodule(wrist, recipe, SPEC))
    trainer.save_checkpoint(tmp_path / "model.ckpt")
    loaded = WristDetector.load_from_checkpoint(tmp_path / "model.ckpt", map_location="cpu",
                                                weights_only=False)
    assert loaded.box_classes == wrist.box_classes and loaded.target_class == "fracture"
    for a, b in zip(module.state_dict().values(), loaded.state_dict().values()):
        assert torch.equal(a, b)
    weights = tmp_path / "weights.pt"
    torch.save(module.model.state_dict(), weights)
    warm = backend.make_module(_recipe(model={"pretrained_path": str(weights)}), wrist, SPEC)
    for a, b in zip(warm.model.state_dict().values(), module.model.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(RecipeError, match="not found"):
        backend.make_module(_recipe(model={"pretrained_path": str(tmp_path / "nope.pt")}), wrist, SPEC)


# --- pseudo labels ----------------------------------------------------------------------------------------

def test_pseudo_label_gives_every_unboxed_positive_a_fracture_box(wrist) -> None:
    recipe = _recipe(supervision={"kind": "mixed", "pseudo_label": True, "pseudo_threshold": 0.99})
    dm = backend.make_datamodule(wrist, recipe, SPEC)
    teacher = backend.make_module(recipe, wrist, SPEC)
    _trainer(max_epochs=1, limit_val_batches=0).fit(teacher, datamodule=dm)
    teacher.train()
    strict = pseudo_label(teacher, dm)
    assert teacher.training  # mode restored
    ids = wrist.table["image_id"].to_numpy()[dm.unboxed_positive_rows()].tolist()
    assert sorted(strict) == sorted(ids)  # at least the top box, even when no score reaches .99
    for boxes in strict.values():
        assert len(boxes) >= 1 and all(b.label == FRACTURE for b in boxes)
        assert all(0 <= b.x1 < b.x2 <= SIZE and 0 <= b.y1 < b.y2 <= SIZE for b in boxes)
    loose = pseudo_label(teacher, dm, threshold=1e-6)
    assert sorted(loose) == sorted(ids)
    assert sum(map(len, loose.values())) > sum(map(len, strict.values()))


def test_fit_runs_teacher_then_student_on_all(wrist) -> None:
    recipe = _recipe(supervision={"kind": "mixed", "pseudo_label": True, "pseudo_threshold": 0.5})
    dm = backend.make_datamodule(wrist, recipe, SPEC)
    module = backend.make_module(recipe, wrist, SPEC)
    n_before = len(dm.train_rows())
    budget = TimeBudget(1000.0)
    trainer = _trainer(max_epochs=1, limit_val_batches=1, callbacks=[budget])
    out = backend.fit(module, dm, trainer, teacher_trainer=_trainer(max_epochs=1, limit_val_batches=0))
    assert out is module and trainer.current_epoch == 1
    summary = module.pseudo_label_summary
    # the teacher and the pseudo-labelling came out of the student's time budget
    assert summary["teacher_s"] > 0 and 1000.0 - budget.seconds == pytest.approx(summary["teacher_s"], abs=0.051)
    assert summary["candidates"] == len(dm.unboxed_positive_rows())
    assert summary["images"] == summary["candidates"]
    assert len(dm.train_rows()) == n_before + summary["images"]
    assert len(trainer.train_dataloader.dataset) == len(dm.train_rows())


# --- task backend -------------------------------------------------------------------------------------------

def test_backend_registered_with_template() -> None:
    b = get_backend("detection")
    assert b.template == "detection.ipynb" and b.evaluate is backend.evaluate


def test_predict_evaluate_save_load(wrist, tmp_path: Path) -> None:
    recipe = _recipe()
    dm = backend.make_datamodule(wrist, recipe, SPEC)
    module = backend.make_module(recipe, wrist, SPEC)
    preds = backend.predict(module, dm, "val")
    val = wrist.table[wrist.table["split"] == "val"]
    assert [p["image_id"] for p in preds] == val["image_id"].tolist()
    for p in preds:
        boxes = np.asarray(p["boxes"]).reshape(-1, 4)
        assert len(boxes) == len(p["scores"]) == len(p["labels"])
        assert (boxes >= -1e-3).all() and (boxes <= SIZE + 1e-3).all()
    metrics = backend.evaluate(preds, recipe, SPEC, wrist, threshold=0.5)
    assert metrics["n_annotated"] == int(val["image_id"].isin(wrist.boxes).sum())
    assert metrics["n_predicted"] == len(val)
    assert set(metrics) >= {"map50", "ap50_per_class", "sensitivity_at_fp", "image_auroc", "primary",
                            "operating_point"}
    path = backend.save_predictions(preds, tmp_path / "val_predictions.json")
    assert backend.load_predictions(path) == preds


def test_evaluate_perfect_predictions_scores_one(wrist) -> None:
    val = wrist.table[wrist.table["split"] == "val"]
    preds = []
    for image_id, label in zip(val["image_id"], val["label"]):
        boxes = wrist.boxes.get(image_id, [])
        preds.append({"image_id": image_id, "boxes": [[b.x1, b.y1, b.x2, b.y2] for b in boxes],
                      "scores": [1.0] * len(boxes), "labels": [b.label for b in boxes],
                      "image_score": float(label)})
    spec_auroc = SPEC.model_copy(update={"primary_metric": MetricSpec(name="auroc")})
    metrics = backend.evaluate(preds, _recipe(), spec_auroc, wrist)
    assert metrics["map50"] == pytest.approx(1.0)
    assert metrics["primary_metric"] == "auroc" and metrics["primary"] == metrics["image_auroc"]


def test_unsupported_hooks_are_refused(wrist) -> None:
    with pytest.raises(RecipeError, match="loss"):
        backend.make_module(_recipe(), wrist, SPEC, custom_loss=lambda logits, labels: logits.sum())
    with pytest.raises(RecipeError, match="sampler"):
        backend.make_datamodule(wrist, _recipe(), SPEC, sample_weights=lambda labels, groups: labels)
