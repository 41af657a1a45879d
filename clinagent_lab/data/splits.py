"""Patient-grouped, label-stratified splits, leakage checks, and frozen split tables.

A dataset's own split is kept. What is missing is carved from the training rows:

- train and test given: validation = ``val_fraction`` of train;
- train and validation given: test = ``test_fraction`` of train;
- no split: test = ``test_fraction`` of everything, then validation so that it is ``val_fraction`` of
  everything (60/20/20 by default).

Carving keeps every group (patient, lesion) in one split and balances the classes
(:class:`sklearn.model_selection.StratifiedGroupKFold`, first fold held out). When a class has fewer groups
than folds, it falls back to :class:`~sklearn.model_selection.GroupShuffleSplit` (grouped, not stratified) and
says so in the rule. The same seed gives the same split.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections import defaultdict

import numpy as np
import pandas as pd

from ..errors import DataValidationError, LeakageError
from .base import LoadedDataset
from .memo import file_digests, memo_path, remembered_arrays
from .images import pixel_hash
from .validate import drop_rows

__all__ = ["SPLITS", "assign_splits", "check_leakage", "remove_cross_split_duplicates", "split_table",
           "apply_split_table", "holdout_mask", "without_split"]

SPLITS = ("train", "val", "test")


def holdout_mask(labels: np.ndarray, groups: np.ndarray, fraction: float,
                 seed: int) -> tuple[np.ndarray, str]:
    """Boolean mask of rows to hold out (about ``fraction`` of them), whole groups only.

    The search is remembered under the cache folder by a hash of its inputs (:mod:`clinagent_lab.data.memo`):
    scikit-learn's grouped stratified search loops over the groups in Python (about 10 s for 25,000 images),
    and the same labels, groups, fraction and seed always give the same mask.

    Returns:
        ``(mask, method)`` where method is ``"stratified"`` or ``"grouped only"``.
    """
    # scikit-learn: its version is part of the memo key (another version may split differently)
    import sklearn

    labels = np.asarray(labels)
    groups = np.asarray(groups).astype(str)
    parts = ["holdout-v1", sklearn.__version__, float(fraction), int(seed), str(labels.dtype),
             "\x1f".join(labels.astype(str).tolist()).encode("utf-8"), "\x1f".join(groups.tolist()).encode("utf-8")]
    saved = remembered_arrays("holdout", parts, lambda: _holdout_mask(labels, groups, fraction, seed))
    return saved["mask"].astype(bool), str(saved["method"])


def _holdout_mask(labels: np.ndarray, groups: np.ndarray, fraction: float, seed: int) -> dict[str, np.ndarray]:
    # scikit-learn: heavy, only for this computation
    from sklearn.model_selection import GroupShuffleSplit, StratifiedGroupKFold

    n_splits = max(2, int(round(1.0 / fraction)))
    n_groups = len(np.unique(groups))
    if n_groups < 2:
        raise DataValidationError("cannot split: all images belong to one group", where="group_id",
                                  fix="check the patient/group column, or provide the split yourself")
    groups_per_class = pd.DataFrame({"y": labels, "g": groups}).groupby("y")["g"].nunique()
    dummy = np.zeros(len(labels))
    mask = np.zeros(len(labels), dtype=bool)
    if n_groups >= n_splits and groups_per_class.min() >= n_splits:
        splitter = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _, held = next(splitter.split(dummy, labels, groups))
        method = "stratified"
    else:
        splitter = GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
        _, held = next(splitter.split(dummy, labels, groups))
        method = "grouped only"
    mask[held] = True
    return {"mask": mask, "method": np.array(method)}


def _current_splits(ds: LoadedDataset) -> pd.Series:
    split = ds.table["split"].astype(object)
    split = split.where(split.notna(), None)
    unknown = sorted({s for s in split.dropna()} - set(SPLITS))
    if unknown:
        raise DataValidationError(f"unknown split values {unknown}",
                                  where=f"dataset '{ds.format}' split column",
                                  fix="use train, val or test")
    return split


def _group_phrase(ds: LoadedDataset) -> str:
    col = ds.source.get("group_column")
    if col:
        return f"grouped by '{col}' (no group in two splits)"
    return "each image its own group (no patient id in the data)"


def assign_splits(ds: LoadedDataset, seed: int = 0, val_fraction: float = 0.2,
                  test_fraction: float = 0.2) -> tuple[LoadedDataset, str]:
    """Fill the ``split`` column; keep whatever split the dataset already has.

    Args:
        ds: the dataset.
        seed: random seed for the carving (same seed, same split).
        val_fraction: validation share (of everything when nothing is given, else of the training rows).
        test_fraction: test share (of everything when nothing is given, else of the training rows).

    Returns:
        ``(dataset with every split filled, human-readable rule)``.

    Example:
        >>> import numpy as np, pandas as pd
        >>> from clinagent_lab.data.base import LoadedDataset
        >>> t = pd.DataFrame({"image_id": [str(i) for i in range(50)], "label": [i % 2 for i in range(50)],
        ...                   "split": None, "group_id": [str(i // 2) for i in range(50)], "path": None})
        >>> read = lambda i: np.zeros((2, 2, 1), np.uint8)
        >>> ds = LoadedDataset("x", ".", "binary_classification", ["a", "b"], t, read)
        >>> out, rule = assign_splits(ds)
        >>> sorted(out.table["split"].value_counts().to_dict().items())
        [('test', 10), ('train', 30), ('val', 10)]
    """
    if not (0.0 <= val_fraction < 1.0 and 0.0 <= test_fraction < 1.0 and val_fraction + test_fraction < 1.0):
        raise DataValidationError(f"invalid split fractions val={val_fraction}, test={test_fraction}",
                                  fix="use fractions in [0, 1) whose sum is below 1")
    split = _current_splits(ds)
    present = set(split.dropna())
    own = present - {"train"}
    need_test, need_val = "test" not in present, "val" not in present
    pool = np.array(split.isna() | (split == "train"), dtype=bool)
    labels = ds.table["label"].to_numpy()
    groups = ds.table["group_id"].astype(str).to_numpy()
    out = split.copy()
    parts: list[str] = []
    if own:
        parts.append(f"dataset's own {'/'.join(s for s in SPLITS if s in present)} split kept")
    if (need_test or need_val) and not pool.any():
        raise DataValidationError("no training rows to carve validation/test from",
                                  where=f"dataset '{ds.format}'",
                                  fix="provide a train split")
    scale = 1.0
    if need_test and test_fraction > 0:
        idx = np.flatnonzero(pool)
        mask, method = holdout_mask(labels[idx], groups[idx], test_fraction, seed)
        out.iloc[idx[mask]] = "test"
        pool[idx[mask]] = False
        parts.append(f"test = {mask.mean():.0%} of {'all images' if not own else 'train'} ({method})")
        scale = 1.0 - test_fraction if not own else 1.0
    if need_val and val_fraction > 0:
        idx = np.flatnonzero(pool)
        frac = min(val_fraction / scale, 0.9)
        mask, method = holdout_mask(labels[idx], groups[idx], frac, seed + 1)
        out.iloc[idx[mask]] = "val"
        pool[idx[mask]] = False
        parts.append(f"val = {mask.mean():.0%} of the remaining training images ({method})")
    out[pool] = "train"
    if need_test or need_val:
        parts.append(_group_phrase(ds) + f", seed {seed}")
    rule = "; ".join(parts)
    table = ds.table.copy()
    table["split"] = out.astype(object).to_numpy()
    source = {**ds.source, "splits_given": bool(own), "split_rule": rule}
    return dataclasses.replace(ds, table=table, source=source), rule


def _content_hashes(ds: LoadedDataset, dataset_bytes_hash: bool) -> tuple[list[str], str]:
    paths = ds.table["path"].tolist()
    use_files = dataset_bytes_hash and all(st is not None for st in ds.files.stats(paths))
    if use_files:
        return file_digests(paths, memo_path(), listing=ds.files), "file bytes"
    return [pixel_hash(ds.read_image(i)) for i in range(len(paths))], "decoded pixels"


def _cross_split(keys: list[str], splits: list[str | None]) -> dict[str, set[str]]:
    seen: dict[str, set[str]] = defaultdict(set)
    for key, split in zip(keys, splits):
        if split is not None:
            seen[key].add(split)
    return {k: v for k, v in seen.items() if len(v) > 1}


def _group_leaks(ds: LoadedDataset) -> None:
    t = ds.table
    crossed = _cross_split(t["group_id"].astype(str).tolist(), t["split"].tolist())
    if crossed:
        name = ds.source.get("group_column") or "group_id"
        examples = "; ".join(f"{g} in {'/'.join(s for s in SPLITS if s in v)}"
                             for g, v in list(crossed.items())[:5])
        raise LeakageError(
            f"{len(crossed)} {name} value(s) appear in more than one split (e.g. {examples})",
            where=f"{ds.root}, column '{name}'",
            fix="re-split so that each patient/group sits in one split (leave the split column empty to let "
                "clinagent make grouped splits)")


def check_leakage(ds: LoadedDataset, dataset_bytes_hash: bool = True, *,
                  check_content: bool = True) -> dict[str, object]:
    """Stop when a patient/group or an identical image sits in two splits.

    Args:
        ds: a dataset whose splits are assigned.
        dataset_bytes_hash: compare file bytes (fast) when every row has a file; otherwise, or when False,
            compare decoded pixels (also catches the same picture saved twice in different files).
        check_content: set False to check groups only.

    Returns:
        What was checked: ``{"groups": n, "images_hashed": n, "method": ...}``.

    Raises:
        LeakageError: names up to five example groups or image ids and their splits.
    """
    _group_leaks(ds)
    report: dict[str, object] = {"groups": int(ds.table["group_id"].nunique()), "images_hashed": 0,
                                 "method": None}
    if not check_content:
        return report
    hashes, method = _content_hashes(ds, dataset_bytes_hash)
    report.update(images_hashed=len(hashes), method=method)
    crossed = _cross_split(hashes, ds.table["split"].tolist())
    if crossed:
        ids_by_hash: dict[str, list[str]] = defaultdict(list)
        for h, image_id, s in zip(hashes, ds.table["image_id"], ds.table["split"]):
            if h in crossed:
                ids_by_hash[h].append(f"{image_id} ({s})")
        examples = "; ".join(" = ".join(v) for v in list(ids_by_hash.values())[:5])
        raise LeakageError(
            f"{len(crossed)} identical image(s) appear in more than one split ({method}): {examples}",
            where=str(ds.root),
            fix="remove the duplicates (clinagent_lab.data.splits.remove_cross_split_duplicates drops the "
                "training copies and keeps the evaluation splits intact)")
    return report


def remove_cross_split_duplicates(ds: LoadedDataset, dataset_bytes_hash: bool = True) -> LoadedDataset:
    """Drop copies of images that also sit in a later split (train < val < test): test stays as it is."""
    hashes, method = _content_hashes(ds, dataset_bytes_hash)
    rank = {"train": 0, "val": 1, "test": 2}
    best: dict[str, int] = {}
    for h, s in zip(hashes, ds.table["split"]):
        if s in rank:
            best[h] = max(best.get(h, -1), rank[s])
    drop = [i for i, (h, s) in enumerate(zip(hashes, ds.table["split"])) if s in rank and rank[s] < best[h]]
    if not drop:
        return ds
    ids = ds.table["image_id"].iloc[drop].tolist()
    note = f"dropped {len(drop)} image(s) duplicated in a later split ({method}), e.g. {ids[:5]}"
    warnings.warn(note, stacklevel=2)
    return drop_rows(ds, drop, note)


def split_table(ds: LoadedDataset) -> pd.DataFrame:
    """``image_id, split, group_id`` for every row: written to CSV to freeze the split of a session (the group
    id, e.g. the patient, lets reports resample patients without reloading the data)."""
    return ds.table[["image_id", "split", "group_id"]].reset_index(drop=True).copy()


def apply_split_table(ds: LoadedDataset, df: pd.DataFrame,
                      max_absent_fraction: float = 0.05) -> LoadedDataset:
    """Replace the splits of ``ds`` by a frozen ``image_id, split`` table.

    Rows of ``ds`` absent from ``df`` (images dropped when the split was frozen: unreadable files, duplicates)
    are dropped with a note in ``warnings``; when more than ``max_absent_fraction`` of the rows are absent the
    data has changed since and :class:`DataValidationError` is raised. Ids in ``df`` that the dataset no
    longer has are ignored (noted). Splits other than train/val/test raise.
    """
    missing_cols = {"image_id", "split"} - set(df.columns)
    if missing_cols:
        raise DataValidationError(f"split table lacks columns {sorted(missing_cols)}", where="split table",
                                  fix="write the columns image_id,split")
    frozen = (df.assign(image_id=df["image_id"].astype(str)).drop_duplicates("image_id")
              .set_index("image_id")["split"])
    bad = sorted({str(s) for s in frozen} - set(SPLITS))
    if bad:
        raise DataValidationError(f"split table has unknown split values {bad[:5]}", where="split table",
                                  fix="use train, val or test")
    ids = ds.table["image_id"].astype(str)
    absent = np.flatnonzero(~ids.isin(frozen.index).to_numpy())
    if len(absent) > max_absent_fraction * len(ids):
        raise DataValidationError(
            f"{len(absent)} of {len(ids)} images are not in the frozen split table "
            f"(e.g. {ids.iloc[absent[:5]].tolist()})", where="split table",
            fix="the data changed since the split was frozen; start a new session or delete the split table")
    extra = int((~frozen.index.isin(ids)).sum())
    notes = [f"{extra} id(s) in the frozen split table are no longer in the data"] if extra else []
    if len(absent):
        ds = drop_rows(ds, absent, f"{len(absent)} image(s) left out when the split was frozen are skipped "
                                   f"(e.g. {ids.iloc[absent[:5]].tolist()})")
        ids = ds.table["image_id"].astype(str)
    table = ds.table.copy()
    table["split"] = frozen.reindex(ids).to_numpy(dtype=object)
    return dataclasses.replace(ds, table=table, warnings=[*ds.warnings, *notes])


def without_split(dataset: LoadedDataset, split: str) -> LoadedDataset:
    """A view of ``dataset`` with every row of ``split`` removed (pixels of those rows become unreachable)."""
    keep = np.flatnonzero(dataset.table["split"].to_numpy() != split)
    table = dataset.table.iloc[keep].reset_index(drop=True)
    read = dataset.read_image

    def read_image(i: int) -> np.ndarray:
        return read(int(keep[i]))

    kept_ids = set(table["image_id"])
    boxes = None if dataset.boxes is None else {k: v for k, v in dataset.boxes.items() if k in kept_ids}
    return LoadedDataset(format=dataset.format, root=dataset.root, task_type=dataset.task_type,
                         classes=list(dataset.classes), table=table, read_image=read_image,
                         metadata_columns=list(dataset.metadata_columns), boxes=boxes,
                         box_classes=dataset.box_classes, warnings=list(dataset.warnings),
                         source=dict(dataset.source), files=dataset.files)
