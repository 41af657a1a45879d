"""Grad-CAM saliency: a model that reads the drain puts its attribution inside the drain's mask; the iteration
step saves maps that the results hook and the report draw."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from clinagent_lab.data.datamodule import ImageDataModule
from clinagent_lab.data.formats import load_dataset
from clinagent_lab.data.synth import generate
from clinagent_lab.data.transforms import normalise_images
from clinagent_lab.evaluation.saliency import (
    attribution_share,
    gradcam,
    last_conv_layer,
    load_saliency,
    stratified_sample,
)
from clinagent_lab.notebooks.saliency import save_iteration_saliency, validation_saliency
from clinagent_lab.recipe import Recipe, apply_patch


class BrightSpot(nn.Module):
    """Responds only to pixels brighter than ``threshold`` (the drain is drawn at 250, the anatomy stays below
    210): a pure drain detector."""

    def __init__(self, threshold: float = 0.0) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 1, 1)
        nn.init.ones_(self.conv.weight)
        nn.init.constant_(self.conv.bias, -threshold)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = torch.relu(self.conv(x)).amax(dim=(1, 2, 3))
        return torch.stack([-s, s], dim=1)


class CornerConv(nn.Conv2d):
    """A convolution whose output lives in the top-left 3 x 3 pixels only."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = super().forward(x)
        gate = torch.zeros_like(out)
        gate[..., :3, :3] = 1
        return out * gate


class Corner(nn.Module):
    """Scores the top-left corner only: reads nowhere near a drain."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = CornerConv(1, 1, 1)
        nn.init.zeros_(self.conv.weight)
        nn.init.ones_(self.conv.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = self.conv(x).sum(dim=(1, 2, 3))
        return torch.stack([-s, s], dim=1)


@pytest.fixture(scope="module")
def drains(tmp_path_factory):
    root = generate("chest_drain", tmp_path_factory.mktemp("sal") / "data", n=80, image_size=32, correlation=0.9)
    dataset = load_dataset(root)
    recipe = apply_patch(Recipe(task_type="binary_classification", classes=dataset.classes),
                         {"debias.method": "dfr", "debias.column": "chest_drain", "data.image_size": 32,
                          "model.in_channels": 1, "evaluation.positive_class": 1})
    dm = ImageDataModule(dataset, recipe, modality="xray")
    dm.setup()
    return dm


def _detector(dm) -> BrightSpot:
    """A BrightSpot whose threshold lies between the anatomy and the drain in the normalised images."""
    from clinagent_lab.data.counterfactual import mask_path, read_mask

    table, train = dm.dataset.table, dm.dataloader_for("train").dataset
    k = int(np.flatnonzero(train.groups == 1)[0])
    mask = torch.as_tensor(read_mask(mask_path(dm.dataset.root, "chest_drain", table["path"][train.rows[k]])))
    x = normalise_images(train[k]["image"])[0]  # the model sees the normalised pixels
    return BrightSpot(threshold=float(x[mask].min() + x[~mask].max()) / 2)


def test_a_drain_detector_looks_inside_the_drain_and_a_corner_reader_does_not(drains):
    detector = validation_saliency(_detector(drains), drains)
    corner = validation_saliency(Corner(), drains)
    has = detector.masks.reshape(len(detector.masks), -1).any(1)
    assert has.any() and (~has).any()  # the sample holds images with and without a drain
    assert detector.image_ids == corner.image_ids  # the same images for every model
    assert np.nanmean(detector.shares[has]) > 0.9
    assert np.nanmean(corner.shares[has]) < 0.1
    summary = detector.summary()
    assert summary["share_inside_artefact"] > 0.9 and summary["n_with_artefact"] == int(has.sum())


def test_the_sample_favours_drain_bearing_negatives():
    labels = np.array([0] * 20 + [1] * 20)
    groups = np.array([0] * 10 + [1] * 10 + [0] * 10 + [1] * 10)
    picked = stratified_sample(labels, groups, per_cell=3, seed=1)
    cells = {(y, g): int(((labels[picked] == y) & (groups[picked] == g)).sum()) for y in (0, 1) for g in (0, 1)}
    assert cells == {(0, 0): 3, (0, 1): 6, (1, 0): 3, (1, 1): 3}
    assert (picked == stratified_sample(labels, groups, per_cell=3, seed=1)).all()


def test_gradcam_is_non_negative_at_image_size():
    maps = gradcam(BrightSpot(), torch.rand(3, 1, 16, 16), target=1)
    assert maps.shape == (3, 16, 16) and (maps >= 0).all()
    assert attribution_share(np.zeros((1, 2, 2)), np.ones((1, 2, 2), dtype=bool)).tolist() == [0.0]


def test_saved_maps_feed_the_results_hook_next_to_the_baseline(drains, tmp_path):
    from clinagent_lab.widgets.saliency import saliency_png, saliency_pngs

    base_dir, kept_dir = tmp_path / "iter_01", tmp_path / "iter_02"
    base_dir.mkdir()
    kept_dir.mkdir()
    save_iteration_saliency(_detector(drains), drains, base_dir, show=False)
    save_iteration_saliency(Corner(), drains, kept_dir, show=False)
    base, kept = load_saliency(base_dir), load_saliency(kept_dir)
    assert base.summary()["share_inside_artefact"] > kept.summary()["share_inside_artefact"]
    png = saliency_png({"baseline": base, "iteration 2": kept}, tmp_path / "both.png")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and (tmp_path / "both.png").stat().st_size == len(png)

    class Results:  # what the results cell passes: an iteration folder outside a session
        folder, session_dir, iteration = kept_dir, None, 2

    assert saliency_pngs(Results()) == [kept_dir / "saliency.png"]


def test_a_model_without_convolutions_is_refused():
    from clinagent_lab.errors import RecipeError

    with pytest.raises(RecipeError, match="no Conv2d"):
        last_conv_layer(nn.Linear(3, 2))
