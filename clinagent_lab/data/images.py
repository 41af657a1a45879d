"""Image decoding helpers shared by the adapters, the validator and the datamodule.

Every reader returns an ``HxWxC`` ``uint8`` array with ``C`` equal to 1 (grayscale) or 3 (RGB), the form
``LoadedDataset.read_image`` promises. 16-bit and float images are rescaled to 0..255 per image (min-max).

Example:
    >>> import numpy as np
    >>> to_hwc_uint8(np.zeros((4, 5), dtype=np.uint16)).shape
    (4, 5, 1)
    >>> to_channels(np.zeros((4, 5, 1), dtype=np.uint8), 3).shape
    (4, 5, 3)
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np

from .dicom import dicom_file_info, is_dicom_file

__all__ = [
    "IMAGE_EXTENSIONS",
    "is_image_file",
    "read_image_file",
    "image_file_info",
    "to_hwc_uint8",
    "to_channels",
    "pixel_hash",
    "file_hash",
]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")

# PIL mode -> channels after :func:`read_image_file` (palette and alpha images become RGB).
_MODE_CHANNELS = {"1": 1, "L": 1, "LA": 1, "I": 1, "I;16": 1, "I;16B": 1, "I;16L": 1, "F": 1,
                  "RGB": 3, "RGBA": 3, "RGBX": 3, "P": 3, "PA": 3, "CMYK": 3, "YCbCr": 3, "LAB": 3, "HSV": 3}


def is_image_file(path: Path) -> bool:
    """True when ``path`` has one of :data:`IMAGE_EXTENSIONS` (case-insensitive) and is not hidden."""
    return path.suffix.lower() in IMAGE_EXTENSIONS and not path.name.startswith(".")


def to_hwc_uint8(array: np.ndarray) -> np.ndarray:
    """Return ``array`` as ``HxWxC`` uint8 (C in 1, 3); rescale other dtypes per image to 0..255."""
    arr = np.asarray(array)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    if arr.ndim != 3:
        raise ValueError(f"expected a 2-D or 3-D image array, got shape {arr.shape}")
    if arr.shape[2] == 4:
        arr = arr[:, :, :3]
    elif arr.shape[2] == 2:
        arr = arr[:, :, :1]
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if arr.dtype == bool:
        return (arr.astype(np.uint8) * 255)
    data = arr.astype(np.float64)
    lo, hi = float(np.nanmin(data)), float(np.nanmax(data))
    if hi <= lo:
        return np.zeros(arr.shape, dtype=np.uint8)
    scaled = np.nan_to_num((data - lo) / (hi - lo) * 255.0)
    return np.clip(np.round(scaled), 0, 255).astype(np.uint8)


def read_image_file(path: str | Path) -> np.ndarray:
    """Decode an image file with PIL into ``HxWxC`` uint8 (C is 1 or 3)."""
    from PIL import Image  # only image files need it

    with Image.open(path) as img:
        mode = img.mode
        if mode in ("P", "PA", "RGBA", "RGBX", "CMYK", "YCbCr", "LAB", "HSV"):
            img = img.convert("RGB")
        elif mode in ("LA", "1"):
            img = img.convert("L")
        array = np.asarray(img)
    return to_hwc_uint8(array)


def image_file_info(path: str | Path) -> tuple[int, int, int]:
    """``(height, width, channels)`` of an image file from its header only (no pixel decode)."""
    from PIL import Image  # only image files need it

    if is_dicom_file(path):
        return dicom_file_info(path)

    with Image.open(path) as img:
        width, height = img.size
        return height, width, _MODE_CHANNELS.get(img.mode, 3)


def to_channels(image: np.ndarray, channels: int) -> np.ndarray:
    """Convert an ``HxWxC`` uint8 image to ``channels`` channels (1 <-> 3; luminance for RGB -> gray)."""
    have = image.shape[2]
    if have == channels:
        return image
    if have == 1 and channels == 3:
        return np.repeat(image, 3, axis=2)
    if have == 3 and channels == 1:
        gray = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return np.clip(np.round(gray), 0, 255).astype(np.uint8)[:, :, None]
    if have == 1:
        return np.repeat(image, channels, axis=2)
    raise ValueError(f"cannot convert a {have}-channel image to {channels} channels")


def pixel_hash(image: np.ndarray) -> str:
    """sha256 of the decoded pixels and their shape: equal for the same picture stored twice."""
    arr = np.ascontiguousarray(image)
    digest = hashlib.sha256(str(arr.shape).encode())
    digest.update(arr.tobytes())
    return digest.hexdigest()


def file_hash(path: str | Path, chunk: int = 1 << 20) -> str:
    """sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
