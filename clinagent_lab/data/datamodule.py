"""Lightning datamodule over a :class:`~clinagent_lab.data.base.LoadedDataset` with assigned splits.

Batches are dicts:

- ``image``: uint8 tensor ``N x C x S x S`` of pixels 0-255 (C = ``recipe.model.in_channels``; grayscale and
  RGB converted), augmented; :func:`~clinagent_lab.data.transforms.normalise_images` makes it the model's float
  input, on the device after the transfer (``ImageClassifier.on_after_batch_transfer`` does it in training,
  validation, test and prediction): a quarter of the bytes of float32 through the workers, pinned memory and
  the host-to-device copy. (A custom ``extra_transforms`` step that gives float pixels makes the batches float
  tensors normalised in the workers, as before.)
- ``label``: long class index;
- ``index``: long row position in ``dataset.table`` (to join predictions back to ids and metadata);
- ``group``: long confounder code (``recipe.debias.column`` or ``group_column``; see ``group_codes``), -1
  when there is none.

The test split is only built with ``include_test=True`` (the engine does this once, at the end); every
``test_dataloader()`` call increments ``test_reads`` so that the session can record it.
"""

from __future__ import annotations

import copy
import warnings
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from lightning.pytorch import LightningDataModule
from torch.utils.data import DataLoader, Dataset

from ..errors import DataValidationError, SessionError
from ..recipe import Recipe
from .base import LoadedDataset
from .cache import image_cache
from .counterfactual import ArtefactSwap, has_masks, mask_path, masks_folder
from .images import to_channels
from .samplers import build_sampler
from .transforms import build_transforms, resize_transforms

__all__ = ["ImageDataModule", "ImageDataset", "group_codes_for", "MAX_GROUP_LEVELS", "MISSING_GROUP"]

MAX_GROUP_LEVELS = 8
"""Numeric confounder columns with more distinct values are binned at quartiles."""
MISSING_GROUP = "<missing>"


def group_codes_for(values: pd.Series) -> tuple[np.ndarray, dict[str, int]]:
    """Integer codes for a confounder column and the ``value -> code`` mapping (sorted levels).

    Missing values get their own level; numeric columns with more than :data:`MAX_GROUP_LEVELS` values are
    binned at quartiles (levels are the interval strings).

    Example:
        >>> codes, mapping = group_codes_for(pd.Series([1, 0, None, 1]))
        >>> codes.tolist(), mapping
        ([1, 0, 2, 1], {'0': 0, '1': 1, '<missing>': 2})
    """
    values = values.reset_index(drop=True)
    present = values.dropna()
    if pd.api.types.is_numeric_dtype(present) and present.nunique() > MAX_GROUP_LEVELS:
        values = pd.qcut(values.astype(float), 4, duplicates="drop").astype(object)
    elif pd.api.types.is_float_dtype(present) and np.all(np.mod(present.to_numpy(), 1) == 0):
        values = values.astype("Int64").astype(object)
    levels = pd.Series([MISSING_GROUP if pd.isna(v) else str(v) for v in values], dtype=object)
    names = sorted(set(levels) - {MISSING_GROUP}) + ([MISSING_GROUP] if MISSING_GROUP in set(levels) else [])
    mapping = {name: k for k, name in enumerate(names)}
    return levels.map(mapping).to_numpy(dtype=np.int64), mapping


class ImageDataset(Dataset):
    """Rows ``rows`` of a LoadedDataset, read (or taken from a cache), channel-converted and transformed."""

    def __init__(self, source: LoadedDataset, rows: np.ndarray, labels: np.ndarray, groups: np.ndarray,
                 channels: int, transform: Any, cache: Any = None) -> None:
        self.source = source
        self.rows = np.asarray(rows, dtype=np.int64)
        self.labels = np.asarray(labels, dtype=np.int64)
        self.groups = np.asarray(groups, dtype=np.int64)
        self.channels = channels
        self.transform = transform
        self.cache = cache
        self.counterfactual: Any = None  # a data.counterfactual.ArtefactSwap on the training split

    def __len__(self) -> int:
        return len(self.rows)

    def raw_image(self, k: int) -> np.ndarray:
        """The uint8 ``HxWxC`` image before augmentation (cached and resized when the cache is on)."""
        if self.cache is not None:  # a private copy (CachedImages copies already): tensors may share its memory
            return self.cache[k] if not isinstance(self.cache, np.ndarray) else self.cache[k].copy()
        # writable and contiguous: a channel-converted view (gray repeated to RGB) is read-only, and the uint8
        # pipeline may hand it to ToTensorV2 unchanged
        return np.require(to_channels(self.source.read_image(int(self.rows[k])), self.channels), requirements="CW")

    def __getitem__(self, k: int) -> dict[str, torch.Tensor]:
        raw, group = self.raw_image(k), int(self.groups[k])
        if self.counterfactual is not None:  # artefact added or removed (training only; torch-seeded draws)
            raw, group = self.counterfactual(k, raw, self.raw_image, tuple(torch.rand(2).tolist()))
        image = self.transform(image=raw)["image"]
        return {"image": image, "label": torch.tensor(self.labels[k], dtype=torch.long),
                "index": torch.tensor(self.rows[k], dtype=torch.long),
                "group": torch.tensor(group, dtype=torch.long)}

    def with_transform(self, transform: Any) -> ImageDataset:
        clone = copy.copy(self)
        clone.transform = transform
        clone.counterfactual = None  # the plain images: for scoring, refits and figures
        return clone


