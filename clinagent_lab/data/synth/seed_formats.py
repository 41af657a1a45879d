"""Synthetic ISIC 2019 and SIIM-ACR datasets written in the real on-disk layouts.

The pictures are cartoons, but the files are the real thing: JPEGs and the challenge CSVs for ISIC 2019,
12-bit DICOMs (pydicom, Explicit VR Little Endian, rescale and window tags, some ``MONOCHROME1``) and a
``train-rle.csv`` for SIIM-ACR. Labels are learnable from the pixels; SIIM-ACR images can also carry a chest
drain correlated with the label, the shortcut the confounder audit should flag.

Example:
    >>> import tempfile
    >>> from clinagent_lab.data.synth import generate
    >>> root = generate("isic2019", tempfile.mkdtemp(), n=60, image_size=16)
    >>> (root / "ISIC_2019_Training_GroundTruth.csv").is_file()
    True
"""

from __future__ import annotations

import uuid
from pathlib import Path

import numpy as np

from ..rle import NO_MASK, rle_encode
from . import register_synth

__all__ = ["isic2019", "siim_acr", "write_dicom", "ISIC_CLASS_WEIGHTS"]

# ---------------------------------------------------------------- ISIC 2019

ISIC_CLASS_WEIGHTS = {"MEL": 0.14, "NV": 0.40, "BCC": 0.10, "AK": 0.07, "BKL": 0.10, "DF": 0.06, "VASC": 0.06,
                      "SCC": 0.07}
"""Class shares (NV most common, as in the challenge); every class gets at least ``_MIN_PER_CLASS``."""

_MIN_PER_CLASS = 6
_GT_COLUMNS = ("MEL", "NV", "BCC", "AK", "BKL", "DF", "VASC", "SCC", "UNK")
_SITES = ("anterior torso", "posterior torso", "lower extremity", "upper extremity", "head/neck",
          "palms/soles", "lateral torso", "oral/genital")
# class -> (lesion RGB, radius as a fraction of the image, border irregularity, texture amplitude)
_LESIONS = {
    "MEL": ((60, 35, 30), 0.32, 0.28, 0.25),
    "NV": ((125, 80, 50), 0.22, 0.04, 0.05),
    "BCC": ((215, 150, 160), 0.25, 0.10, 0.10),
    "AK": ((190, 90, 80), 0.20, 0.18, 0.35),
    "BKL": ((160, 120, 70), 0.28, 0.08, 0.30),
    "DF": ((120, 70, 60), 0.18, 0.05, 0.05),
    "VASC": ((150, 30, 90), 0.16, 0.06, 0.05),
    "SCC": ((205, 95, 110), 0.27, 0.22, 0.20),
}
_OLDER = {"MEL", "BCC", "AK", "SCC", "BKL"}


def _class_counts(n: int) -> dict[str, int]:
    counts = {c: max(_MIN_PER_CLASS, int(w * n)) for c, w in ISIC_CLASS_WEIGHTS.items() if c != "NV"}
    counts["NV"] = n - sum(counts.values())
    if counts["NV"] <= max(v for c, v in counts.items() if c != "NV"):
        raise ValueError(f"n={n} is too small for 8 classes with >= {_MIN_PER_CLASS} images each and NV the "
                         f"most common; use n >= 60")
    return counts


def _lesion_groups(rng: np.random.Generator, counts: dict[str, int]) -> list[tuple[str, int]]:
    """(class, number of images) per lesion: mostly 1 image, some 2-3."""
    groups = []
    for cls, count in counts.items():
        left = count
        while left:
            size = min(left, int(rng.choice([1, 2, 3], p=[0.6, 0.25, 0.15])))
            groups.append((cls, size))
            left -= size
    return groups


def _lesion_shape(rng: np.random.Generator, cls: str) -> dict:
    colour, radius, irregular, texture = _LESIONS[cls]
    return {"cls": cls, "colour": np.array(colour, float) + rng.normal(0, 8, 3),
            "radius": radius * rng.uniform(0.85, 1.15), "irregular": irregular, "texture": texture,
            "phases": rng.uniform(0, 2 * np.pi, 4),
            "skin": np.array([225, 185, 160], float) + rng.normal(0, 12, 3)}


