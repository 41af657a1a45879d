"""Image transforms per modality, built from a Recipe's :class:`~clinagent_lab.recipe.AugmentConfig`.

Choices per modality (:data:`MODALITY_POLICIES`):

- ``chest_xray``: keep the aspect ratio (resize the long side, pad with black): heart size and lung
  proportions are findings. Vertical flips only when the recipe asks (``vertical_flip``; off by default): an
  upside-down chest radiograph never occurs. Horizontal flips follow the recipe (they create dextrocardia-like
  anatomy; cheap invariance on small data). No colour jitter (grayscale).
- ``musculoskeletal_xray``: as chest, plus both flips allowed by the recipe (limbs appear in any laterality);
  no 90-degree rotations by default.
- ``dermoscopy``: squash-resize to a square (lesion colour and texture matter more than aspect ratio);
  dermoscopy has no canonical orientation, so horizontal and vertical flips and 90-degree rotations are always
  on; reflect-padding after rotation (skin continues past the border); colour jitter (magnitude
  ``color_jitter``, 0.1 when the recipe leaves it at 0) to cover camera and lighting differences.
- ``other``: squash-resize, recipe flags as given.

Presets scale the recipe's magnitudes (rotation degrees, scale, brightness/contrast, colour jitter) and
probabilities: ``none`` turns augmentation off, ``light`` x0.5, ``medium`` x1, ``strong`` x1.5. Evaluation
transforms (``train=False``) only resize.

Pixels stay uint8 through the whole pipeline (albumentations' fast path), which ends with ``ToTensorV2`` (HWC
uint8 -> CHW uint8 tensor, no copy). The normalisation to the model's input, ``(pixel / 255 - 0.5) / 0.5`` (pixels
to [-1, 1], :data:`NORMALISATION`), is :func:`normalise_images`, done on the batch after it reaches the device
(``ImageClassifier.on_after_batch_transfer``): a quarter of the bytes through collation, pinned memory and the
host-to-device copy, and no float work in the loader workers. ``build_transforms(..., normalise=True)`` gives
the normalised float tensor on the CPU instead (the same values, to float rounding).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..recipe import AugmentConfig

__all__ = ["ModalityPolicy", "MODALITY_POLICIES", "PRESET_SCALE", "NORMALISATION", "build_transforms",
           "resize_transforms", "normalise_images"]

#: the model's input normalisation, per channel: ``(pixel - mean * max_pixel_value) / (std * max_pixel_value)``
#: (albumentations ``Normalize``'s definition), pixels 0-255 to [-1, 1]
NORMALISATION = {"mean": 0.5, "std": 0.5, "max_pixel_value": 255.0}


@dataclass(frozen=True)
class ModalityPolicy:
    keep_aspect: bool
    """Letterbox (long side to size, pad) instead of squashing to a square."""
    always_vertical_flip: bool = False
    rotate90: bool = False
    color_jitter_default: float = 0.0
    """Colour-jitter magnitude used when the recipe's is 0 (3-channel images only)."""
    reflect_border: bool = False


MODALITY_POLICIES: dict[str, ModalityPolicy] = {
    "chest_xray": ModalityPolicy(keep_aspect=True),
    "musculoskeletal_xray": ModalityPolicy(keep_aspect=True),
    "dermoscopy": ModalityPolicy(keep_aspect=False, always_vertical_flip=True, rotate90=True,
                                 color_jitter_default=0.1, reflect_border=True),
    "other": ModalityPolicy(keep_aspect=False),
}

PRESET_SCALE: dict[str, tuple[float, float]] = {
    # preset -> (magnitude factor, probability of each photometric/geometric transform)
    "none": (0.0, 0.0),
    "light": (0.5, 0.3),
    "medium": (1.0, 0.5),
    "strong": (1.5, 0.7),
}


def _policy(modality: str) -> ModalityPolicy:
    return MODALITY_POLICIES.get(modality, MODALITY_POLICIES["other"])


def resize_transforms(image_size: int, modality: str = "other") -> list[Any]:
    """The deterministic resize step for ``modality`` (also used to fill the image cache)."""
    import albumentations as A  # augmentation stack: only to build a loader
    import cv2  # OpenCV: only to build a loader

    if _policy(modality).keep_aspect:
        return [A.LongestMaxSize(max_size=image_size, area_for_downscale="image"),
                A.PadIfNeeded(min_height=image_size, min_width=image_size, border_mode=cv2.BORDER_CONSTANT,
                              fill=0)]
    return [A.Resize(image_size, image_size, area_for_downscale="image")]