class ImageDataModule(LightningDataModule):
    """Train/val (and, on request, test) loaders for one Recipe.

    Args:
        dataset: a dataset whose ``split`` column is filled
            (see :func:`clinagent_lab.data.splits.assign_splits`).
        recipe: the iteration's Recipe (image size, batch size, sampler, augmentation, channels, seed).
        modality: decides the augmentation policy (see :mod:`clinagent_lab.data.transforms`).
        include_test: build the test split (the final, single evaluation only).
        group_column: confounder column for the ``group`` field when ``recipe.debias.column`` is unset.
        cache_limit_bytes: the in-memory image cache (rows without files, or no usable cache folder) is
            skipped (with a warning) above this size.
        use_disk_cache: keep resized images in the on-disk cache (:mod:`clinagent_lab.data.cache`), shared
            by every iteration, session and the final test.
        extra_transforms: custom hook ``extra_transforms(train) -> list of albumentations transforms``, added
            after the built-in augmentation (before normalisation).
        sample_weights: custom hook ``sample_weights(labels, groups) -> per-sample weights`` for the training
            sampler; replaces ``recipe.data.sampler``.
    """

    def __init__(self, dataset: LoadedDataset, recipe: Recipe, modality: str = "other",
                 include_test: bool = False, group_column: str | None = None,
                 cache_limit_bytes: int = 2 * 1024**3, use_disk_cache: bool = True,
                 extra_transforms: Callable[[bool], list] | None = None,
                 sample_weights: Callable[..., np.ndarray] | None = None) -> None:
        super().__init__()
        self.dataset = dataset
        self.recipe = recipe
        self.modality = modality
        self.include_test = include_test
        self.channels = int(recipe.model.in_channels)
        if self.channels not in (1, 3):
            raise DataValidationError(f"in_channels={self.channels} is not supported by the image loader",
                                      where="recipe.model.in_channels", fix="use 1 (grayscale) or 3 (RGB)")
        self.group_column = recipe.debias.column or group_column
        self.cache_limit_bytes = cache_limit_bytes
        self.use_disk_cache = use_disk_cache
        self.extra_transforms = extra_transforms
        self.sample_weights = sample_weights
        self.test_reads = 0
        self.predict_split = "val"
        self.datasets: dict[str, ImageDataset] = {}
        self.group_codes: dict[str, int] = {}
        self._row_groups = self._compute_groups()
        self._check_splits()

    # ------------------------------------------------------------------------------------------- building

    def _compute_groups(self) -> np.ndarray:
        table = self.dataset.table
        if self.group_column is None:
            return np.full(len(table), -1, dtype=np.int64)
        if self.group_column not in table.columns:
            raise DataValidationError(
                f"confounder column '{self.group_column}' is not in the data",
                where="recipe.debias.column",
                fix=f"use one of: {', '.join(self.dataset.metadata_columns) or '(none)'}")
        codes, self.group_codes = group_codes_for(table[self.group_column])
        return codes

    def _check_splits(self) -> None:
        split = self.dataset.table["split"]
        for name in ("train", "val"):
            if not (split == name).any():
                raise DataValidationError(f"the dataset has no '{name}' rows", where="table column 'split'",
                                          fix="assign splits first (clinagent_lab.data.splits.assign_splits)")

    def rows_for(self, split: str) -> np.ndarray:
        """Table rows of ``split``; train is subsampled to ``recipe.data.max_train_samples`` (seeded)."""
        if split not in ("train", "val", "test"):
            raise DataValidationError(f"unknown split '{split}'", fix="use train, val or test")
        rows = self.dataset.subset_indices(split)
        limit = self.recipe.data.max_train_samples
        if split == "train" and limit is not None and len(rows) > limit:
            rng = np.random.default_rng(self.recipe.seed)
            rows = np.sort(rng.choice(rows, size=limit, replace=False))
        return rows

    def _fill_cache(self, split: str, rows: np.ndarray) -> Any:
        """Images of ``rows`` (of ``split``) resized once: the on-disk cache (:mod:`.cache`) when the rows are
        files, else an in-memory array up to ``cache_limit_bytes``; None when caching is off or too big."""
        if not self.recipe.data.cache_images:
            return None
        size = self.recipe.data.image_size
        split_rows = self.dataset.subset_indices(split)  # the whole split: subsamples share one entry
        if self.use_disk_cache:
            cached = image_cache(self.dataset.read_image, self.dataset.table["path"].tolist(), split_rows,
                                 size=size, channels=self.channels, modality=self.modality,
                                 reader={"format": self.dataset.format,
                                         "options": self.recipe.data.format_options},
                                 label=f"caching {split} images ({size} px)",
                                 listing=self.dataset.files)
            if cached is not None:
                return cached.subset(np.searchsorted(split_rows, rows))
        need = len(rows) * size * size * self.channels
        if need > self.cache_limit_bytes:
            warnings.warn(f"image cache would need {need / 2**30:.1f} GiB; reading images from disk instead",
                          stacklevel=3)
            return None
        import albumentations as A  # deferred: heavy (OpenCV); the in-memory fallback only

        resize = A.Compose(resize_transforms(size, self.modality))
        cache = np.empty((len(rows), size, size, self.channels), dtype=np.uint8)
        for k, i in enumerate(rows):
            image = to_channels(self.dataset.read_image(int(i)), self.channels)
            cache[k] = resize(image=image)["image"].reshape(size, size, self.channels)
        return cache

    def _transform(self, train: bool) -> Any:
        extra = list(self.extra_transforms(train) or []) if self.extra_transforms is not None else None
        return build_transforms(self.recipe.augment, self.recipe.data.image_size, self.channels,
                                self.modality, train=train, seed=self.recipe.seed if train else None,
                                extra=extra)

    def _sampler(self, ds: ImageDataset) -> Any:
        if self.sample_weights is None:
            return build_sampler(self.recipe.data.sampler, ds.labels, ds.groups, seed=self.recipe.seed)
        from torch.utils.data import WeightedRandomSampler  # torch is imported by this module already

        weights = np.asarray(self.sample_weights(ds.labels.copy(), ds.groups.copy()), dtype=float).reshape(-1)
        valid = len(weights) == len(ds) and np.all(np.isfinite(weights)) and (weights >= 0).all()
        if not valid or weights.sum() <= 0:
            raise DataValidationError(
                f"custom sample_weights returned {len(weights)} weights for {len(ds)} training images, or "
                "negative/non-finite/all-zero values", where="recipe custom code 'sample_weights'",
                fix="return one finite, non-negative weight per training image")
        generator = torch.Generator().manual_seed(self.recipe.seed)
        return WeightedRandomSampler(torch.as_tensor(weights, dtype=torch.double), num_samples=len(ds),
                                     replacement=True, generator=generator)

    def _build(self, split: str) -> ImageDataset:
        rows = self.rows_for(split)
        labels = self.dataset.table["label"].to_numpy(dtype=np.int64)[rows]
        ds = ImageDataset(self.dataset, rows, labels, self._row_groups[rows], self.channels,
                          self._transform(train=split == "train"), self._fill_cache(split, rows))
        if split == "train" and self.recipe.debias.counterfactual > 0:
            ds.counterfactual = self._artefact_swap(ds)
        return ds

    def _artefact_swap(self, ds: ImageDataset) -> Any:
        """The counterfactual augmentation of the training split (the artefact's masks must exist)."""
        column, root = self.group_column, self.dataset.root
        if column is None or not has_masks(root, column):
            raise DataValidationError(
                f"counterfactual augmentation needs the location of confounder '{column}', but "
                f"{masks_folder(root, column or '<column>')} holds no masks", where="recipe.debias.counterfactual",
                fix="add one PNG mask per artefact-bearing image there, or set debias.counterfactual to 0")
        paths = self.dataset.table["path"].to_numpy()[ds.rows]
        files = [mask_path(root, column, p) if g > 0 else None for p, g in zip(paths, ds.groups)]
        files = [f if f is not None and f.is_file() else None for f in files]
        resize = None
        if ds.cache is not None:
            import albumentations as A  # heavy: only to resize masks for a resized cache

            resize = A.Compose(resize_transforms(self.recipe.data.image_size, self.modality))
        return ArtefactSwap(files, ds.groups, p=self.recipe.debias.counterfactual, resize=resize)

    def prepare_cache(self) -> None:
        """Build the on-disk cache entries of the splits this module reads, without building the loaders.

        The engine calls it before starting an iteration's kernel so that decoding a large dataset is done once,
        outside the iteration's time budget; the notebook's ``setup`` then finds the entries."""
        if not (self.recipe.data.cache_images and self.use_disk_cache):
            return
        for split in ("train", "val", "test") if self.include_test else ("train", "val"):
            rows = self.dataset.subset_indices(split)
            if len(rows):
                self._fill_cache(split, rows)

    def setup(self, stage: str | None = None) -> None:
        """Build train and val (and test when ``include_test``); idempotent."""
        splits = ("train", "val", "test") if self.include_test else ("train", "val")
        for split in splits:
            if split not in self.datasets:
                self.datasets[split] = self._build(split)

    # -------------------------------------------------------------------------------------------- loaders

    def _dataset(self, split: str) -> ImageDataset:
        if split == "test" and not self.include_test:
            raise SessionError("the test split is not available to this datamodule", where="test split",
                               fix="the test split is read once, at the end, with include_test=True")
        if split not in self.datasets:
            self.setup()
        return self.datasets[split]

    def _loader(self, dataset: ImageDataset, shuffle: bool = False, sampler: Any = None,
                drop_last: bool = False) -> DataLoader:
        workers = self.recipe.data.num_workers
        if workers > 0:
            import cv2  # deferred: heavy; only when loader workers are forked

            cv2.setNumThreads(0)  # loader workers are forked: an inherited OpenCV thread pool deadlocks them
        generator = torch.Generator().manual_seed(self.recipe.seed) if shuffle else None
        return DataLoader(dataset, batch_size=min(self.recipe.data.batch_size, max(len(dataset), 1)),
                          shuffle=shuffle, sampler=sampler, generator=generator, num_workers=workers,
                          drop_last=drop_last, persistent_workers=workers > 0,
                          pin_memory=self.pin_memory)

    @property
    def pin_memory(self) -> bool:
        """Page-locked batches when the recipe asks for them (``data.pin_memory``) and a GPU trains; a CPU recipe
        never probes CUDA."""
        return bool(self.recipe.data.pin_memory and self.recipe.training.accelerator != "cpu"
                    and torch.cuda.is_available())

    def train_dataloader(self) -> DataLoader:
        """Augmented, shuffled (or sampled per ``recipe.data.sampler``) training batches."""
        ds = self._dataset("train")
        sampler = self._sampler(ds)
        batch = min(self.recipe.data.batch_size, len(ds))
        drop_last = len(ds) > batch and len(ds) % batch == 1  # a batch of one breaks batch norm
        return self._loader(ds, shuffle=sampler is None, sampler=sampler, drop_last=drop_last)

    def val_dataloader(self) -> DataLoader:
        ds = self._dataset("val")
        return self._loader(ds, sampler=_unrepeated_shares(ds))

    def test_dataloader(self) -> DataLoader:
        """The test split; only with ``include_test=True``. Counts reads in ``test_reads``."""
        loader = self._loader(self._dataset("test"))
        self.test_reads += 1
        return loader

    def predict_dataloader(self) -> DataLoader:
        """Batches of ``predict_split`` (default val), no augmentation, in table order."""
        return self.dataloader_for(self.predict_split)

    def dataloader_for(self, split: str) -> DataLoader:
        """Any split without shuffling or augmentation (train too: for scoring the training images)."""
        if split == "test":
            return self.test_dataloader()
        ds = self._dataset(split)
        if split == "train":
            ds = ds.with_transform(self._transform(train=False))
        return self._loader(ds)

    # ------------------------------------------------------------------------------------------ summaries

    def class_counts(self, split: str = "train") -> np.ndarray:
        """Images per class in ``split`` (after ``max_train_samples``), length ``len(classes)``."""
        if split == "test" and not self.include_test:
            self._dataset("test")  # raises: test labels stay unread until the final evaluation
        labels = self.dataset.table["label"].to_numpy(dtype=np.int64)[self.rows_for(split)]
        return np.bincount(labels, minlength=len(self.dataset.classes))

    @property
    def num_classes(self) -> int:
        return len(self.dataset.classes)


def _unrepeated_shares(dataset: Dataset) -> Any:
    """Under DDP, each image on exactly one rank (None in a single process). Lightning's default sampler pads
    the split with repeats so that ranks get equal shares, and the gathered validation metrics would count
    those twice."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return None
    if not 2 <= torch.distributed.get_world_size() <= len(dataset):  # every rank needs an image
        return None
    # deferred: Lightning's sampler module, needed under DDP only
    from lightning.pytorch.overrides.distributed import UnrepeatedDistributedSampler

    return UnrepeatedDistributedSampler(dataset, shuffle=False)
