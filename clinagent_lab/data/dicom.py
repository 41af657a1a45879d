"""Reading DICOM images into display-ready ``uint8`` arrays.

The pipeline follows the DICOM display chain (PS3.4 Annex N): stored values -> Modality LUT (rescale slope /
intercept or a Modality LUT sequence) -> VOI LUT (a VOI LUT sequence or Window Center / Width) -> 0..255,
then ``MONOCHROME1`` is inverted so that bright always means dense. Without a window, values are stretched
between the 0.5th and 99.5th percentiles; 8-bit data without rescale is passed through unchanged.

``window`` chooses the VOI step:

- ``"auto"`` (default): the header's VOI LUT or first window when present, else the percentile stretch;
- ``None`` or ``"none"``: ignore the header's window, always the percentile stretch (8-bit passes through);
- ``"<center>,<width>"``, e.g. ``"40,400"``: this linear window, in modality units.

Multi-frame files give their first frame; colour files give their luminance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import DataFormatError, DataValidationError

__all__ = ["read_dicom", "read_dicom_header", "dicom_file_info", "is_dicom_file", "PERCENTILES"]

PERCENTILES = (0.5, 99.5)
"""Low and high percentiles of the stretch used when no window applies."""

_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_DECODER_FIX = ("install a decoder for it (pip install pylibjpeg pylibjpeg-libjpeg pylibjpeg-openjpeg, or "
                "python-gdcm) or convert the files to uncompressed DICOM (gdcmconv --raw, dcmdjpeg)")


def _luts():
    try:  # pydicom >= 3
        from pydicom.pixels import apply_modality_lut, apply_voi_lut  # only DICOM data need it
    except ImportError:  # pragma: no cover - pydicom 2.x
        # only DICOM data need it
        from pydicom.pixel_data_handlers.util import apply_modality_lut, apply_voi_lut
    return apply_modality_lut, apply_voi_lut


def _dcmread(path: Path, **kwargs: Any):
    import pydicom  # only DICOM data need it
    from pydicom.errors import InvalidDicomError  # only DICOM data need it

    try:
        return pydicom.dcmread(str(path), **kwargs)
    except (InvalidDicomError, OSError, EOFError) as exc:
        raise DataValidationError(f"cannot read DICOM file: {exc}", where=str(path),
                                  fix="check that the file is a complete DICOM file (download or export it "
                                      "again), or remove it from the dataset") from exc


def read_dicom_header(path: str | Path, tags: list[str] | None = None):
    """Read a DICOM header without its pixels (``stop_before_pixels``); ``tags`` limits what is parsed."""
    kwargs: dict[str, Any] = {"stop_before_pixels": True}
    if tags:
        kwargs["specific_tags"] = list(tags)
    return _dcmread(Path(path), **kwargs)


def is_dicom_file(path: str | Path) -> bool:
    """True for a ``.dcm`` / ``.dicom`` name, or a file with the ``DICM`` marker at byte 128."""
    path = Path(path)
    if path.suffix.lower() in (".dcm", ".dicom"):
        return True
    try:
        with open(path, "rb") as fh:
            fh.seek(128)
            return fh.read(4) == b"DICM"
    except OSError:
        return False


def dicom_file_info(path: str | Path) -> tuple[int, int, int]:
    """``(height, width, channels)`` of what :func:`read_dicom` returns, from the header only.

    Channels is always 1: :func:`read_dicom` gives a grayscale display image.
    """
    ds = read_dicom_header(path, ["Rows", "Columns"])
    if ds.get("Rows") is None or ds.get("Columns") is None:
        raise DataValidationError("DICOM header has no Rows/Columns", where=str(path),
                                  fix="this file holds no image; remove it from the image folder")
    return int(ds.Rows), int(ds.Columns), 1


def _transfer_syntax(ds) -> Any:
    meta = getattr(ds, "file_meta", None)
    return meta.get("TransferSyntaxUID") if meta is not None else None


def _stored_pixels(ds, path: Path) -> np.ndarray:
    if not any(k in ds for k in _PIXEL_KEYWORDS):
        raise DataValidationError("DICOM file has no pixel data (no PixelData element)", where=str(path),
                                  fix="this file holds no image (a report, structured report or "
                                      "presentation state?); remove it from the image folder")
    try:
        arr = ds.pixel_array
    except Exception as exc:  # pydicom raises RuntimeError, NotImplementedError, ValueError... by handler
        ts = _transfer_syntax(ds)
        if ts is not None and getattr(ts, "is_compressed", False):
            raise DataValidationError(
                f"cannot decode DICOM pixel data with transfer syntax '{ts.name}' ({ts}): no installed "
                f"decoder handles it", where=str(path), fix=_DECODER_FIX) from exc
        raise DataValidationError(f"cannot decode DICOM pixel data: {exc}", where=str(path),
                                  fix="check the file with dcmdump or re-export it") from exc
    return np.asarray(arr)


def _first_frame_gray(arr: np.ndarray, ds) -> np.ndarray:
    samples = int(ds.get("SamplesPerPixel", 1) or 1)
    frames = int(ds.get("NumberOfFrames", 1) or 1)
    if frames > 1:
        arr = arr[0]
    if samples > 1:
        rgb = arr[..., :3].astype(np.float64)
        arr = rgb @ np.array([0.299, 0.587, 0.114])
    return arr


def _percentile_stretch(values: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(values, PERCENTILES)
    if hi <= lo:
        return np.zeros(values.shape, dtype=np.float64)
    return (values - lo) / (hi - lo)


def _header_voi(values: np.ndarray, ds) -> np.ndarray | None:
    """The header's VOI step scaled to 0..1, or None when the header has no usable VOI."""
    _, apply_voi_lut = _luts()
    seq = ds.get("VOILUTSequence")
    if seq and seq[0].get("LUTDescriptor") is not None and seq[0].get("LUTData") is not None:
        n_entries, first = int(seq[0].LUTDescriptor[0]) or 2 ** 16, int(seq[0].LUTDescriptor[1])
        lut = np.asarray(apply_voi_lut(np.arange(first, first + n_entries), ds), dtype=np.float64)
        out = np.asarray(apply_voi_lut(np.rint(values).astype(np.int64), ds), dtype=np.float64)
        lo, hi = float(lut.min()), float(lut.max())
    elif ds.get("WindowCenter") is not None and ds.get("WindowWidth") is not None:
        if ds.get("PhotometricInterpretation") not in ("MONOCHROME1", "MONOCHROME2"):
            return None
        out = np.asarray(apply_voi_lut(values.astype(np.float64), ds), dtype=np.float64)
        lo, hi = (float(v) for v in apply_voi_lut(np.array([-1e30, 1e30]), ds))
    else:
        return None
    return (out - lo) / (hi - lo) if hi > lo else np.zeros(values.shape)


