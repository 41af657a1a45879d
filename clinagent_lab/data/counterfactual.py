"""Counterfactual artefact augmentation: add or remove a confounding artefact where its location is known.

When a dataset records *where* an artefact (a chest drain, a ruler, a pen mark) lies in each image that has
it, training can break the artefact's link with the label directly: each training image, with probability
``p``, is shown in its counterfactual state: the artefact removed (its pixels inpainted from their
surroundings) when it has one, or added (the pixels of a randomly chosen artefact-bearing training image
pasted at their own location) when it has none. With ``p = 0.5`` the artefact is present in half of every
class's training images, so it carries no information about the label; the images the network sees with an
artefact have real artefact pixels, the same as those of new images.

Locations are binary masks, one PNG per artefact-bearing image, in a folder next to the images:
``<data root>/masks/<confounder column>/<the image's path below the root>`` (see :func:`mask_path`).
Nothing here is specific to drains: any binary confounder column with such masks works.

Example:
    >>> import numpy as np
    >>> image = np.full((8, 8, 1), 100, dtype=np.uint8)
    >>> mask = np.zeros((8, 8), dtype=bool); mask[2, 1:7] = True
    >>> with_line = paste_artefact(image, np.full((8, 8, 1), 250, dtype=np.uint8), mask)
    >>> int(with_line[2, 3, 0]), int(with_line[5, 3, 0])
    (250, 100)
    >>> int(remove_artefact(with_line, mask)[2, 3, 0])            # inpainted from the surroundings
    100
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["MASKS_FOLDER", "mask_path", "masks_folder", "has_masks", "read_mask", "write_mask",
           "paste_artefact", "remove_artefact", "ArtefactSwap"]

#: folder below the data root that holds one sub-folder of masks per confounder column
MASKS_FOLDER = "masks"


def masks_folder(root: str | Path, column: str) -> Path:
    """``<root>/masks/<column>``: where the artefact masks of confounder ``column`` live."""
    return Path(root) / MASKS_FOLDER / str(column)


def mask_path(root: str | Path, column: str, image_path: str | Path) -> Path:
    """The mask file of one image: its path below ``root`` (else its file name) under :func:`masks_folder`."""
    image_path = Path(image_path)
    try:
        relative = image_path.resolve().relative_to(Path(root).resolve())
    except ValueError:
        relative = Path(image_path.name)
    return masks_folder(root, column) / relative.with_suffix(".png")


def has_masks(root: str | Path | None, column: str | None) -> bool:
    """Whether the data under ``root`` record the location of confounder ``column`` (a non-empty folder)."""
    if not root or not column:
        return False
    folder = masks_folder(root, column)
    return folder.is_dir() and any(folder.rglob("*.png"))


def read_mask(path: str | Path) -> np.ndarray | None:
    """A boolean ``HxW`` mask (non-zero pixels), or None when the file does not exist."""
    from PIL import Image  # image I/O only when masks are read

    path = Path(path)
    if not path.is_file():
        return None
    with Image.open(path) as im:
        return np.asarray(im.convert("L")) > 0


def write_mask(path: str | Path, mask: np.ndarray) -> None:
    """Write a boolean mask as an 8-bit PNG (255 inside), creating the folder."""
    from PIL import Image  # image I/O only when masks are written

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.where(np.asarray(mask, dtype=bool), 255, 0).astype(np.uint8)).save(path)


def paste_artefact(image: np.ndarray, donor: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``image`` with the donor's pixels where ``mask`` is set (same ``HxW``; channels broadcast)."""
    out = image.copy()
    out[mask] = donor[mask] if donor.shape[-1] == image.shape[-1] else donor[mask].mean(-1, keepdims=True)
    return out


def remove_artefact(image: np.ndarray, mask: np.ndarray, radius: int = 2) -> np.ndarray:
    """``image`` with the masked pixels inpainted from their surroundings (OpenCV's Telea method)."""
    import cv2  # OpenCV (albumentations' dependency): only when an artefact is removed

    if not mask.any():
        return image.copy()
    m = mask.astype(np.uint8)
    channels = [cv2.inpaint(np.ascontiguousarray(image[..., c]), m, radius, cv2.INPAINT_TELEA)
                for c in range(image.shape[-1])]
    return np.stack(channels, axis=-1)


def _fit_mask(mask: np.ndarray, shape: tuple[int, int], resize: object | None) -> np.ndarray:
    """The mask at the image's size: unchanged when it matches, else through the images' own resize step."""
    if mask.shape == shape:
        return mask
    if resize is not None:
        dummy = np.zeros((*mask.shape, 1), dtype=np.uint8)
        mask = resize(image=dummy, mask=mask.astype(np.uint8))["mask"] > 0  # type: ignore[operator]
        if mask.shape == shape:
            return mask
    import cv2  # OpenCV: only when a mask's size differs from the image's

    return cv2.resize(mask.astype(np.uint8), (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST) > 0


class ArtefactSwap:
    """Turns a training image into its counterfactual with probability ``p`` (see the module docstring).

    Args:
        mask_files: one mask path per training image, or None where the image has no recorded artefact.
        groups: confounder codes of the training images (1: artefact present, 0: absent, -1: unknown).
        p: probability of swapping an image's artefact state.
        resize: the dataset's resize step (albumentations ``Compose``) for masks whose size differs from
            the image the dataset hands over (a resized cache).

    Images whose code says "present" but have no mask, and images with an unknown code, are left as they are.
    Donors are the images with a mask.
    """

    def __init__(self, mask_files: list[Path | None], groups: np.ndarray, p: float = 0.5,
                 resize: object | None = None) -> None:
        self.mask_files = list(mask_files)
        self.groups = np.asarray(groups, dtype=np.int64)
        self.p = float(p)
        self.resize = resize
        self.donors = np.asarray([k for k, f in enumerate(self.mask_files) if f is not None], dtype=np.int64)
        self._masks: dict[int, np.ndarray] = {}

    def mask(self, k: int, shape: tuple[int, int]) -> np.ndarray | None:
        """Position ``k``'s mask at ``shape`` (read once, then kept: masks are small)."""
        if self.mask_files[k] is None:
            return None
        if k not in self._masks:
            raw = read_mask(self.mask_files[k])  # type: ignore[arg-type]
            if raw is None:
                self.mask_files[k] = None
                return None
            self._masks[k] = raw
        return _fit_mask(self._masks[k], shape, self.resize)

    def __call__(self, k: int, image: np.ndarray, donor_image, draw: tuple[float, float]
                 ) -> tuple[np.ndarray, int]:
        """``(image, group)`` for position ``k``: swapped when ``draw[0] < p``; ``draw[1]`` picks the donor.

        ``donor_image(j)`` returns position ``j``'s raw image (the dataset's ``raw_image``).
        """
        group = int(self.groups[k])
        if draw[0] >= self.p or group < 0 or len(self.donors) == 0:
            return image, group
        shape = image.shape[:2]
        if group > 0:
            mask = self.mask(k, shape)
            return (image, group) if mask is None else (remove_artefact(image, mask), 0)
        j = int(self.donors[min(int(draw[1] * len(self.donors)), len(self.donors) - 1)])
        mask = self.mask(j, shape)
        if mask is None:
            return image, group
        return paste_artefact(image, donor_image(j), mask), 1
