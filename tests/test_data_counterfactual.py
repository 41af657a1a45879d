"""Counterfactual artefact augmentation: drains removed and added where the data record their masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clinagent_lab.data.counterfactual import ArtefactSwap, has_masks, mask_path, read_mask
from clinagent_lab.data.datamodule import ImageDataModule
from clinagent_lab.data.formats import load_dataset
from clinagent_lab.data.synth import generate
from clinagent_lab.errors import DataValidationError
from clinagent_lab.recipe import Recipe, apply_patch


@pytest.fixture(scope="module")
def drains(tmp_path_factory):
    root = generate("chest_drain", tmp_path_factory.mktemp("cf") / "data", n=80, image_size=32, correlation=0.9)
    return load_dataset(root)


def _module(ds, p: float = 0.5, cache: bool = False) -> ImageDataModule:
    recipe = apply_patch(Recipe(task_type="binary_classification", classes=ds.classes),
                         {"debias.method": "counterfactual", "debias.column": "chest_drain",
                          "debias.counterfactual": p, "data.image_size": 32, "model.in_channels": 1,
                          "data.cache_images": cache})
    dm = ImageDataModule(ds, recipe, modality="xray")
    dm.setup()
    return dm


def test_the_generator_records_every_drain(drains):
    table = drains.table
    assert has_masks(drains.root, "chest_drain")
    for path, drain in zip(table["path"], table["chest_drain"]):
        mask = read_mask(mask_path(drains.root, "chest_drain", path))
        assert (mask is not None) == bool(drain)
        if drain:  # the mask marks the drawn bright pixels
            from PIL import Image

            image = np.asarray(Image.open(path))
            assert mask.any() and (image[mask] == 250).all()


@pytest.mark.parametrize("cache", [False, True])
def test_half_the_images_swap_and_the_drain_no_longer_tracks_the_label(drains, cache):
    train = _module(drains, cache=cache).datasets["train"]
    assert isinstance(train.counterfactual, ArtefactSwap)
    torch.manual_seed(0)
    seen = np.array([int(train[k]["group"]) for k in range(len(train)) for _ in range(8)])
    labels = np.repeat(train.labels, 8)
    before = [train.groups[train.labels == y].mean() for y in (0, 1)]
    after = [seen[labels == y].mean() for y in (0, 1)]
    assert abs(before[1] - before[0]) > 0.6  # the drain tracks the label in the training data...
    assert abs(after[1] - after[0]) < 0.2  # ...and no longer in what the network is shown


def test_removed_drains_are_inpainted_and_added_ones_are_real_drain_pixels(drains):
    train = _module(drains).datasets["train"]
    swap = train.counterfactual
    with_drain = int(np.flatnonzero(train.groups == 1)[0])
    without = int(np.flatnonzero(train.groups == 0)[0])
    raw = train.raw_image(with_drain)
    mask = swap.mask(with_drain, raw.shape[:2])
    removed, group = swap(with_drain, raw, train.raw_image, (0.0, 0.0))
    assert group == 0 and (removed[mask] < 250).all() and (removed[~mask] == raw[~mask]).all()
    added, group = swap(without, train.raw_image(without), train.raw_image, (0.0, 0.0))
    donor = int(swap.donors[0])
    donor_mask = swap.mask(donor, raw.shape[:2])
    assert group == 1 and (added[donor_mask] == train.raw_image(donor)[donor_mask]).all()
    unchanged, group = swap(without, train.raw_image(without), train.raw_image, (0.9, 0.0))
    assert group == 0 and (unchanged == train.raw_image(without)).all()
    # scoring the training images (refits, figures) sees them as they are
    plain = _module(drains).dataloader_for("train").dataset
    assert plain.counterfactual is None


def test_without_masks_the_augmentation_is_refused(drains, tmp_path):
    import copy

    moved = copy.copy(drains)
    moved.root = tmp_path
    with pytest.raises(DataValidationError, match="holds no masks"):
        _module(moved)