def _class_pattern(cls: str, r: np.ndarray, theta: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """A class-specific brightness pattern inside the lesion (multiplies the colour)."""
    pattern = np.ones_like(r)
    if cls == "DF":
        pattern = np.where(r < 0.45, 1.6, 1.0)  # pale centre
    elif cls == "MEL":
        pattern = np.where(np.cos(theta) > 0.3, 0.55, 1.0)  # two-tone, blue-black sector
    elif cls == "BCC":
        pattern = 1.0 - 0.35 * (np.abs(np.sin(6 * theta)) > 0.92)  # fine red vessels
    elif cls == "SCC":
        pattern = np.where(r < 0.35, 1.3, 1.0)  # central keratin crust
    return np.where(inside, pattern, 1.0)


def _draw_lesion(rng: np.random.Generator, shape: dict, size: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    cy, cx = size / 2 + rng.normal(0, size * 0.04, 2)
    dy, dx = (yy - cy) / size, (xx - cx) / size
    theta, dist = np.arctan2(dy, dx) + rng.normal(0, 0.15), np.hypot(dy, dx)
    border = shape["radius"] * (1 + shape["irregular"] * sum(
        np.sin((k + 2) * theta + p) / (k + 1) for k, p in enumerate(shape["phases"])))
    inside = dist < border
    r = dist / np.maximum(border, 1e-6)
    pattern = _class_pattern(shape["cls"], r, theta, inside)
    noise = 1 + shape["texture"] * rng.normal(0, 0.5, (size, size))
    skin = shape["skin"][None, None, :] * (1 + 0.04 * rng.normal(0, 1, (size, size, 1)))
    lesion = shape["colour"][None, None, :] * (pattern * noise)[:, :, None]
    image = np.where(inside[:, :, None], lesion, skin)
    return np.clip(image, 0, 255).astype(np.uint8)


def _maybe(rng: np.random.Generator, value: object, p_missing: float = 0.06) -> str:
    return "" if rng.random() < p_missing else str(value)


def _lesion_metadata(rng: np.random.Generator, cls: str, index: int,
                     lesion_id_missing: bool) -> dict[str, str]:
    age = int(np.clip(rng.normal(65 if cls in _OLDER else 40, 12), 5, 85) // 5 * 5)
    return {"lesion_id": "" if lesion_id_missing else f"HAM_{index:07d}",
            "age_approx": _maybe(rng, f"{age:.1f}"),
            "anatom_site_general": _maybe(rng, _SITES[int(rng.integers(len(_SITES)))]),
            "sex": _maybe(rng, "male" if rng.random() < 0.52 else "female")}


def _write_isic_csvs(root: Path, records: list[dict]) -> None:
    records = sorted(records, key=lambda r: r["image"])
    gt = ["image," + ",".join(_GT_COLUMNS)]
    gt += [",".join([r["image"], *("1.0" if c == r["cls"] else "0.0" for c in _GT_COLUMNS)]) for r in records]
    (root / "ISIC_2019_Training_GroundTruth.csv").write_text("\n".join(gt) + "\n")
    meta = ["image,age_approx,anatom_site_general,lesion_id,sex"]
    meta += [",".join([r["image"], r["age_approx"], r["anatom_site_general"], r["lesion_id"], r["sex"]])
             for r in records]
    (root / "ISIC_2019_Training_Metadata.csv").write_text("\n".join(meta) + "\n")


@register_synth("isic2019")
def isic2019(out_dir: str | Path, *, seed: int = 0, n: int | None = 160, image_size: int = 32,
             save_size: tuple[int, int] | None = None) -> Path:
    """Write a synthetic ISIC 2019 training download to ``out_dir`` and return it.

    Layout and CSVs as in the challenge (see :mod:`clinagent_lab.data.adapters.isic2019`): ``n`` JPEGs named
    ``ISIC_00xxxxx.jpg``, the one-hot ground truth with all 9 columns (UNK always 0.0), and the metadata CSV
    with lesion ids (some lesions have 2-3 images, some images no lesion id) and a few empty cells. Every
    class has at least 6 images and NV is the most common; lesion colour, size, border and inner pattern
    depend on the class. ``save_size=(height, width)`` writes the lesions drawn at ``image_size`` enlarged to
    that size (``(450, 600)`` gives the challenge's most common JPEG size at a fraction of the drawing cost).

    Raises:
        ValueError: ``n`` below 60.
    """
    from PIL import Image  # only image files need it

    rng = np.random.default_rng(seed)
    root = Path(out_dir)
    images_dir = root / "ISIC_2019_Training_Input"
    images_dir.mkdir(parents=True, exist_ok=True)
    groups = _lesion_groups(rng, _class_counts(n or 160))
    ids = rng.permutation(sum(size for _, size in groups))
    records, k = [], 0
    for lesion_index, (cls, n_images) in enumerate(groups):
        shape = _lesion_shape(rng, cls)
        no_lesion_id = n_images == 1 and rng.random() < 0.15
        meta = _lesion_metadata(rng, cls, 1000 + lesion_index, lesion_id_missing=no_lesion_id)
        for _ in range(n_images):
            image_id = f"ISIC_{24306 + int(ids[k]):07d}"
            image = Image.fromarray(_draw_lesion(rng, shape, image_size))
            if save_size is not None:
                image = image.resize((int(save_size[1]), int(save_size[0])), Image.BILINEAR)
            image.save(images_dir / f"{image_id}.jpg", quality=95)
            records.append({"image": image_id, "cls": cls, **meta})
            k += 1
    (images_dir / "ATTRIBUTION.txt").write_text("Synthetic images made by clinagent-lab; no real data.\n")
    (images_dir / "LICENSE.txt").write_text("CC0 (synthetic).\n")
    _write_isic_csvs(root, records)
    return root


# ---------------------------------------------------------------- SIIM-ACR

_UID_ROOT = "1.2.276.0.7230010.3.1"
_CR_STORAGE = "1.2.840.10008.5.1.4.1.1.1"  # Computed Radiography Image Storage
_STORED_LOW, _STORED_SPAN, _INTERCEPT = 200, 3600, -1024.0


def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    """Coordinates u (left-right) and v (top-bottom) in -1..1."""
    yy, xx = np.mgrid[0:size, 0:size].astype(float)
    return xx / size * 2 - 1, yy / size * 2 - 1


def _ellipse(u: np.ndarray, v: np.ndarray, centre: tuple[float, float],
             radii: tuple[float, float]) -> np.ndarray:
    return ((u - centre[0]) / radii[0]) ** 2 + ((v - centre[1]) / radii[1]) ** 2 < 1


def _chest(rng: np.random.Generator, size: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """A chest radiograph cartoon in 0..1 (bright = dense) and the two lung masks (right, left of image)."""
    u, v = _grid(size)
    image = np.where(np.abs(u) < 0.92, 0.55, 0.15) + 0.05 * v
    lungs = []
    for side in (-1, 1):
        lung = _ellipse(u, v, (side * rng.uniform(0.38, 0.46), rng.uniform(-0.12, -0.02)), (0.30, 0.62))
        markings = 0.08 * np.sin(14 * np.hypot(u - side * 0.1, v - 0.1) + rng.uniform(0, 6)) ** 2
        image = np.where(lung, 0.28 + markings, image)
        lungs.append(lung)
    image = np.where(np.abs(u) < 0.09, 0.8, image)  # spine and mediastinum
    return image, lungs


def _pneumothorax(rng: np.random.Generator, image: np.ndarray, lung: np.ndarray, side: int) -> np.ndarray:
    """Collapse ``lung`` towards the hilum: the lateral rim turns dark and featureless, the visceral pleura
    shows as a bright line. Returns the pneumothorax mask (lung minus collapsed lung)."""
    size = image.shape[0]
    u, v = _grid(size)
    depth = rng.uniform(0.25, 0.45)
    centre = (side * 0.42 - side * depth * 0.25, depth * 0.2 - 0.05)
    radii = (0.30 * (1 - depth), 0.62 * (1 - depth * 0.5))
    collapsed = _ellipse(u, v, centre, radii)
    inner = _ellipse(u, v, centre, (radii[0] - 2.0 / size, radii[1] - 2.0 / size))
    mask = lung & ~collapsed
    image[mask] = 0.10
    image[collapsed & ~inner & lung] = 0.6
    return mask


def _drain(rng: np.random.Generator, image: np.ndarray) -> None:
    """A bright tube from the lateral chest wall curving up and in."""
    size = image.shape[0]
    side = rng.choice([-1, 1])
    t = np.linspace(0, 1, 8 * size)
    x0, y0 = (0.5 + side * 0.45) * size, rng.uniform(0.55, 0.75) * size
    xs = x0 - side * t * size * rng.uniform(0.3, 0.4)
    ys = y0 - t ** 1.5 * size * rng.uniform(0.3, 0.45)
    for dx in (0, 1):
        image[np.clip(ys.astype(int), 0, size - 1), np.clip(xs.astype(int) + dx, 0, size - 1)] = 0.97


def _uids(i: int) -> tuple[str, str, str]:
    stamp = 1517875162 + 7 * i
    return (f"{_UID_ROOT}.2.8323329.{4000 + i}.{stamp}.{100000 + 31 * i}",
            f"{_UID_ROOT}.3.8323329.{4000 + i}.{stamp}.{100001 + 31 * i}",
            f"{_UID_ROOT}.4.8323329.{4000 + i}.{stamp}.{100002 + 31 * i}")


def _stored(image: np.ndarray, rng: np.random.Generator, monochrome1: bool) -> np.ndarray:
    shown = np.clip(image + rng.normal(0, 0.02, image.shape), 0, 1)
    if monochrome1:
        shown = 1 - shown
    return np.rint(_STORED_LOW + shown * _STORED_SPAN).astype(np.uint16)


def _save_dicom(ds, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        ds.save_as(path, enforce_file_format=True)
    except TypeError:  # pragma: no cover - pydicom 2.x
        ds.is_little_endian, ds.is_implicit_VR = True, False
        ds.save_as(path, write_like_original=False)


def write_dicom(path: Path, pixels: np.ndarray, *, uids: tuple[str, str, str], patient_id: str,
                monochrome1: bool, window: tuple[float, float]) -> None:
    """Write a 12-bit (16-bit stored) chest radiograph DICOM with rescale and window tags."""
    from pydicom.dataset import Dataset, FileMetaDataset  # only DICOM data need it
    from pydicom.uid import ExplicitVRLittleEndian  # only DICOM data need it

    study, series, sop = uids
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = _CR_STORAGE, sop
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = _CR_STORAGE, sop
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
    ds.PatientID, ds.PatientName = patient_id, "Synthetic^Patient"
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "CR", "CHEST", "PA"
    ds.Rows, ds.Columns = pixels.shape
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME1" if monochrome1 else "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.RescaleSlope, ds.RescaleIntercept, ds.RescaleType = "1", str(_INTERCEPT), "US"
    ds.WindowCenter, ds.WindowWidth = f"{window[0]:.1f}", f"{window[1]:.1f}"
    ds.PixelData = pixels.astype("<u2").tobytes()
    _save_dicom(ds, path)


def _window(rng: np.random.Generator) -> tuple[float, float]:
    center = _STORED_LOW + _STORED_SPAN / 2 + _INTERCEPT + rng.normal(0, 40)
    return center, _STORED_SPAN * rng.uniform(0.95, 1.05)


def _siim_case(rng: np.random.Generator, size: int, positive: bool,
               drain: bool) -> tuple[np.ndarray, list[str]]:
    image, lungs = _chest(rng, size)
    rles = [NO_MASK]
    if positive:
        sides = [int(rng.integers(2))] if rng.random() < 0.7 else [0, 1]
        rles = [rle_encode(_pneumothorax(rng, image, lungs[s], (-1, 1)[s])) for s in sides]
        rles = [r for r in rles if r != NO_MASK]
        if not rles:
            raise ValueError(f"image_size={size} is too small to draw a pneumothorax; use 8 or more")
    if drain:
        _drain(rng, image)
    return image, rles


def _write_siim_csvs(root: Path, rle_rows: list[tuple[str, str]],
                     drains: list[tuple[str, int]] | None) -> None:
    lines = ["ImageId, EncodedPixels"] + [f"{image_id}, {rle}" for image_id, rle in rle_rows]
    (root / "train-rle.csv").write_text("\n".join(lines) + "\n")
    if drains is not None:
        lines = ["ImageId,drain"] + [f"{image_id},{d}" for image_id, d in drains]
        (root / "chest_drain_labels.csv").write_text("\n".join(lines) + "\n")


def _write_siim_dicom(rng: np.random.Generator, folder: Path, image: np.ndarray, uids: tuple[str, str, str],
                      patient_id: str) -> None:
    mono1 = bool(rng.random() < 0.25)
    write_dicom(folder / uids[0] / uids[1] / f"{uids[2]}.dcm", _stored(image, rng, mono1), uids=uids,
                patient_id=patient_id, monochrome1=mono1, window=_window(rng))


def _write_siim_png(rng: np.random.Generator, folder: Path, image: np.ndarray, image_id: str) -> None:
    from PIL import Image  # only image files need it

    folder.mkdir(exist_ok=True)
    shown = np.clip(image + rng.normal(0, 0.02, image.shape), 0, 1)
    Image.fromarray(np.rint(shown * 255).astype(np.uint8)).save(folder / f"{image_id}.png")


def _patients(rng: np.random.Generator, n: int) -> list[str]:
    """Patient ids (UUIDs, as in SIIM-ACR): most patients have one image, about 10% two."""
    out: list[str] = []
    while len(out) < n:
        out += [str(uuid.UUID(bytes=rng.bytes(16), version=4))] * (2 if rng.random() < 0.1 else 1)
    return out[:n]


@register_synth("siim_acr")
def siim_acr(out_dir: str | Path, *, seed: int = 0, n: int | None = 120, image_size: int = 64,
             drains: bool = True, correlation: float = 0.8, prevalence: float = 0.3, n_test: int = 4,
             layout: str = "dicom") -> Path:
    """Write a synthetic SIIM-ACR pneumothorax download to ``out_dir`` and return it.

    ``dicom-images-train/<study>/<series>/<ImageId>.dcm`` (12-bit in 16-bit storage, rescale and window tags,
    about a quarter ``MONOCHROME1``; some patients with two images), ``dicom-images-test/`` with ``n_test``
    unlabelled files, and ``train-rle.csv`` (header ``ImageId, EncodedPixels``; one ``-1`` row per normal
    image, one or two mask rows per pneumothorax encoded at the image's own size). With ``layout="png"``
    the images go to ``png_images/<ImageId>.png`` instead.

    With ``drains``, a chest drain is drawn with probability ``correlation`` on pneumothorax images and
    ``1 - correlation`` on normal ones (0.5: no association), recorded in ``chest_drain_labels.csv``.
    """
    if layout not in ("dicom", "png"):
        raise ValueError(f"layout must be 'dicom' or 'png', got {layout!r}")
    rng = np.random.default_rng(seed)
    root = Path(out_dir)
    root.mkdir(parents=True, exist_ok=True)
    n = n or 120
    n_pos = min(n - 1, max(1, round(prevalence * n)))
    labels = rng.permutation(np.r_[np.ones(n_pos, int), np.zeros(n - n_pos, int)])
    patients = _patients(rng, n + n_test)
    rle_rows, drain_rows = [], []
    for i in range(n + n_test):
        test = i >= n
        positive = bool(labels[i]) if not test else bool(rng.random() < prevalence)
        drain = drains and rng.random() < (correlation if positive else 1 - correlation)
        image, rles = _siim_case(rng, image_size, positive, drain)
        uids = _uids(i)
        if layout == "dicom":
            folder = root / ("dicom-images-test" if test else "dicom-images-train")
            _write_siim_dicom(rng, folder, image, uids, patients[i])
        elif not test:
            _write_siim_png(rng, root / "png_images", image, uids[2])
        if not test:
            rle_rows += [(uids[2], r) for r in rles]
            drain_rows.append((uids[2], int(drain)))
    _write_siim_csvs(root, rle_rows, drain_rows if drains else None)
    return root


try:  # GRAZPEDWRI-DX writers live in their own module
    from . import wrist  # noqa: F401
except ModuleNotFoundError as _exc:  # pragma: no cover - depends on the checkout
    if _exc.name != f"{__package__}.wrist":
        raise
