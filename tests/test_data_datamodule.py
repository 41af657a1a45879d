"""Transforms, samplers and the Lightning datamodule on tiny synthetic data."""

from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch

from clinagent_lab.data.datamodule import ImageDataModule, group_codes_for
from clinagent_lab.data.formats import load_dataset
from clinagent_lab.data.images import to_channels
from clinagent_lab.data.samplers import build_sampler, sample_weights
from clinagent_lab.data.synth import generate
from clinagent_lab.data.transforms import build_transforms, normalise_images
from clinagent_lab.errors import DataValidationError, SessionError
from clinagent_lab.recipe import AugmentConfig, Recipe, apply_patch


@pytest.fixture(scope="module")
def chest(tmp_path_factory):
    return load_dataset(generate("chest_drain", tmp_path_factory.mktemp("cd"), n=60, image_size=8, seed=0))


@pytest.fixture(scope="module")
def derm(tmp_path_factory):
    return load_dataset(generate("dermoscopy", tmp_path_factory.mktemp("derm"), n=48, image_size=8, seed=0))


def recipe(classes, **changes) -> Recipe:
    base = Recipe(task_type="binary_classification" if len(classes) == 2 else "multiclass_classification",
                  classes=list(classes))
    return apply_patch(base, {"data.image_size": 16, "data.batch_size": 8, **changes})


# ------------------------------------------------------------------------------------------------ transforms


def _names(compose):
    return [type(t).__name__ for t in compose.transforms]


def test_transform_policies_per_modality():
    aug = AugmentConfig(preset="medium")
    chest = _names(build_transforms(aug, 16, 1, "chest_xray", train=True))
    assert "VerticalFlip" not in chest and "HorizontalFlip" in chest and "ColorJitter" not in chest
    assert chest[:2] == ["LongestMaxSize", "PadIfNeeded"] and chest[-1] == "ToTensorV2" and "Normalize" not in chest
    asked = _names(build_transforms(AugmentConfig(preset="medium", vertical_flip=True), 16, 1, "chest_xray"))
    assert "VerticalFlip" in asked
    derm = _names(build_transforms(aug, 16, 3, "dermoscopy", train=True))
    assert {"HorizontalFlip", "VerticalFlip", "RandomRotate90", "ColorJitter"} <= set(derm)
    assert derm[0] == "Resize"
    assert _names(build_transforms(AugmentConfig(preset="none"), 16, 3, "dermoscopy")) == ["Resize", "ToTensorV2"]
    evaluation = build_transforms(aug, 16, 3, "dermoscopy", train=False, normalise=True)
    assert _names(evaluation) == ["Resize", "Normalize", "ToTensorV2"]


def test_preset_scales_magnitudes():
    def rotate_limit(preset):
        compose = build_transforms(AugmentConfig(preset=preset, rotate_degrees=20), 16, 1, "other")
        affine = next(t for t in compose.transforms if isinstance(t, A.Affine))
        return max(abs(v) for v in affine.rotate)

    assert rotate_limit("light") == pytest.approx(10) and rotate_limit("medium") == pytest.approx(20)
    assert rotate_limit("strong") == pytest.approx(30)


def test_eval_transform_keeps_aspect_for_xray_and_normalises():
    image = np.full((8, 16, 1), 255, np.uint8)
    pixels = build_transforms(AugmentConfig(), 16, 1, "chest_xray", train=False)(image=image)["image"]
    assert pixels.shape == (1, 16, 16) and pixels.dtype == torch.uint8
    assert pixels[0, 8, 8] == 255 and pixels[0, 0, 8] == 0  # padded rows are black
    out = normalise_images(pixels)
    assert out.dtype == torch.float32 and out[0, 8, 8] == 1.0 and out[0, 0, 8] == -1.0
    cpu = build_transforms(AugmentConfig(), 16, 1, "chest_xray", train=False, normalise=True)(image=image)["image"]
    assert cpu.dtype == torch.float32 and torch.equal(cpu, out)
    assert normalise_images(out) is out  # float images count as normalised: the step is safe to repeat
    squashed = build_transforms(AugmentConfig(), 16, 1, "other", train=False)(image=image)["image"]
    assert torch.equal(squashed, torch.full_like(squashed, 255))


def test_train_transform_seeded():
    image = np.random.default_rng(0).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    a = build_transforms(AugmentConfig(preset="strong"), 16, 3, "dermoscopy", seed=3)
    b = build_transforms(AugmentConfig(preset="strong"), 16, 3, "dermoscopy", seed=3)
    assert all(torch.equal(a(image=image)["image"], b(image=image)["image"]) for _ in range(3))


