"""Dataset fingerprint: counts, sizes, splits and a shortcut audit of every metadata column.

The shortcut audit asks, for each metadata column on the train+val rows: how well does this column alone
predict the label? Two views:

- AUROC of the column alone (binary label: numeric values used directly, categories target-encoded by their
  in-sample positive rate; orientation-free ``max(a, 1 - a)``; multiclass: macro average of one-vs-rest);
- Cramér's V and the chi-square p-value of the column x label table (numeric columns binned at quartiles;
  no continuity correction).

A column is ``flagged`` when AUROC >= 0.7 or V >= 0.3, and the association is significant (p < 0.05), so that
a handful of images cannot flag a column by chance. Constant and identifier-like columns are never flagged.
Missing values are their own level (a note says how many).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pandas as pd

from ..fileio import atomic_write_text
from .base import ColumnAssociation, DatasetFingerprint, LoadedDataset
from .images import image_file_info

__all__ = ["AUROC_FLAG", "CRAMERS_V_FLAG", "P_VALUE_FLAG", "MISSING_LEVEL", "compute_fingerprint",
           "column_association", "image_size_summary", "content_hash", "write_fingerprint",
           "read_fingerprint"]

AUROC_FLAG = 0.7
CRAMERS_V_FLAG = 0.3
P_VALUE_FLAG = 0.05
MISSING_LEVEL = "<missing>"


def _column_kind(values: pd.Series) -> str:
    present = values.dropna()
    if present.nunique() <= 2:
        return "binary"
    if pd.api.types.is_numeric_dtype(present) and not pd.api.types.is_bool_dtype(present):
        return "numeric"
    return "categorical"


def _is_identifier(values: pd.Series) -> bool:
    present = values.dropna()
    if len(present) < 10 or present.nunique() != len(present):
        return False
    if pd.api.types.is_float_dtype(present):
        return False  # continuous measurements are often unique per row
    return True


def _as_levels(values: pd.Series) -> pd.Series:
    """Values as strings with missing values as their own level."""
    return values.astype(object).where(values.notna(), MISSING_LEVEL).astype(str)


def _target_encode(levels: pd.Series, y: np.ndarray) -> np.ndarray:
    rates = pd.Series(y, index=levels.index).groupby(levels).mean()
    return levels.map(rates).to_numpy(dtype=float)


def _binary_auroc(score: np.ndarray, y: np.ndarray) -> float | None:
    from sklearn.metrics import roc_auc_score  # scikit-learn: heavy, only for this computation

    if len(np.unique(y)) < 2:
        return None
    a = float(roc_auc_score(y, score))
    return max(a, 1.0 - a)


def _auroc(values: pd.Series, kind: str, labels: np.ndarray, n_classes: int) -> float | None:
    numeric = kind == "numeric"
    present_classes = [k for k in range(n_classes) if (labels == k).any()]
    targets = [labels == present_classes[1]] if len(present_classes) == 2 else \
        [labels == k for k in present_classes]
    scores = []
    for target in targets:
        y = target.astype(int)
        if numeric:
            keep = values.notna().to_numpy()
            a = _binary_auroc(values.to_numpy(dtype=float)[keep], y[keep])
        else:
            levels = _as_levels(values)
            a = _binary_auroc(_target_encode(levels, y), y)
        if a is not None:
            scores.append(a)
    return float(np.mean(scores)) if scores else None


def _binned(values: pd.Series, kind: str) -> pd.Series:
    if kind == "numeric":
        bins = pd.qcut(values.astype(float), 4, duplicates="drop")
        return _as_levels(bins.astype(object).where(bins.notna(), None))
    return _as_levels(values)


def _cramers_v(levels: pd.Series, labels: np.ndarray) -> tuple[float | None, float | None]:
    from scipy.stats import chi2_contingency  # SciPy: heavy, only for this computation

    table = pd.crosstab(levels.to_numpy(), labels)
    if table.shape[0] < 2 or table.shape[1] < 2:
        return None, None
    chi2, p, _, _ = chi2_contingency(table.to_numpy(), correction=False)
    n = table.to_numpy().sum()
    v = float(np.sqrt(chi2 / (n * (min(table.shape) - 1))))
    return v, float(p)


def column_association(values: pd.Series, labels: np.ndarray, n_classes: int,
                       column: str) -> ColumnAssociation:
    """Shortcut-audit one metadata column against the labels (see the module docstring).

    Example:
        >>> import numpy as np, pandas as pd
        >>> y = np.array([0, 0, 0, 0, 1, 1, 1, 1] * 3)
        >>> a = column_association(pd.Series(y), y, 2, "drain")
        >>> a.kind, a.auroc, round(a.cramers_v, 2), a.flagged
        ('binary', 1.0, 1.0, True)
    """
    values = values.reset_index(drop=True)
    labels = np.asarray(labels)
    n_missing = int(values.isna().sum())
    kind = _column_kind(values)
    n_levels = int(_as_levels(values).nunique())
    missing_note = f"{n_missing} missing value(s) treated as their own level" if n_missing else ""
    if n_levels <= 1:
        return ColumnAssociation(column=column, kind=kind, n_missing=n_missing, n_levels=n_levels,
                                 note="constant: nothing to mitigate")
    if _is_identifier(values):
        return ColumnAssociation(column=column, kind=kind, n_missing=n_missing, n_levels=n_levels,
                                 note="identifier-like: one value per image, not a confounder")
    auroc = _auroc(values, kind, labels, n_classes)
    v, p = _cramers_v(_binned(values, kind), labels)
    strong = (auroc is not None and auroc >= AUROC_FLAG) or (v is not None and v >= CRAMERS_V_FLAG)
    flagged = bool(strong and (p is None or p < P_VALUE_FLAG))
    notes = [missing_note] if missing_note else []
    if kind == "numeric":
        notes.append("binned at quartiles for chi-square"
                     + ("; AUROC on non-missing rows" if n_missing else ""))
    if strong and not flagged:
        notes.append(f"strong but not significant (p = {p:.2g}); too few images to tell")
    return ColumnAssociation(column=column, kind=kind, n_missing=n_missing, n_levels=n_levels, auroc=auroc,
                             cramers_v=v, p_value=p, flagged=flagged, note="; ".join(notes))


def _sample_rows(n: int, k: int) -> np.ndarray:
    if n <= k:
        return np.arange(n)
    return np.sort(np.random.default_rng(0).choice(n, size=k, replace=False))


def image_size_summary(ds: LoadedDataset, sample_images: int = 500) -> tuple[dict[str, object], list[int]]:
    """``({"height": {min, median, max}, "width": {...}, "n_sampled": k}, channels)`` from a fixed sample.

    File-backed images are measured from their headers only; others are decoded through ``read_image``.
    """
    rows = _sample_rows(len(ds.table), sample_images)
    paths = ds.table["path"].tolist()
    heights, widths, channels = [], [], set()
    for i in rows:
        path = paths[i]
        if ds.files.is_file(path):
            h, w, c = image_file_info(path)
        else:
            h, w, c = ds.read_image(int(i)).shape
        heights.append(h)
        widths.append(w)
        channels.add(int(c))

    def stats(values: list[int]) -> dict[str, float]:
        return {"min": int(np.min(values)), "median": float(np.median(values)), "max": int(np.max(values))} \
            if values else {}

    return {"height": stats(heights), "width": stats(widths), "n_sampled": len(rows)}, sorted(channels)


def content_hash(table: pd.DataFrame) -> str:
    """sha256 over ``image_id, label, split`` in image-id order: changes when the data or split changes."""
    rows = table[["image_id", "label", "split"]].astype(str).sort_values("image_id")
    digest = hashlib.sha256()
    for image_id, label, split in rows.itertuples(index=False):
        digest.update(f"{image_id}\t{label}\t{split}\n".encode())
    return digest.hexdigest()


def _counts(labels: np.ndarray, classes: list[str]) -> dict[str, int]:
    counts = np.bincount(labels[labels >= 0].astype(int), minlength=len(classes))
    return {name: int(counts[k]) for k, name in enumerate(classes)}


def compute_fingerprint(ds: LoadedDataset, split_rule: str, leakage_checked: bool,
                        sample_images: int = 500) -> DatasetFingerprint:
    """Aggregate statistics of ``ds`` (splits assigned) and the shortcut audit of its metadata columns."""
    t = ds.table
    labels = t["label"].to_numpy(dtype=np.int64)
    split = t["split"].astype(object).where(t["split"].notna(), "unassigned")
    split_counts = {s: _counts(labels[(split == s).to_numpy()], ds.classes)
                    for s in ("train", "val", "test", "unassigned") if (split == s).any()}
    sizes, channels = image_size_summary(ds, sample_images)
    audit_rows = split.isin(["train", "val"]).to_numpy()
    if not audit_rows.any():
        audit_rows = np.ones(len(t), dtype=bool)
    associations = [column_association(t.loc[audit_rows, col], labels[audit_rows], len(ds.classes), col)
                    for col in ds.metadata_columns]
    train_counts = split_counts.get("train") or _counts(labels, ds.classes)
    nonzero = [c for c in train_counts.values() if c > 0]
    imbalance = float(max(nonzero) / min(nonzero)) if nonzero else 1.0
    group_column = ds.source.get("group_column")
    warnings = list(ds.warnings) + [
        f"metadata column '{a.column}' predicts the label on its own (AUROC {a.auroc:.2f}, "
        f"V {a.cramers_v:.2f}): a possible shortcut"
        for a in associations if a.flagged and a.auroc is not None and a.cramers_v is not None]
    boxes = ds.boxes
    return DatasetFingerprint(
        format=ds.format, root=str(ds.root), task_type=ds.task_type, classes=list(ds.classes),
        n_images=len(t),
        class_counts=_counts(labels, ds.classes), split_counts=split_counts,
        splits_given=bool(ds.source.get("splits_given", False)), split_rule=split_rule, image_sizes=sizes,
        channels=channels, group_column=group_column,
        n_groups=int(t["group_id"].nunique()) if group_column else None,
        metadata_columns=list(ds.metadata_columns), associations=associations, imbalance_ratio=imbalance,
        n_boxes=sum(len(v) for v in boxes.values()) if boxes is not None else None,
        box_fraction=float(t["image_id"].isin(list(boxes)).mean()) if boxes is not None and len(t) else None,
        box_classes=list(ds.box_classes) if ds.box_classes is not None else None,
        leakage_checked=leakage_checked, warnings=warnings, content_hash=content_hash(t))


def write_fingerprint(fp: DatasetFingerprint, path: str | Path) -> Path:
    """Write ``fp`` as indented JSON, atomically (a crash never leaves half a file)."""
    path = Path(path)
    atomic_write_text(path, fp.model_dump_json(indent=2))
    return path


def read_fingerprint(path: str | Path) -> DatasetFingerprint:
    """Read a fingerprint written by :func:`write_fingerprint`."""
    return DatasetFingerprint.model_validate_json(Path(path).read_text(encoding="utf-8"))