def _augmentations(augment: AugmentConfig, channels: int, policy: ModalityPolicy) -> list[Any]:
    import albumentations as A  # augmentation stack: only to build a loader
    import cv2  # OpenCV: only to build a loader

    factor, p = PRESET_SCALE[augment.preset]
    if factor == 0.0:
        return []
    ops: list[Any] = []
    if augment.horizontal_flip or policy.always_vertical_flip:
        ops.append(A.HorizontalFlip(p=0.5))
    if augment.vertical_flip or policy.always_vertical_flip:
        ops.append(A.VerticalFlip(p=0.5))
    if policy.rotate90:
        ops.append(A.RandomRotate90(p=0.5))
    rotate = min(augment.rotate_degrees * factor, 180.0)
    scale = min(augment.scale * factor, 0.75)
    if rotate > 0 or scale > 0:
        border = cv2.BORDER_REFLECT_101 if policy.reflect_border else cv2.BORDER_CONSTANT
        ops.append(A.Affine(rotate=(-rotate, rotate), scale=(1.0 - scale, 1.0 + scale), border_mode=border,
                            fill=0, p=p))
    bc = min(augment.brightness_contrast * factor, 0.9)
    if bc > 0:
        ops.append(A.RandomBrightnessContrast(brightness_limit=bc, contrast_limit=bc, p=p))
    jitter = min((augment.color_jitter or policy.color_jitter_default) * factor, 0.5)
    if channels == 3 and jitter > 0:
        ops.append(A.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter,
                                 hue=min(jitter / 4, 0.5), p=p))
    return ops


def build_transforms(augment: AugmentConfig, image_size: int, channels: int, modality: str = "other",
                     train: bool = True, seed: int | None = None, extra: list[Any] | None = None,
                     normalise: bool = False):
    """An ``albumentations.Compose`` taking ``image=HxWxC uint8`` and giving a CHW uint8 tensor (pixels 0-255;
    :func:`normalise_images` turns a batch of them into the model's input).

    Args:
        augment: the recipe's augmentation settings.
        image_size: output side in pixels (square).
        channels: 1 or 3; the input must already have this many channels.
        modality: ``chest_xray``, ``musculoskeletal_xray``, ``dermoscopy`` or ``other`` (see module docs).
        train: add augmentations; False gives the deterministic evaluation pipeline.
        seed: seed of the pipeline's random state (reproducible augmentation).
        extra: further albumentations transforms (a recipe's custom ``extra_transforms`` hook), applied after
            the built-in ones (on uint8 pixels).
        normalise: end with albumentations ``Normalize`` (:data:`NORMALISATION`): a CHW float32 tensor, the
            model's input as it is, normalised on the CPU.

    Example:
        >>> import numpy as np
        >>> from clinagent_lab.recipe import AugmentConfig
        >>> t = build_transforms(AugmentConfig(), 16, 1, "chest_xray", train=False)
        >>> x = t(image=np.full((20, 10, 1), 255, np.uint8))["image"]
        >>> tuple(x.shape), x.dtype, normalise_images(x[None]).amax().item()
        ((1, 16, 16), torch.uint8, 1.0)
    """
    import albumentations as A  # augmentation stack: only to build a loader
    from albumentations.pytorch import ToTensorV2  # augmentation stack: only to build a loader

    policy = _policy(modality)
    ops = list(resize_transforms(image_size, modality))
    if train:
        ops += _augmentations(augment, channels, policy)
    ops += list(extra or [])
    if extra and not normalise:  # a custom step may give float pixels: those are normalised here, as before
        ops.append(A.Lambda(image=_normalise_float_pixels, name="normalise_float_pixels"))
    if normalise:
        ops.append(A.Normalize(mean=(NORMALISATION["mean"],) * channels, std=(NORMALISATION["std"],) * channels,
                               max_pixel_value=NORMALISATION["max_pixel_value"]))
    return A.Compose([*ops, ToTensorV2()], seed=seed)


def _normalise_float_pixels(image: Any, **_: Any) -> Any:
    """Float pixels 0-255 (from a custom transform) normalised as ``Normalize`` would; uint8 ones as they are."""
    if image.dtype == np.uint8:
        return image
    scale = NORMALISATION["std"] * NORMALISATION["max_pixel_value"]
    shift = NORMALISATION["mean"] * NORMALISATION["max_pixel_value"]
    return ((image.astype(np.float32) - shift) * np.float32(1.0 / scale)).astype(np.float32)


def normalise_images(images: Any) -> Any:
    """A batch (or image) of uint8 pixels as the model's normalised float32 input, on the tensor's own device.

    The same values as albumentations ``Normalize`` with :data:`NORMALISATION` (to float rounding). A floating
    tensor is taken to be normalised already and returned as it is, so the step is safe to apply twice.

    Example:
        >>> import torch
        >>> normalise_images(torch.tensor([0, 51, 255], dtype=torch.uint8)).tolist()
        [-1.0, -0.6000000238418579, 1.0]
    """
    import torch  # heavy: only where tensors are made

    if images.dtype != torch.uint8:
        return images
    scale = NORMALISATION["std"] * NORMALISATION["max_pixel_value"]
    return images.float().sub_(NORMALISATION["mean"] * NORMALISATION["max_pixel_value"]).mul_(1.0 / scale)