# -------------------------------------------------------------------------------------------------- samplers


def test_group_balanced_weights_equal_mass_per_cell():
    labels = np.array([0] * 40 + [1] * 10)
    groups = np.array([0] * 36 + [1] * 4 + [0] * 1 + [1] * 9)
    w = sample_weights("group_balanced", labels, groups)
    for y in (0, 1):
        for g in (0, 1):
            assert w[(labels == y) & (groups == g)].sum() == pytest.approx(0.25)
    assert sample_weights("random", labels) is None


def _draw(sampler, epochs=40):
    return np.concatenate([np.fromiter(iter(sampler), dtype=int) for _ in range(epochs)])


def test_class_balanced_sampler_balances_empirically():
    labels = np.array([0] * 80 + [1] * 20)
    drawn = labels[_draw(build_sampler("class_balanced", labels, seed=0))]
    assert drawn.mean() == pytest.approx(0.5, abs=0.03)
    again = labels[_draw(build_sampler("class_balanced", labels, seed=0))]
    assert np.array_equal(drawn, again)  # seeded


def test_group_balanced_sampler_balances_cells_empirically():
    labels = np.array([0] * 40 + [1] * 40)
    groups = np.array([0] * 36 + [1] * 4 + [0] * 4 + [1] * 36)  # the shortcut: group == label 90% of the time
    idx = _draw(build_sampler("group_balanced", labels, groups, seed=1))
    cells = labels[idx] * 2 + groups[idx]
    shares = np.bincount(cells, minlength=4) / len(cells)
    np.testing.assert_allclose(shares, 0.25, atol=0.03)
    # ... and the group no longer predicts the label in the drawn stream
    assert abs(np.corrcoef(labels[idx], groups[idx])[0, 1]) < 0.05


def test_group_balanced_without_groups_falls_back():
    with pytest.warns(UserWarning, match="balancing classes only"):
        w = sample_weights("group_balanced", np.array([0, 0, 0, 1]), np.full(4, -1))
    assert w[3] == pytest.approx(0.5)


def test_group_codes_missing_and_numeric_binning():
    import pandas as pd

    codes, mapping = group_codes_for(pd.Series(["F", "M", None, "F"]))
    assert mapping == {"F": 0, "M": 1, "<missing>": 2} and codes.tolist() == [0, 1, 2, 0]
    codes, mapping = group_codes_for(pd.Series(np.arange(40)))
    assert len(mapping) == 4 and np.bincount(codes).tolist() == [10, 10, 10, 10]


# ------------------------------------------------------------------------------------------------ datamodule


def test_device_side_normalisation_gives_the_cpu_normalised_inputs(derm):
    """The model's inputs are the ones Normalize made in the workers (to float rounding): uint8 augmented batches
    normalised by ``ImageClassifier.on_after_batch_transfer`` against the same seeded augmentation, normalised on
    the CPU in the dataset, training and evaluation batches."""
    from clinagent_lab.models.classifier import ImageClassifier

    r = recipe(derm.classes, **{"augment.preset": "strong", "augment.rotate_degrees": 90.0,
                                "augment.color_jitter": 0.2, "model.in_channels": 3,
                                "model.architecture": "small_cnn",
                                "training.channels_last": True})

    class CpuNormalised(ImageDataModule):  # the loader as it was: Normalize in the pipeline, float batches
        def _transform(self, train):
            return build_transforms(r.augment, 16, 3, "dermoscopy", train=train, seed=r.seed if train else None,
                                    normalise=True)

    module = ImageClassifier(r.model_dump(mode="json"))
    new, old = ImageDataModule(derm, r, modality="dermoscopy"), CpuNormalised(derm, r, modality="dermoscopy")
    for a, b in [*zip(new.train_dataloader(), old.train_dataloader()), (next(iter(new.val_dataloader())),
                                                                           next(iter(old.val_dataloader())))]:
        assert a["image"].dtype == torch.uint8 and b["image"].dtype == torch.float32
        assert torch.equal(a["index"], b["index"])
        moved = module.on_after_batch_transfer(dict(a), 0)["image"]
        assert moved.dtype == torch.float32 and moved.is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(moved, b["image"], atol=1e-6, rtol=0)
        before = module.on_after_batch_transfer(dict(b), 0)["image"]
        assert torch.equal(before, b["image"])  # float batches are left as they are


