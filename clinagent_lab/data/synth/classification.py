"""Synthetic classification datasets with a planted shortcut, written as CSV manifests.

Each generator writes ``manifest.csv`` and ``images/*.png`` under ``out_dir`` and returns ``out_dir`` (pass it
as ``--data``). The planted shortcut is easy (a bright line, a ruler), the true finding subtler, so a plain
model leans on the shortcut; in the test split the shortcut is independent of the label, which catches it.

Shortcut rule (train and val): ``P(shortcut | positive) = (1 + c) / 2``, ``P(shortcut | negative) =
(1 - c) / 2`` for correlation ``c``; test: 0.5 for both when ``test_independent``. Counts are exact in every
(split, label) cell (the images chosen at random): the measured correlation is the requested one, rounded.

- ``chest_drain``: grayscale chest-radiograph-like images; pneumothorax = a lateral region without lung
  markings bounded by a faint pleural line; shortcut = a chest drain (bright straight tube).
- ``dermoscopy``: colour skin images with a lesion whose colour, border and texture depend on the class
  (MEL, NV, BCC, BKL; NV most common); shortcut (weak) = a ruler along one edge, more often with MEL.
- ``drain_overlay``: the drain drawn on the images of a MedMNIST ``.npz`` (e.g. PneumoniaMNIST), keeping splits.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ...fileio import atomic_write_text
from ..counterfactual import mask_path, write_mask
from . import register_synth

__all__ = ["chest_drain", "dermoscopy", "drain_overlay", "shortcut_flags", "draw_drain", "grouped_split"]

DERM_FREQUENCIES = {"NV": 0.5, "MEL": 0.2, "BKL": 0.17, "BCC": 0.13}


# ---------------------------------------------------------------------------------------------------- helpers


def shortcut_flags(positive: np.ndarray, splits: np.ndarray, correlation: float, rng: np.random.Generator,
                   test_independent: bool = True, p_pos: float | None = None,
                   p_neg: float | None = None) -> np.ndarray:
    """0/1 shortcut flags with exact counts per (split, label) cell (see the module docstring)."""
    if not 0.0 <= correlation <= 1.0:
        raise ValueError(f"correlation must be in [0, 1], got {correlation}")
    p_pos = (1.0 + correlation) / 2.0 if p_pos is None else p_pos
    p_neg = (1.0 - correlation) / 2.0 if p_neg is None else p_neg
    flags = np.zeros(len(positive), dtype=np.int64)
    for split in np.unique(splits):
        for pos in (False, True):
            cell = np.flatnonzero((splits == split) & (positive == pos))
            if split == "test" and test_independent:
                p = 0.5
            else:
                p = p_pos if pos else p_neg
            k = int(round(p * len(cell)))
            flags[rng.choice(cell, size=k, replace=False)] = 1
    return flags


def grouped_split(group_labels: np.ndarray, rng: np.random.Generator,
                  fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)) -> np.ndarray:
    """train/val/test per group, stratified by the group's label."""
    out = np.empty(len(group_labels), dtype=object)
    for label in np.unique(group_labels):
        idx = rng.permutation(np.flatnonzero(group_labels == label))
        n_train = int(round(fractions[0] * len(idx)))
        n_val = int(round(fractions[1] * len(idx)))
        out[idx[:n_train]] = "train"
        out[idx[n_train:n_train + n_val]] = "val"
        out[idx[n_train + n_val:]] = "test"
    return out


def _groups(n: int, rng: np.random.Generator, p_second: float = 0.25) -> np.ndarray:
    """Group index per image: consecutive images share a group with probability ``p_second``."""
    group, out = 0, []
    while len(out) < n:
        out.append(group)
        if len(out) < n and rng.random() < p_second:
            out.append(group)
        group += 1
    return np.array(out[:n])


