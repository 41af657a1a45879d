"""Where the model looks: Grad-CAM maps (captum's ``LayerGradCam``) for a stratified sample of validation
images, and, where the artefact's location is known, the share of the attribution inside it.

The sample takes images from every label x confounder cell, most from the confounder-positive negatives (a
drain on a normal radiograph: the images a shortcut turns into false alarms). Maps are computed for the
target class at the network's last convolution, upsampled to the image, negative values clipped (Grad-CAM's
ReLU); the share inside the artefact is ``sum(map * mask) / sum(map)`` per image.

Example:
    >>> import numpy as np
    >>> maps = np.zeros((2, 4, 4)); maps[0, 0, :] = 1; maps[1] = 1
    >>> masks = np.zeros((2, 4, 4), dtype=bool); masks[:, 0, :] = True
    >>> attribution_share(maps, masks).round(2).tolist()
    [1.0, 0.25]
    >>> attribution_share(np.zeros((1, 4, 4)), masks[:1]).tolist()     # no positive attribution at all
    [0.0]
    >>> stratified_sample(np.array([0, 0, 0, 1, 1]), np.array([1, 1, 0, 1, 0]), per_cell=1).tolist()
    [0, 1, 2, 3, 4]
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..data.transforms import normalise_images
from ..errors import RecipeError

__all__ = ["SALIENCY_FILE", "Saliency", "attribution_share", "gradcam", "last_conv_layer", "stratified_sample",
           "load_saliency", "compute_saliency"]

#: what :meth:`Saliency.save` writes in an iteration folder (arrays) and its summary beside it
SALIENCY_FILE = "saliency.npz"


def stratified_sample(labels: np.ndarray, groups: np.ndarray, per_cell: int = 4, focus: tuple[int, int] = (0, 1),
                      focus_factor: int = 2, seed: int = 0) -> np.ndarray:
    """Positions of a seeded sample: ``per_cell`` images of every label x group cell (``focus_factor`` times
    as many from the ``focus`` cell, by default confounder-positive negatives), sorted.

    The sample depends only on the labels, groups and seed, so every iteration of a session draws the same
    images (baseline and mitigation side by side).
    """
    labels, groups = np.asarray(labels), np.asarray(groups)
    rng = np.random.default_rng(seed)
    out = []
    for y in np.unique(labels):
        for g in np.unique(groups):
            rows = np.flatnonzero((labels == y) & (groups == g))
            k = per_cell * (focus_factor if (int(y), int(g)) == tuple(focus) else 1)
            if len(rows):
                out.append(rng.choice(rows, size=min(k, len(rows)), replace=False))
    return np.sort(np.concatenate(out)).astype(np.int64) if out else np.zeros(0, dtype=np.int64)


def attribution_share(maps: np.ndarray, masks: np.ndarray) -> np.ndarray:
    """Per image, the share of the (non-negative) attribution inside the mask.

    An image without any positive attribution for the target class (a confident negative) has none inside
    the artefact either: its share is 0.
    """
    maps = np.clip(np.asarray(maps, dtype=float), 0, None)
    total = maps.reshape(len(maps), -1).sum(1)
    inside = (maps * np.asarray(masks, dtype=bool)).reshape(len(maps), -1).sum(1)
    return inside / np.where(total > 0, total, 1.0)


def last_conv_layer(model: Any) -> Any:
    """The last ``Conv2d`` of ``model`` (Grad-CAM's layer).

    Raises:
        RecipeError: the model has no 2-D convolution (Grad-CAM needs spatial feature maps).
    """
    from torch import nn  # torch only when maps are computed

    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise RecipeError(f"{type(model).__name__} has no Conv2d layer for Grad-CAM", where="saliency",
                         fix="use a convolutional backbone, or pass the layer to attribute explicitly")
    return convs[-1]


def gradcam(model: Any, images: Any, target: int, layer: Any = None, batch_size: int = 64) -> np.ndarray:
    """``(N, H, W)`` Grad-CAM maps of class ``target`` for ``images`` ``(N, C, H, W)``, upsampled, ReLU'd."""
    from captum.attr import LayerAttribution, LayerGradCam  # optional, torch-based: only when maps are computed

    layer = layer if layer is not None else last_conv_layer(model)
    was_training = model.training
    model.eval()
    cam = LayerGradCam(model, layer)
    out = []
    try:
        for start in range(0, len(images), batch_size):
            x = images[start:start + batch_size].detach().clone().requires_grad_(True)
            attr = cam.attribute(x, target=int(target), relu_attributions=True)
            attr = LayerAttribution.interpolate(attr, tuple(x.shape[-2:]), interpolate_mode="bilinear")
            out.append(attr.detach().clamp_min(0).sum(1).cpu().numpy())
    finally:
        model.train(was_training)
    return np.concatenate(out) if out else np.zeros((0, *images.shape[-2:]))


@dataclass
class Saliency:
    """Maps of one model on a sample of validation images (``images`` as shown, ``HxW`` grayscale 0..1)."""

    image_ids: list[str]
    labels: np.ndarray
    groups: np.ndarray
    images: np.ndarray
    maps: np.ndarray
    masks: np.ndarray | None
    probs: np.ndarray
    target: str
    confounder: str | None = None

    @property
    def shares(self) -> np.ndarray | None:
        return None if self.masks is None else attribution_share(self.maps, self.masks)

    def summary(self) -> dict[str, Any]:
        """JSON: counts and the mean share inside the artefact (all artefact images; positive-artefact negatives)."""
        out: dict[str, Any] = {"n": len(self.image_ids), "target": self.target, "confounder": self.confounder,
                               "method": "Grad-CAM (captum LayerGradCam), last convolution"}
        shares = self.shares
        if shares is not None:
            has = self.masks.reshape(len(self.masks), -1).any(1)
            neg = has & (self.labels == 0)
            out["share_inside_artefact"] = float(np.nanmean(shares[has])) if has.any() else None
            out["share_inside_artefact_negatives"] = float(np.nanmean(shares[neg])) if neg.any() else None
            out["n_with_artefact"] = int(has.sum())
        return out

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        path = folder / SALIENCY_FILE
        arrays = {"image_ids": np.asarray(self.image_ids, dtype=str), "labels": self.labels, "groups": self.groups,
                  "images": self.images.astype(np.float16), "maps": self.maps.astype(np.float32),
                  "probs": self.probs.astype(np.float32)}
        if self.masks is not None:
            arrays["masks"] = self.masks
        np.savez_compressed(path, **arrays)
        (folder / "saliency.json").write_text(json.dumps(self.summary(), indent=1), encoding="utf-8")
        return path


def load_saliency(folder: str | Path) -> Saliency | None:
    """The maps an iteration saved (None when it saved none)."""
    folder = Path(folder)
    path = folder / SALIENCY_FILE
    if not path.is_file():
        return None
    summary = json.loads((folder / "saliency.json").read_text(encoding="utf-8"))
    with np.load(path) as z:
        return Saliency(image_ids=[str(v) for v in z["image_ids"]], labels=z["labels"], groups=z["groups"],
                        images=z["images"].astype(np.float32), maps=z["maps"], probs=z["probs"],
                        masks=z["masks"] if "masks" in z.files else None, target=summary.get("target", ""),
                        confounder=summary.get("confounder"))


def compute_saliency(model: Any, dataset: Any, target: int, target_name: str, *, masks: list | None = None,
                     image_ids: list[str] | None = None, confounder: str | None = None, per_cell: int = 4,
                     seed: int = 0) -> Saliency:
    """Grad-CAM maps of ``model`` on a stratified sample of ``dataset`` (an unaugmented ``ImageDataset``).

    Args:
        model: ``images -> logits`` module.
        dataset: items ``{"image", "label", "group"}`` with ``labels`` and ``groups`` arrays (uint8 pixels, or
            float images already normalised).
        target: class index whose score is attributed; ``target_name`` its name.
        masks: per dataset position, the artefact's ``HxW`` mask or None (read lazily: a callable
            ``position -> mask``, or a list).
        image_ids: per dataset position.
        confounder: the confounder's name (for the summary).
        per_cell, seed: the sample (:func:`stratified_sample`).
    """
    import torch  # heavy: only when maps are computed

    positions = stratified_sample(dataset.labels, dataset.groups, per_cell=per_cell, seed=seed)
    items = [dataset[int(k)] for k in positions]
    x = torch.stack([item["image"] for item in items]) if items else torch.zeros(0)
    x = x.to(next((p.device for p in model.parameters()), x.device))  # the model's device (the GPU after fit)
    x = normalise_images(x)  # the loader's uint8 pixels, normalised as in training (float images: as they are)
    maps = gradcam(model, x, target) if len(items) else np.zeros((0, 1, 1))
    with torch.no_grad():
        probs = torch.softmax(model.eval()(x), dim=1)[:, target].cpu().numpy() if len(items) else np.zeros(0)
    shown = x.mean(1).cpu().numpy() if len(items) else np.zeros((0, 1, 1))
    lo = shown.reshape(len(shown), -1).min(1)[:, None, None] if len(items) else 0
    hi = shown.reshape(len(shown), -1).max(1)[:, None, None] if len(items) else 1
    shown = (shown - lo) / np.maximum(hi - lo, 1e-6)
    mask_arr = None
    if masks is not None and len(items):
        get = masks if callable(masks) else (lambda k: masks[k])
        mask_arr = np.stack([_fit(get(int(k)), maps.shape[-2:]) for k in positions])
    ids = [str(image_ids[int(k)]) if image_ids is not None else str(int(k)) for k in positions]
    return Saliency(image_ids=ids, labels=np.asarray(dataset.labels)[positions],
                    groups=np.asarray(dataset.groups)[positions], images=shown, maps=maps, masks=mask_arr,
                    probs=probs, target=target_name, confounder=confounder)


def _fit(mask: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    if mask is None:
        return np.zeros(shape, dtype=bool)
    if mask.shape == tuple(shape):
        return mask.astype(bool)
    import cv2  # resize only when the mask's size differs from the model's input

    return cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 0