def test_float_pixels_from_a_custom_transform_are_normalised_in_the_dataset(chest):
    r = recipe(chest.classes, **{"augment.preset": "none"})
    as_float = ImageDataModule(chest, r, extra_transforms=lambda train: [A.ToFloat(max_value=1.0, p=1.0)])
    plain = ImageDataModule(chest, r)
    a, b = next(iter(as_float.val_dataloader())), next(iter(plain.val_dataloader()))
    assert a["image"].dtype == torch.float32 and b["image"].dtype == torch.uint8
    torch.testing.assert_close(a["image"], normalise_images(b["image"]), atol=1e-6, rtol=0)



def test_batches_shapes_dtypes_groups(chest):
    r = recipe(chest.classes, **{"model.in_channels": 3})
    dm = ImageDataModule(chest, r, modality="chest_xray", group_column="chest_drain")
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (8, 3, 16, 16) and batch["image"].dtype == torch.uint8  # normalised on device
    assert batch["label"].dtype == torch.long and batch["index"].dtype == torch.long
    assert batch["group"].dtype == torch.long
    rows = batch["index"].numpy()
    assert (chest.table["split"].iloc[rows] == "train").all()
    np.testing.assert_array_equal(batch["label"].numpy(), chest.table["label"].iloc[rows])
    np.testing.assert_array_equal(batch["group"].numpy(), chest.table["chest_drain"].iloc[rows])
    assert dm.group_codes == {"0": 0, "1": 1}
    assert torch.equal(batch["image"][:, 0], batch["image"][:, 1])  # grayscale repeated to RGB
    counts = dm.class_counts("train")
    train_labels = chest.table.label[chest.table.split == "train"]
    assert counts.tolist() == np.bincount(train_labels, minlength=2).tolist()


def test_debias_column_wins_and_no_group_is_minus_one(chest):
    r = recipe(chest.classes, **{"debias.column": "sex"})
    dm = ImageDataModule(chest, r, group_column="chest_drain")
    batch = next(iter(dm.val_dataloader()))
    expected = chest.table["sex"].iloc[batch["index"].numpy()].map({"F": 0, "M": 1}).to_numpy()
    np.testing.assert_array_equal(batch["group"].numpy(), expected)
    plain = ImageDataModule(chest, recipe(chest.classes))
    assert (next(iter(plain.val_dataloader()))["group"] == -1).all()
    with pytest.raises(DataValidationError, match="not in the data"):
        ImageDataModule(chest, recipe(chest.classes, **{"debias.column": "hospital"}))


def test_rgb_to_gray_eval_values_match_manual_pipeline(derm):
    r = recipe(derm.classes, **{"model.in_channels": 1})
    dm = ImageDataModule(derm, r, modality="dermoscopy")
    batch = next(iter(dm.val_dataloader()))
    assert batch["image"].shape[1:] == (1, 16, 16)
    row = int(batch["index"][0])
    gray = to_channels(derm.read_image(row), 1)
    manual = A.Compose([A.Resize(16, 16, area_for_downscale="image")])(image=gray)["image"]
    assert torch.equal(batch["image"][0, 0], torch.as_tensor(manual).reshape(16, 16))
    expected = (torch.as_tensor(manual, dtype=torch.float32).reshape(16, 16) / 255 - 0.5) / 0.5
    assert torch.allclose(normalise_images(batch["image"])[0, 0], expected, atol=1e-6)


def test_cache_on_and_off_give_the_same_eval_batches(chest):
    on = ImageDataModule(chest, recipe(chest.classes, **{"data.cache_images": True}), modality="chest_xray")
    off = ImageDataModule(chest, recipe(chest.classes, **{"data.cache_images": False}), modality="chest_xray")
    on.setup()
    off.setup()
    assert on.datasets["val"].cache is not None and off.datasets["val"].cache is None
    a, b = next(iter(on.val_dataloader())), next(iter(off.val_dataloader()))
    assert torch.allclose(a["image"], b["image"]) and torch.equal(a["index"], b["index"])


def test_test_split_only_when_asked(chest):
    dm = ImageDataModule(chest, recipe(chest.classes))
    dm.setup()
    assert set(dm.datasets) == {"train", "val"}
    with pytest.raises(SessionError, match="test split"):
        dm.test_dataloader()
    with pytest.raises(SessionError):
        dm.class_counts("test")
    assert dm.test_reads == 0
    final = ImageDataModule(chest, recipe(chest.classes), include_test=True)
    final.setup()
    loader = final.test_dataloader()
    assert final.test_reads == 1
    n_test = int((chest.table["split"] == "test").sum())
    assert sum(len(b["index"]) for b in loader) == n_test
    final.dataloader_for("test")
    assert final.test_reads == 2