def _explicit_window(values: np.ndarray, window: str) -> np.ndarray:
    try:
        center, width = (float(v) for v in window.split(","))
    except ValueError:
        raise DataFormatError(f"unknown DICOM window '{window}'", where="option window",
                              fix="use 'auto', None, or '<center>,<width>' such as '40,400'") from None
    if width <= 0:
        raise DataFormatError(f"window width must be positive, got {width}", where="option window",
                              fix="use '<center>,<width>' with width > 0")
    return (values - (center - width / 2)) / width


def _is_plain_8bit(ds) -> bool:
    no_rescale = float(ds.get("RescaleSlope", 1) or 1) == 1 and float(ds.get("RescaleIntercept", 0) or 0) == 0
    return int(ds.get("BitsStored", 8) or 8) <= 8 and no_rescale and not ds.get("ModalityLUTSequence")


def read_dicom(path: str | Path, *, window: str | None = "auto") -> np.ndarray:
    """Read a DICOM image as a display-ready ``(H, W)`` uint8 array.

    Args:
        path: the ``.dcm`` file.
        window: ``"auto"``, ``None`` or ``"<center>,<width>"`` (see the module docstring).

    Raises:
        DataValidationError: not a DICOM file, no PixelData, or compressed pixel data no installed decoder
            handles (the message names the file and the transfer syntax).
        DataFormatError: a malformed ``window`` option.
    """
    path = Path(path)
    ds = _dcmread(path)
    stored = _first_frame_gray(_stored_pixels(ds, path), ds)
    photometric = str(ds.get("PhotometricInterpretation", "MONOCHROME2"))
    colour = int(ds.get("SamplesPerPixel", 1) or 1) > 1
    if colour:
        values = stored
    else:
        apply_modality_lut, _ = _luts()
        values = np.asarray(apply_modality_lut(stored, ds), dtype=np.float64)
    scaled = None
    if isinstance(window, str) and window not in ("auto", "none"):
        scaled = _explicit_window(values, window)
    elif window == "auto" and not colour:
        scaled = _header_voi(values, ds)
    if scaled is None:
        if colour or _is_plain_8bit(ds):
            scaled = values.astype(np.float64) / 255.0
        else:
            scaled = _percentile_stretch(values.astype(np.float64))
    out = np.rint(np.clip(scaled, 0.0, 1.0) * 255.0).astype(np.uint8)
    if photometric == "MONOCHROME1":
        out = 255 - out
    return out