def draw_drain(image: np.ndarray, rng: np.random.Generator, thickness: int = 1,
               value: int = 250, return_mask: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """Draw a straight bright tube from the lower lateral chest wall towards the apex (HxW or HxWxC uint8);
    with ``return_mask`` also the boolean ``HxW`` mask of the drawn pixels (the artefact's location)."""
    from PIL import Image, ImageDraw  # only image files need it

    h, w = image.shape[:2]
    left = rng.random() < 0.5
    x0 = rng.uniform(0.0, 0.12) * w
    x1 = rng.uniform(0.3, 0.45) * w
    if not left:
        x0, x1 = w - 1 - x0, w - 1 - x1
    y0, y1 = rng.uniform(0.6, 0.9) * h, rng.uniform(0.1, 0.3) * h
    mask = Image.new("L", (w, h), 0)
    ImageDraw.Draw(mask).line([(x0, y0), (x1, y1)], fill=255, width=max(1, int(thickness)))
    on = np.asarray(mask) > 0
    out = image.copy()
    out[on] = value
    return (out, on) if return_mask else out


def _save_png(array: np.ndarray, path: Path) -> None:
    from PIL import Image  # only image files need it

    arr = array[:, :, 0] if array.ndim == 3 and array.shape[2] == 1 else array
    Image.fromarray(arr.astype(np.uint8)).save(path)


def _write_manifest(out_dir: Path, frame: pd.DataFrame) -> Path:
    atomic_write_text(out_dir / "manifest.csv", frame.to_csv(index=False))
    return out_dir


def _smooth_noise(shape: tuple[int, ...], sigma: float, rng: np.random.Generator) -> np.ndarray:
    from scipy.ndimage import gaussian_filter  # SciPy: heavy, only for this computation

    field = gaussian_filter(rng.standard_normal(shape), sigma=sigma)
    return field / (field.std() + 1e-8)


def _ellipse(xx: np.ndarray, yy: np.ndarray, cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0


# ----------------------------------------------------------------------------------------------- chest drain


def _chest_image(size: int, anatomy: np.ndarray, positive: bool, rng: np.random.Generator,
                 finding_contrast: float = 1.0, noise: float = 0.02) -> np.ndarray:
    """One chest-radiograph-like picture, uint8; ``anatomy`` = per-patient (dx, dy, scale, gain)."""
    from scipy.ndimage import binary_dilation  # SciPy: heavy, only for this computation

    dx, dy, scale, gain = anatomy
    yy, xx = np.mgrid[-1:1:complex(size), -1:1:complex(size)]
    img = np.full((size, size), 0.08)
    body = _ellipse(xx, yy, dx, dy + 0.05, 0.95 * scale, 1.05 * scale)
    img[body] = 0.55
    lungs = [_ellipse(xx, yy, dx + s * 0.42 * scale, dy - 0.05, 0.3 * scale, 0.62 * scale) for s in (-1, 1)]
    texture = _smooth_noise((size, size), sigma=max(size / 24, 0.6), rng=rng)
    for lung in lungs:
        img[lung] = 0.24 + 0.07 * texture[lung]
    heart = _ellipse(xx, yy, dx + 0.08, dy + 0.3, 0.26 * scale, 0.3 * scale)
    img[heart] = 0.68
    if positive:
        side = 1 if rng.random() < 0.5 else -1
        lung = lungs[0 if side < 0 else 1]
        cx = dx + side * 0.42 * scale
        depth = rng.uniform(0.35, 0.55) * 0.3 * scale
        region = lung & (side * (xx - cx) > 0.3 * scale - 2 * depth) & (yy < dy + 0.35)
        img[region] -= finding_contrast * (img[region] - 0.17)
        edge = binary_dilation(region) & lung & ~region
        img[edge] += finding_contrast * 0.12
    img = gain * img + noise * rng.standard_normal((size, size))
    return np.clip(img * 255.0, 0, 255).astype(np.uint8)


@register_synth("chest_drain")
def chest_drain(out_dir: str | Path, *, seed: int = 0, n: int | None = None, image_size: int = 32,
                correlation: float = 0.8, test_independent: bool = True, prevalence: float = 0.5,
                finding_contrast: float = 1.0, noise: float = 0.02, finding_spread: float = 0.0) -> Path:
    """Pneumothorax vs normal, with a chest drain planted as a shortcut.

    Args:
        out_dir: folder to write ``manifest.csv`` and ``images/`` into.
        seed: random seed (same seed, same files).
        n: number of images (default 240).
        image_size: square image side in pixels.
        correlation: drain-label correlation ``c`` in train/val (0 = independent, 1 = drain iff positive).
        test_independent: drain independent of the label in test (P = 0.5 in each class).
        prevalence: share of patients with pneumothorax.
        finding_contrast: how plainly the pneumothorax shows (1 = a dark rim-bounded region; lower: fainter).
        noise: standard deviation of the pixel noise (image intensities in 0..1).
        finding_spread: varying visibility: a pneumothorax shows at ``finding_contrast x (1 - spread x u)``,
            ``u`` uniform in 0..1 (near 1: some are too faint to see, as small ones on a supine film are).

    Returns:
        ``out_dir``. Columns: image, label (normal/pneumothorax), split (60/20/20 by patient), patient_id,
        chest_drain (0/1), sex (M/F, independent), age.
    """
    n = 240 if n is None else int(n)
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    group = _groups(n, rng)
    n_patients = int(group.max()) + 1
    patient_pos = rng.random(n_patients) < prevalence
    patient_pos[: 2] = [False, True]  # both classes always present
    patient_split = grouped_split(patient_pos.astype(int), rng)
    anatomy = np.column_stack([rng.uniform(-0.05, 0.05, n_patients), rng.uniform(-0.05, 0.05, n_patients),
                               rng.uniform(0.92, 1.05, n_patients), rng.uniform(0.85, 1.1, n_patients)])
    sex = rng.choice(["M", "F"], size=n_patients)
    age = rng.integers(18, 90, size=n_patients)
    positive = patient_pos[group]
    splits = patient_split[group]
    drain = shortcut_flags(positive, splits, correlation, rng, test_independent=test_independent)
    if not 0.0 <= finding_spread <= 1.0:
        raise ValueError(f"finding_spread must be in [0, 1], got {finding_spread}")
    names = []
    for i in range(n):  # spread 0 draws no extra random number: earlier outputs stay identical
        fade = finding_spread * rng.random() if finding_spread and positive[i] else 0.0
        contrast = finding_contrast * (1 - fade)
        img = _chest_image(image_size, anatomy[group[i]], bool(positive[i]), rng, contrast, noise)
        name = f"images/{i:04d}.png"
        if drain[i]:
            img, on = draw_drain(img, rng, thickness=max(1, image_size // 48), return_mask=True)
            write_mask(mask_path(out_dir, "chest_drain", out_dir / name), on)
        _save_png(img, out_dir / name)
        names.append(name)
    frame = pd.DataFrame({
        "image": names, "label": np.where(positive, "pneumothorax", "normal"), "split": splits,
        "patient_id": [f"P{g:04d}" for g in group], "chest_drain": drain, "sex": sex[group],
        "age": age[group]})
    return _write_manifest(out_dir, frame)


# ------------------------------------------------------------------------------------------------ dermoscopy

_DERM_STYLES = {
    # colour (RGB 0..1), radius, border irregularity, texture kind
    "MEL": ((0.28, 0.16, 0.11), 0.45, 0.28, "blue_grey"),
    "NV": ((0.55, 0.36, 0.23), 0.36, 0.04, "uniform"),
    "BCC": ((0.86, 0.52, 0.52), 0.38, 0.12, "vessels"),
    "BKL": ((0.72, 0.57, 0.37), 0.42, 0.10, "speckled"),
}
_STYLE_ORDER = ("NV", "MEL", "BKL", "BCC")


def _derm_image(size: int, cls: str, style_index: int, rng: np.random.Generator) -> np.ndarray:
    style = _DERM_STYLES.get(cls) or _DERM_STYLES[_STYLE_ORDER[style_index % 4]]
    colour, radius, irregular, texture = style
    if cls not in _DERM_STYLES:  # extra classes: a hue twist of a base style
        colour = tuple(np.roll(np.asarray(colour), style_index // 4 + 1))
    yy, xx = np.mgrid[-1:1:complex(size), -1:1:complex(size)]
    skin = np.array([0.88, 0.7, 0.58]) * rng.uniform(0.85, 1.05) + rng.normal(0, 0.02, 3)
    img = np.ones((size, size, 3)) * skin + 0.02 * _smooth_noise((size, size, 1), size / 10, rng)
    cx, cy = rng.uniform(-0.15, 0.15, 2)
    angle = np.arctan2(yy - cy, xx - cx)
    phases = rng.uniform(0, 2 * np.pi, 3)
    r = radius * rng.uniform(0.85, 1.15) * (1 + irregular * sum(np.sin((k + 2) * angle + phases[k]) / (k + 1)
                                                               for k in range(3)))
    dist = np.hypot(xx - cx, yy - cy)
    lesion = dist <= r
    tone = np.asarray(colour) * rng.uniform(0.9, 1.1)
    img[lesion] = tone
    if texture == "blue_grey":
        patch = lesion & (_smooth_noise((size, size), size / 12, rng) > 0.6)
        img[patch] = (0.38, 0.42, 0.52)
    elif texture == "vessels":
        for _ in range(3):
            a = rng.uniform(0, np.pi)
            line = lesion & (np.abs(np.cos(a) * (yy - cy) - np.sin(a) * (xx - cx)) < 1.2 / size)
            img[line] = (0.75, 0.12, 0.15)
        img[lesion & (dist < 0.25 * r)] = (0.95, 0.9, 0.9)
    elif texture == "speckled":
        speck = lesion & (rng.random((size, size)) < 0.25)
        img[speck] = np.clip(tone * 0.75, 0, 1)
    img += 0.015 * rng.standard_normal(img.shape)
    return np.clip(img * 255.0, 0, 255).astype(np.uint8)


def _draw_ruler(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = image.copy()
    h, w = out.shape[:2]
    row = 1 if rng.random() < 0.5 else h - 2
    tick = 1 if row == 1 else -1
    out[row, :] = 20
    for x in range(0, w, 3):
        out[row + tick, x] = 20
    return out


def _class_counts(classes: tuple[str, ...], n: int) -> np.ndarray:
    weights = np.array([DERM_FREQUENCIES.get(c, 0.15) for c in classes], dtype=float)
    counts = np.maximum(np.floor(weights / weights.sum() * n).astype(int), 8)
    counts[int(np.argmax(weights))] += n - counts.sum()
    if counts.min() < 1:
        raise ValueError(f"n={n} is too small for {len(classes)} classes")
    return counts


@register_synth("dermoscopy")
def dermoscopy(out_dir: str | Path, *, seed: int = 0, n: int | None = None, image_size: int = 32,
               classes: tuple[str, ...] | list[str] = ("MEL", "NV", "BCC", "BKL"), ruler_p_mel: float = 0.6,
               ruler_p_other: float = 0.2, test_independent: bool = True) -> Path:
    """Skin-lesion images whose class shows in colour, border and texture; a ruler weakly marks MEL.

    Args:
        out_dir: folder to write ``manifest.csv`` and ``images/`` into; seed: random seed.
        n: number of images (default 240; NV the most common class); image_size: square side in pixels.
        classes: class codes; MEL, NV, BCC, BKL have their own look, others get a variant of one.
        ruler_p_mel / ruler_p_other: ruler probability for MEL / other lesions in train and val.
        test_independent: in test the ruler appears with probability 0.5 whatever the class.

    Returns:
        ``out_dir``. Columns: image, label, split (60/20/20 by lesion), lesion_id, ruler (0/1), sex,
        age_approx, anatom_site.
    """
    n = 240 if n is None else int(n)
    classes = tuple(classes)
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.repeat(np.arange(len(classes)), _class_counts(classes, n)))
    # lesions imaged twice: sort images so that repeated lesions share a class
    order = np.argsort(labels, kind="stable")
    labels = labels[order]
    group = np.empty(n, dtype=int)
    next_group = 0
    for k in range(len(classes)):
        idx = np.flatnonzero(labels == k)
        g = _groups(len(idx), rng, p_second=0.2)
        group[idx] = g + next_group
        next_group += int(g.max()) + 1
    perm = rng.permutation(n)
    labels, group = labels[perm], group[perm]
    lesion_label = pd.Series(labels).groupby(group).first()
    lesion_split = pd.Series(grouped_split(lesion_label.to_numpy(), rng), index=lesion_label.index)
    splits = lesion_split.loc[group].to_numpy()
    is_mel = np.array([classes[k] == "MEL" for k in labels])
    ruler = shortcut_flags(is_mel, splits, 0.0, rng, test_independent=test_independent, p_pos=ruler_p_mel,
                           p_neg=ruler_p_other)
    n_lesions = next_group
    sex = rng.choice(["M", "F"], size=n_lesions)
    age = rng.integers(3, 18, size=n_lesions) * 5
    site = rng.choice(["torso", "lower extremity", "upper extremity", "head/neck"], size=n_lesions)
    names = []
    for i in range(n):
        img = _derm_image(image_size, classes[labels[i]], int(labels[i]), rng)
        if ruler[i]:
            img = _draw_ruler(img, rng)
        name = f"images/{i:04d}.png"
        _save_png(img, out_dir / name)
        names.append(name)
    frame = pd.DataFrame({
        "image": names, "label": [classes[k] for k in labels], "split": splits,
        "lesion_id": [f"L{g:04d}" for g in group], "ruler": ruler, "sex": sex[group],
        "age_approx": age[group],
        "anatom_site": site[group]})
    return _write_manifest(out_dir, frame)


# --------------------------------------------------------------------------------------------- drain overlay


@register_synth("drain_overlay")
def drain_overlay(out_dir: str | Path, *, base: str | Path, seed: int = 0, n: int | None = None,
                  correlation: float = 0.8, max_per_split: int | None = None, thickness: int = 1,
                  test_independent: bool = True) -> Path:
    """Draw the chest-drain shortcut on the images of a MedMNIST ``.npz``, keeping its split. The positive
    class is the last class for binary data (pneumonia in PneumoniaMNIST), "any class but the first" otherwise.

    Args:
        out_dir: folder to write ``manifest.csv`` and ``images/`` into.
        base: path to the MedMNIST ``.npz`` (or its folder).
        seed: random seed (subsampling, which images get a drain, where it is drawn).
        n: keep about this many images in all, each split shrunk in proportion (seeded); None keeps all.
        correlation: drain-label correlation in train/val.
        max_per_split: keep at most this many images per split (random, seeded).
        thickness: line width in pixels.
        test_independent: drain independent of the label in test.

    Returns:
        ``out_dir``. Columns: image, label (class names of the base), split, source_id (row id in the base),
        chest_drain (0/1). Drain masks: ``masks/chest_drain/images/`` (:mod:`clinagent_lab.data.counterfactual`).
    """
    from ..adapters.medmnist import load as load_medmnist  # deferred: heavy (pandas)

    base_ds = load_medmnist(Path(base))
    out_dir = Path(out_dir)
    (out_dir / "images").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    table = base_ds.table
    rows = []
    for split in ("train", "val", "test"):
        idx = np.flatnonzero(table["split"].to_numpy() == split)
        if n is not None and len(table) > n:
            idx = np.sort(rng.choice(idx, size=max(1, int(round(n * len(idx) / len(table)))), replace=False))
        if max_per_split is not None and len(idx) > max_per_split:
            idx = np.sort(rng.choice(idx, size=max_per_split, replace=False))
        rows.append(idx)
    rows = np.concatenate(rows)
    labels = table["label"].to_numpy()[rows]
    positive = labels > 0 if len(base_ds.classes) > 2 else labels == len(base_ds.classes) - 1
    splits = table["split"].to_numpy()[rows].astype(str)
    drain = shortcut_flags(positive, splits, correlation, rng, test_independent=test_independent)
    names = []
    for k, i in enumerate(rows):
        img = base_ds.read_image(int(i))
        name = f"images/{table['image_id'].iat[i]}.png"
        if drain[k]:
            img, on = draw_drain(img, rng, thickness=thickness, return_mask=True)
            write_mask(mask_path(out_dir, "chest_drain", out_dir / name), on)
        _save_png(img, out_dir / name)
        names.append(name)
    frame = pd.DataFrame({"image": names, "label": [base_ds.classes[y] for y in labels], "split": splits,
                          "source_id": table["image_id"].to_numpy()[rows], "chest_drain": drain})
    return _write_manifest(out_dir, frame)