def test_dataloader_for_train_is_ordered_and_unaugmented(chest):
    r = recipe(chest.classes, **{"augment.preset": "strong"})
    dm = ImageDataModule(chest, r, modality="chest_xray")
    first = torch.cat([b["index"] for b in dm.dataloader_for("train")])
    assert first.tolist() == dm.rows_for("train").tolist()
    x1 = next(iter(dm.dataloader_for("train")))["image"]
    x2 = next(iter(dm.dataloader_for("train")))["image"]
    assert torch.equal(x1, x2)
    assert torch.equal(next(iter(dm.predict_dataloader()))["index"], next(iter(dm.val_dataloader()))["index"])


def test_max_train_samples_deterministic(chest):
    r = recipe(chest.classes, **{"data.max_train_samples": 10, "seed": 4})
    a = ImageDataModule(chest, r).rows_for("train")
    b = ImageDataModule(chest, r).rows_for("train")
    assert len(a) == 10 and np.array_equal(a, b)
    assert set(a) <= set(np.flatnonzero(chest.table["split"] == "train"))
    assert ImageDataModule(chest, r).class_counts().sum() == 10


def test_sampler_from_recipe_balances_training_stream(derm):
    r = recipe(derm.classes, **{"data.sampler": "class_balanced", "data.batch_size": 16})
    dm = ImageDataModule(derm, r, modality="dermoscopy")
    loader = dm.train_dataloader()
    labels = np.concatenate([b["label"].numpy() for _ in range(30) for b in loader])  # 30 epochs
    shares = np.bincount(labels, minlength=4) / len(labels)
    np.testing.assert_allclose(shares, 0.25, atol=0.04)
    plain = ImageDataModule(derm, recipe(derm.classes, **{"data.batch_size": 16}), modality="dermoscopy")
    plain_labels = np.concatenate([b["label"].numpy() for b in plain.train_dataloader()])
    assert np.bincount(plain_labels).max() / len(plain_labels) > 0.4  # NV dominates without the sampler


def test_custom_hooks(chest):
    seen = {}

    def extra_transforms(train):
        seen["train" if train else "eval"] = True
        return [A.InvertImg(p=1.0)] if train else []

    def weights(labels, groups):
        return (labels == 1).astype(float)  # only positives

    r = recipe(chest.classes, **{"augment.preset": "none"})
    dm = ImageDataModule(chest, r, extra_transforms=extra_transforms, sample_weights=weights)
    batch = next(iter(dm.train_dataloader()))
    assert (batch["label"] == 1).all() and seen == {"train": True, "eval": True}
    plain = ImageDataModule(chest, r)
    row = int(batch["index"][0])
    k = int(np.flatnonzero(plain.rows_for("train") == row)[0])
    plain.setup()
    reference = plain.datasets["train"][k]["image"]
    assert torch.equal(batch["image"][0], 255 - reference)  # inverted
    bad = ImageDataModule(chest, r, sample_weights=lambda labels, groups: np.ones(3))
    with pytest.raises(DataValidationError, match="sample_weights"):
        bad.train_dataloader()


def test_missing_val_split_is_an_error(chest):
    import dataclasses

    table = chest.table.copy()
    table.loc[table["split"] == "val", "split"] = "train"
    with pytest.raises(DataValidationError, match="no 'val' rows"):
        ImageDataModule(dataclasses.replace(chest, table=table), recipe(chest.classes))


def test_batch_of_one_dropped(chest):
    n_train = int((chest.table["split"] == "train").sum())
    r = recipe(chest.classes, **{"data.batch_size": n_train - 1})
    sizes = [len(b["label"]) for b in ImageDataModule(chest, r).train_dataloader()]
    assert sizes == [n_train - 1]


def test_pinned_memory_follows_the_recipe_and_a_cpu_recipe_never_probes_cuda(chest, monkeypatch):
    def probe():
        raise AssertionError("a CPU recipe asked torch.cuda")

    monkeypatch.setattr(torch.cuda, "is_available", probe)
    cpu = ImageDataModule(chest, recipe(chest.classes, **{"data.pin_memory": True, "training.accelerator": "cpu"}))
    assert cpu.pin_memory is False and cpu.train_dataloader().pin_memory is False
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    gpu = {"training.accelerator": "gpu"}
    assert ImageDataModule(chest, recipe(chest.classes, **gpu, **{"data.pin_memory": True})).pin_memory is True
    assert ImageDataModule(chest, recipe(chest.classes, **gpu)).pin_memory is False  # the recipe's default
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # "gpu" asked, none visible
    assert ImageDataModule(chest, recipe(chest.classes, **gpu, **{"data.pin_memory": True})).pin_memory is False
