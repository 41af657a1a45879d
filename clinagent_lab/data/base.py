"""The contract every dataset format adapter fulfils, and the fingerprint schema.

An adapter turns a path on disk into a :class:`LoadedDataset`: one ``table`` (a pandas DataFrame, a row an
image) plus a way to read the pixels of row ``i``. Everything downstream (fingerprint, splits, datamodule,
evaluation) reads only this, so a new format is one adapter.

Table columns (always present):

- ``image_id`` (str): the identifier as the dataset gives it (file stem, ISIC id, SOP UID, npz index).
- ``label`` (int): class index into ``classes``; for detection, 1 if the image has a target box else 0
  (image-level label) and -1 where unknown.
- ``split`` (str or None): ``train`` / ``val`` / ``test`` when the dataset has its own split, else None.
- ``group_id`` (str): patient / lesion / study id when the data has one, else equal to ``image_id``.
- ``path`` (str or None): image file path, when images live in files.

Any other column is metadata (``metadata_columns``), e.g. ``chest_drain``, ``sex``, ``age_approx``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from pydantic import BaseModel, ConfigDict, Field

from .listing import FileListing

if TYPE_CHECKING:  # pandas and numpy load only where data is handled, not in the server's import path
    import numpy as np
    import pandas as pd

__all__ = ["LoadedDataset", "Box", "DatasetFingerprint", "ColumnAssociation", "REQUIRED_COLUMNS"]

REQUIRED_COLUMNS = ("image_id", "label", "split", "group_id", "path")


@dataclass
class Box:
    """One box in absolute pixel coordinates of the original image (x1, y1, x2, y2)."""

    x1: float
    y1: float
    x2: float
    y2: float
    label: int


@dataclass
class LoadedDataset:
    """A dataset in the common in-memory form. See the module docstring for the table's columns."""

    format: str
    root: Path
    task_type: str
    classes: list[str]
    table: pd.DataFrame
    read_image: Callable[[int], np.ndarray]
    """``read_image(i)`` -> HxWxC uint8 array for row ``i`` of ``table`` (C is 1 or 3)."""
    metadata_columns: list[str] = field(default_factory=list)
    boxes: dict[str, list[Box]] | None = None
    """Detection only: image_id -> boxes; images absent from the dict have no box annotation."""
    box_classes: list[str] | None = None
    warnings: list[str] = field(default_factory=list)
    source: dict[str, Any] = field(default_factory=dict)
    """What was read: file names, counts; shown in the report."""
    files: FileListing = field(default_factory=FileListing, repr=False, compare=False)
    """The ``stat`` of each image file, taken once and shared by every view of this dataset (validation,
    leakage digests, the image cache key: see :mod:`clinagent_lab.data.listing`)."""

    def __len__(self) -> int:
        return len(self.table)

    def subset_indices(self, split: str) -> np.ndarray:
        import numpy as np  # numpy stays out of the Jupyter server's start-up (see the imports above)

        return np.flatnonzero(self.table["split"].to_numpy() == split)


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ColumnAssociation(_Model):
    """How strongly one metadata column predicts the label on its own (shortcut audit)."""

    column: str
    kind: str = Field(description="binary, categorical or numeric")
    n_missing: int = 0
    n_levels: int | None = None
    auroc: float | None = Field(default=None, description="AUROC of the column alone for the positive class "
                                "(max(a, 1-a) orientation-free); None when undefined")
    cramers_v: float | None = None
    p_value: float | None = None
    flagged: bool = False
    note: str = ""


class DatasetFingerprint(_Model):
    """Aggregate statistics of a dataset; written beside every run as ``dataset_fingerprint.json``."""

    format: str
    root: str
    task_type: str
    classes: list[str]
    n_images: int
    class_counts: dict[str, int]
    split_counts: dict[str, dict[str, int]] = Field(description="split -> class -> count")
    splits_given: bool = Field(description="True when the dataset had its own split")
    split_rule: str = Field(description="how the splits were made, human-readable")
    image_sizes: dict[str, Any] = Field(description="min/median/max height and width")
    channels: list[int]
    group_column: str | None = None
    n_groups: int | None = None
    metadata_columns: list[str] = Field(default_factory=list)
    associations: list[ColumnAssociation] = Field(default_factory=list)
    imbalance_ratio: float = Field(description="largest class count / smallest (train split)")
    n_boxes: int | None = None
    box_fraction: float | None = None
    box_classes: list[str] | None = None
    leakage_checked: bool = False
    warnings: list[str] = Field(default_factory=list)
    content_hash: str = Field(default="", description="sha256 over image ids, labels and splits")

    def association(self, column: str) -> ColumnAssociation | None:
        return next((a for a in self.associations if a.column == column), None)
