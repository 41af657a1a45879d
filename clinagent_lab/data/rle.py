"""Run-length encoding of the SIIM-ACR pneumothorax masks (``train-rle.csv``).

The encoding is the one of the challenge's starter code (``mask_functions.py``): the mask is flattened in
column-major order (the starter reshapes to ``(width, height)`` and transposes), and the string is a list of
``start length`` pairs in which every ``start`` is an offset from the end of the previous run (the first one
from pixel 0). ``-1`` means "no pneumothorax".

Worked example, a 3x4 mask (rows top to bottom)::

    0 1 0 0
    0 1 0 1      column-major pixels: 0 0 0 | 1 1 0 | 0 0 0 | 0 1 1
    0 0 0 1      runs at 3 (length 2) and 10 (length 2) -> "3 2 5 2"  (10 - (3 + 2) = 5)

Example:
    >>> import numpy as np
    >>> mask = np.array([[0, 1, 0, 0], [0, 1, 0, 1], [0, 0, 0, 1]], dtype=bool)
    >>> rle_encode(mask)
    '3 2 5 2'
    >>> bool((rle_decode("3 2 5 2", 3, 4) == mask).all())
    True
"""

from __future__ import annotations

import numpy as np

from ..errors import DataValidationError

__all__ = ["NO_MASK", "parse_rle", "rle_decode", "rle_encode", "is_empty_rle"]

NO_MASK = "-1"
"""The value SIIM-ACR uses for an image without pneumothorax."""

_FIX = ("write the mask as space-separated 'start length' integer pairs (starts relative to the end of the "
        "previous run, column-major order, as in the SIIM-ACR train-rle.csv), or -1 for no pneumothorax")


def is_empty_rle(encoded: str) -> bool:
    """True for the SIIM-ACR "no mask" value ``-1`` (surrounding spaces ignored)."""
    return str(encoded).strip() == NO_MASK


def _bad(what: str, where: str | None) -> DataValidationError:
    return DataValidationError(f"malformed run-length encoding: {what}", where=where, fix=_FIX)


def _tokens_to_ints(encoded: str, where: str | None) -> np.ndarray:
    tokens = str(encoded).split()
    if not tokens:
        raise _bad("the value is empty", where)
    try:
        values = np.array([int(t) for t in tokens], dtype=np.int64)
    except ValueError:
        bad = next(t for t in tokens if not _is_int(t))
        raise _bad(f"'{bad[:20]}' is not an integer", where) from None
    return values


def _is_int(token: str) -> bool:
    try:
        int(token)
    except ValueError:
        return False
    return True


def parse_rle(encoded: str, n_pixels: int | None = None, *,
              where: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Parse a SIIM-ACR RLE string into absolute run starts and lengths (flat, column-major).

    Args:
        encoded: the ``EncodedPixels`` value; ``-1`` gives two empty arrays.
        n_pixels: height * width of the image; when given, a run past the last pixel is an error.
        where: file, row and image id, quoted in the error.

    Returns:
        ``(starts, lengths)``: int64 arrays of absolute flat positions and run lengths.

    Raises:
        DataValidationError: empty value, a non-integer, an odd number of values, a negative offset or length,
            or a run that ends past the last pixel.
    """
    if is_empty_rle(encoded):
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    values = _tokens_to_ints(encoded, where)
    if len(values) % 2:
        raise _bad(f"{len(values)} numbers, expected 'start length' pairs (an even count)", where)
    offsets, lengths = values[0::2], values[1::2]
    if (offsets < 0).any() or (lengths < 0).any():
        raise _bad("negative start offset or run length", where)
    ends = np.cumsum(offsets + lengths)
    starts = ends - lengths
    if n_pixels is not None and len(ends) and ends[-1] > n_pixels:
        raise _bad(f"the runs end at pixel {int(ends[-1])}, past the image's {n_pixels} pixels", where)
    return starts, lengths


def rle_decode(encoded: str, height: int, width: int, *, where: str | None = None) -> np.ndarray:
    """Decode a SIIM-ACR RLE string into a boolean ``(height, width)`` mask.

    Args:
        encoded: the ``EncodedPixels`` value (``-1`` gives an empty mask).
        height: image rows.
        width: image columns.
        where: file, row and image id, quoted in the error.

    Raises:
        DataValidationError: malformed string (see :func:`parse_rle`).
    """
    starts, lengths = parse_rle(encoded, height * width, where=where)
    flat = np.zeros(height * width, dtype=bool)
    for start, length in zip(starts, lengths):
        flat[start:start + length] = True
    return flat.reshape(width, height).T


def rle_encode(mask: np.ndarray) -> str:
    """Encode a 2-D mask (nonzero = inside) as a SIIM-ACR RLE string; an empty mask gives ``-1``.

    Unlike the challenge's starter ``mask2rle``, a run that reaches the last pixel is kept.
    """
    arr = np.asarray(mask)
    if arr.ndim != 2:
        raise ValueError(f"expected a 2-D mask, got shape {arr.shape}")
    flat = np.concatenate([[0], (arr.T.ravel() != 0).astype(np.int8), [0]])
    edges = np.flatnonzero(np.diff(flat))
    if not len(edges):
        return NO_MASK
    starts, ends = edges[0::2], edges[1::2]
    offsets = starts - np.concatenate([[0], ends[:-1]])
    pairs = np.stack([offsets, ends - starts], axis=1).ravel()
    return " ".join(str(int(v)) for v in pairs)
