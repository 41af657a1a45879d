"""Synthetic wrist radiographs in the exact GRAZPEDWRI-DX layout (``images/``, ``labels/``, ``dataset.csv``).

Each image is a grayscale forearm: soft tissue, radius and ulna running up to the carpal bones, and a text
marker ("L"/"R") in a corner. A fractured radius shows a dark oblique gap with a small displacement of the
distal fragment; some images carry a metal plate. YOLO label files (``fracture``, ``text`` and ``metal``
boxes, class ids of the real release) are written for a ``box_fraction`` subset of the images, stratified by
label, so the set reproduces mixed supervision. Two or three images per patient share the patient's fracture
status.

Example:
    >>> import tempfile
    >>> root = grazpedwri(Path(tempfile.mkdtemp()), n=6, image_size=32)
    >>> sorted(p.name for p in root.iterdir())
    ['dataset.csv', 'images', 'labels']
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..adapters.grazpedwri import BOX_CLASSES
from ..base import Box
from ..yolo import box_to_yolo, write_yolo_labels
from . import register_synth

__all__ = ["grazpedwri", "draw_wrist", "WristCase", "CSV_COLUMNS"]

FRACTURE, METAL, TEXT = (BOX_CLASSES.index(n) for n in ("fracture", "metal", "text"))
CSV_COLUMNS = ["patient_id", "filestem", "timehash", "age", "gender", "laterality", "projection",
               "ao_classification", "fracture_visible", "metal", "osteopenia", "diagnosis_uncertain"]


@dataclass
class WristCase:
    """What one synthetic image shows."""

    fracture: bool
    metal: bool
    laterality: str
    boxes: list[Box] = field(default_factory=list)


def _rect(img: np.ndarray, x1: float, y1: float, x2: float, y2: float, value: float) -> None:
    h, w = img.shape
    xa, xb = int(max(0, round(x1))), int(min(w, round(x2)))
    ya, yb = int(max(0, round(y1))), int(min(h, round(y2)))
    img[ya:yb, xa:xb] = value


def _bone(img: np.ndarray, x_centre: float, half_width: float, y_top: float, value: float) -> None:
    """A vertical shaft from the bottom edge up to ``y_top`` with a wider distal end (metaphysis)."""
    s = img.shape[0]
    _rect(img, x_centre - half_width, y_top, x_centre + half_width, s, value)
    _rect(img, x_centre - 1.4 * half_width, y_top, x_centre + 1.4 * half_width, y_top + s * 0.08, value)


def _fracture_gap(img: np.ndarray, x1: float, x2: float, y: float, rng: np.random.Generator,
                  tissue: float) -> Box:
    """A dark oblique line across the bone between ``x1`` and ``x2`` at height ``y``; returns its box."""
    s = img.shape[0]
    slope = rng.uniform(-0.35, 0.35)
    thickness = max(1.0, s / 40.0)
    xs = np.arange(int(np.floor(x1)), int(np.ceil(x2)))
    ys = []
    for x in xs:
        yc = y + slope * (x - (x1 + x2) / 2)
        ya, yb = int(round(yc - thickness / 2)), int(round(yc + thickness / 2)) + 1
        img[max(0, ya):min(s, yb), x] = tissue * 0.6
        ys.extend((ya, yb))
    pad = max(1.0, s / 32.0)
    return Box(x1=max(0.0, x1 - pad), y1=max(0.0, min(ys) - pad), x2=min(float(s), x2 + pad),
               y2=min(float(s), max(ys) + pad), label=FRACTURE)


def _text_marker(img: np.ndarray, left: bool, rng: np.random.Generator) -> Box:
    s = img.shape[0]
    size = max(3.0, s / 10.0)
    x0 = s * 0.05 if rng.random() < 0.5 else s * 0.95 - size
    y0 = s * 0.05
    stroke = max(1.0, size / 4)
    _rect(img, x0, y0, x0 + stroke, y0 + size, 250)            # vertical stroke of "L" / "R"
    _rect(img, x0, y0 + size - stroke, x0 + size, y0 + size, 250 if left else 0)
    if not left:
        _rect(img, x0, y0, x0 + size, y0 + stroke, 250)
    return Box(x1=x0, y1=y0, x2=x0 + size, y2=y0 + size, label=TEXT)


def draw_wrist(case: WristCase, image_size: int, rng: np.random.Generator) -> np.ndarray:
    """Render ``case`` as an ``image_size`` square uint8 image and fill ``case.boxes`` (absolute pixels)."""
    s = int(image_size)
    img = np.full((s, s), rng.uniform(10, 30))
    tissue = rng.uniform(70, 100)
    _rect(img, s * 0.18, 0, s * 0.82, s, tissue)
    bone = rng.uniform(170, 210)
    radius_x, ulna_x = (s * 0.38, s * 0.64) if case.laterality == "L" else (s * 0.62, s * 0.36)
    radius_hw, ulna_hw = s * rng.uniform(0.07, 0.09), s * rng.uniform(0.045, 0.06)
    y_top = s * rng.uniform(0.28, 0.34)
    _bone(img, ulna_x, ulna_hw, y_top + s * 0.04, bone * 0.95)
    _bone(img, radius_x, radius_hw, y_top, bone)
    for k in range(3):  # carpal bones
        cx = s * (0.35 + 0.15 * k) + rng.uniform(-1, 1)
        _rect(img, cx - s * 0.05, y_top - s * 0.12, cx + s * 0.05, y_top - s * 0.03, bone * 0.85)
    case.boxes = []
    if case.fracture:
        y_frac = s * rng.uniform(0.45, 0.62)
        x1, x2 = radius_x - radius_hw, radius_x + radius_hw
        shift = int(round(rng.choice([-1, 1]) * max(1.0, s / 48.0)))
        top = int(round(y_frac))  # displace the distal fragment sideways
        img[:top, int(x1):int(np.ceil(x2))] = np.roll(img[:top, int(x1):int(np.ceil(x2))], shift, axis=1)
        case.boxes.append(_fracture_gap(img, x1, x2, y_frac, rng, tissue))
    if case.metal:
        mx = (radius_x + ulna_x) / 2
        y1 = s * rng.uniform(0.55, 0.7)
        _rect(img, mx - s * 0.04, y1, mx + s * 0.04, y1 + s * 0.2, 255)
        case.boxes.append(Box(x1=mx - s * 0.04, y1=y1, x2=mx + s * 0.04, y2=min(float(s), y1 + s * 0.2),
                              label=METAL))
    case.boxes.append(_text_marker(img, case.laterality == "L", rng))
    img += rng.normal(0, 6, size=img.shape)
    return np.clip(np.round(img), 0, 255).astype(np.uint8)


def _annotated(labels: np.ndarray, box_fraction: float, rng: np.random.Generator) -> set[int]:
    """Indices that get a label file: ``box_fraction`` of each label, at least one positive when > 0."""
    chosen: set[int] = set()
    for value in (1, 0):
        idx = rng.permutation(np.flatnonzero(labels == value))
        k = int(round(box_fraction * len(idx)))
        if value == 1 and box_fraction > 0 and len(idx):
            k = max(k, 1)
        chosen.update(int(i) for i in idx[:k])
    return chosen


def _patients(n: int, rng: np.random.Generator) -> list[int]:
    ids: list[int] = []
    pid = 1
    while len(ids) < n:
        ids.extend([pid] * int(rng.integers(2, 4)))
        pid += 1
    return ids[:n]


@register_synth("grazpedwri")
def grazpedwri(out_dir: Path, *, seed: int = 0, n: int = 80, image_size: int = 64,
               box_fraction: float = 0.25) -> Path:
    """Write ``n`` synthetic wrist radiographs in the GRAZPEDWRI-DX layout under ``out_dir``; return
    ``out_dir``.

    Args:
        out_dir: folder to create (``images/``, ``labels/``, ``dataset.csv``).
        seed: random seed; the same seed writes the same files.
        n: number of images (patients have 2-3 images each).
        image_size: side of the square PNGs in pixels.
        box_fraction: fraction of images (per label) that get a YOLO label file.
    """
    from PIL import Image  # only image files need it

    if not 0.0 <= box_fraction <= 1.0:
        raise ValueError(f"box_fraction must lie in [0, 1], got {box_fraction}")
    rng = np.random.default_rng(seed)
    root = Path(out_dir)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "labels").mkdir(parents=True, exist_ok=True)
    patients = _patients(n, rng)
    status = {p: bool(rng.random() < 0.5) for p in set(patients)}
    labels = np.array([int(status[p]) for p in patients])
    annotated = _annotated(labels, box_fraction, rng)
    rows = []
    for i, pid in enumerate(patients):
        case = WristCase(fracture=bool(labels[i]), metal=bool(rng.random() < 0.15),
                         laterality=str(rng.choice(["L", "R"])))
        img = draw_wrist(case, image_size, rng)
        gender, age = str(rng.choice(["M", "F"])), int(rng.integers(2, 19))
        projection = 1 + patients[:i].count(pid) % 2
        timehash = 1_300_000_000 + int(rng.integers(0, 10**8))
        study = patients[:i].count(pid) + 1
        stem = f"{pid:04d}_{timehash}_{study:02d}_WRI-{case.laterality}{projection}_{gender}{age:03d}"
        Image.fromarray(img).save(root / "images" / f"{stem}.png")
        if i in annotated:
            write_yolo_labels(root / "labels" / f"{stem}.txt",
                              [box_to_yolo(b, image_size, image_size) for b in case.boxes])
        rows.append({"patient_id": f"{pid:04d}", "filestem": stem, "timehash": timehash, "age": age,
                     "gender": gender, "laterality": case.laterality, "projection": projection,
                     "ao_classification": "23r-M/2.1" if case.fracture else "",
                     "fracture_visible": 1 if case.fracture else "", "metal": 1 if case.metal else "",
                     "osteopenia": "", "diagnosis_uncertain": ""})
    with open(root / "dataset.csv", "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=CSV_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return root
