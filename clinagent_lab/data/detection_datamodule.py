"""Detection data: which images train with which boxes, albumentations with boxes, and list-of-dict batches.

Training images by supervision (``LoadedDataset.boxes`` says which images are box-annotated):

- box-annotated images train with their boxes (an annotated image without findings has an empty target);
- images without box annotation and image label 0 train as empty targets (pure negatives);
- images without box annotation and image label 1 are *unboxed positives*: left out of the box loss, unless
  pseudo boxes were set for them (:meth:`DetectionDataModule.set_pseudo_boxes`, teacher-student training);
- images with an unknown label (-1) and no boxes are left out.

A batch is ``(images, targets, metas)``: lists of ``3xHxW`` float tensors in [0, 1] (grayscale repeated to
three channels), torchvision target dicts (``boxes`` x1y1x2y2 in input pixels, ``labels`` = box class index +
1, 0 being background) and meta dicts (``image_id``, ``row``, ``orig_size``, ``size``, ``annotated``,
``label``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..errors import DataValidationError
from ..recipe import Recipe
from .base import Box, LoadedDataset
from .images import to_channels

__all__ = ["DetectionDataModule", "DetectionDataset", "collate_detection", "build_transform", "MIN_BOX_SIDE",
           "AUGMENT_PROBABILITY"]

#: boxes narrower or lower than this (pixels, after the transform) are dropped: torchvision rejects them
MIN_BOX_SIDE = 1.0
#: probability of each random transform per augmentation preset
AUGMENT_PROBABILITY = {"none": 0.0, "light": 0.5, "medium": 0.7, "strong": 0.9}


def build_transform(recipe: Recipe, train: bool, extra: Sequence[Any] = ()) -> Any:
    """Albumentations: resize to an ``image_size`` square, then (train only) the recipe's augmentations."""
    import albumentations as A  # augmentation stack: only to build a loader

    size = recipe.data.image_size
    steps: list[Any] = [A.Resize(size, size)]
    aug = recipe.augment
    p = AUGMENT_PROBABILITY[aug.preset] if train else 0.0
    if p > 0:
        if aug.horizontal_flip:
            steps.append(A.HorizontalFlip(p=0.5))
        if aug.vertical_flip:
            steps.append(A.VerticalFlip(p=0.5))
        if aug.rotate_degrees > 0 or aug.scale > 0:
            steps.append(A.Affine(scale=(1 - aug.scale, 1 + aug.scale), rotate=(-aug.rotate_degrees,
                                  aug.rotate_degrees), rotate_method="ellipse", p=p))
        if aug.brightness_contrast > 0:
            steps.append(A.RandomBrightnessContrast(aug.brightness_contrast, aug.brightness_contrast, p=p))
    steps.extend(extra)
    return A.Compose(steps, bbox_params=A.BboxParams(format="pascal_voc", label_fields=["labels"],
                                                     min_visibility=0.3, clip=True))


def _box_arrays(boxes: Sequence[Box]) -> tuple[np.ndarray, np.ndarray]:
    coords = np.array([[b.x1, b.y1, b.x2, b.y2] for b in boxes], dtype=np.float32).reshape(-1, 4)
    labels = np.array([int(b.label) for b in boxes], dtype=np.int64)
    return coords, labels


class DetectionDataset(Dataset):
    """Rows of a :class:`LoadedDataset` with their boxes, transformed for a torchvision detector.

    Args:
        dataset: the loaded dataset.
        rows: table rows to serve.
        boxes: image_id -> boxes (original pixels); rows whose id is absent get an empty target.
        transform: albumentations Compose with pascal_voc bbox params.
        annotated: image ids that carry real box annotation (for ``meta["annotated"]``).
        cache: shared dict row -> decoded image, or None to decode every time.
    """

    def __init__(self, dataset: LoadedDataset, rows: Sequence[int], boxes: dict[str, list[Box]],
                 transform: Any, annotated: set[str], cache: dict[int, np.ndarray] | None = None) -> None:
        self.dataset = dataset
        self.rows = [int(r) for r in rows]
        self.boxes = boxes
        self.transform = transform
        self.annotated = annotated
        self.cache = cache
        self.ids = dataset.table["image_id"].astype(str).to_numpy()
        self.labels = dataset.table["label"].to_numpy().astype(int)

    def __len__(self) -> int:
        return len(self.rows)

    def _image(self, row: int) -> np.ndarray:
        if self.cache is not None and row in self.cache:
            return self.cache[row]
        image = to_channels(self.dataset.read_image(row), 3)
        if self.cache is not None:
            self.cache[row] = image
        return image

    def __getitem__(self, k: int) -> tuple[torch.Tensor, dict[str, torch.Tensor], dict[str, Any]]:
        row = self.rows[k]
        image_id = str(self.ids[row])
        image = self._image(row)
        coords, labels = _box_arrays(self.boxes.get(image_id, []))
        out = self.transform(image=image, bboxes=coords, labels=labels)
        boxes = np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4)
        kept = np.asarray(out["labels"], dtype=np.int64).reshape(-1)
        big = ((boxes[:, 2] - boxes[:, 0]) >= MIN_BOX_SIDE) & ((boxes[:, 3] - boxes[:, 1]) >= MIN_BOX_SIDE)
        pixels = np.ascontiguousarray(out["image"])
        tensor = torch.from_numpy(pixels).permute(2, 0, 1).float().div_(255.0)
        target = {"boxes": torch.from_numpy(boxes[big]), "labels": torch.from_numpy(kept[big] + 1)}
        meta = {"image_id": image_id, "row": row, "orig_size": tuple(image.shape[:2]),
                "size": tuple(pixels.shape[:2]), "annotated": image_id in self.annotated,
                "label": int(self.labels[row])}
        return tensor, target, meta


def collate_detection(batch: list[tuple[Any, Any, Any]]) -> tuple[list, list, list]:
    """``[(image, target, meta), ...]`` -> ``([images], [targets], [metas])``."""
    images, targets, metas = zip(*batch) if batch else ((), (), ())
    return list(images), list(targets), list(metas)


class DetectionDataModule(L.LightningDataModule):
    """Train/val (and, only when ``include_test``, test) loaders for a detection dataset with splits assigned.

    Args:
        dataset: a detection :class:`LoadedDataset` whose ``split`` column is filled (the engine's frozen
        split). recipe: the iteration's Recipe (image size, batch size, augmentation, seed).
        include_test: serve the test split (final evaluation only).
        extra_transforms: hook ``extra_transforms(train: bool) -> list`` of albumentations transforms appended
            after the built-in ones (they must keep boxes consistent).
        pseudo_boxes: image_id -> boxes for unboxed positives (teacher-student).
    """

    def __init__(self, dataset: LoadedDataset, recipe: Recipe, include_test: bool = False,
                 extra_transforms: Callable[[bool], list] | None = None,
                 pseudo_boxes: dict[str, list[Box]] | None = None) -> None:
        super().__init__()
        if dataset.boxes is None or not dataset.box_classes:
            raise DataValidationError(f"the {dataset.format} dataset has no boxes", where=str(dataset.root),
                                      fix="use a detection dataset (e.g. GRAZPEDWRI-DX with YOLO labels)")
        if dataset.table["split"].isna().any():
            raise DataValidationError("some rows have no split assigned", where=str(dataset.root),
                                      fix="assign patient-grouped splits first (the engine freezes them)")
        self.dataset = dataset
        self.recipe = recipe
        self.include_test = include_test
        self.extra_transforms = extra_transforms
        self.pseudo_boxes: dict[str, list[Box]] = dict(pseudo_boxes or {})
        self.box_classes = list(dataset.box_classes)
        self._cache: dict[int, np.ndarray] | None = {} if recipe.data.cache_images else None
        self._sets: dict[str, DetectionDataset] = {}

    # --- which rows -----------------------------------------------------------------------------------
    def split_rows(self, split: str) -> np.ndarray:
        if split == "test" and not self.include_test:
            raise DataValidationError("the test split is not available to an iteration", where="datamodule",
                                      fix="the test split is evaluated once, at the end, by the engine")
        rows = self.dataset.subset_indices(split)
        limit = self.recipe.data.max_train_samples
        if split == "train" and limit is not None and len(rows) > limit:
            rows = np.sort(np.random.default_rng(self.recipe.seed).choice(rows, limit, replace=False))
        return rows

    def _ids(self, rows: np.ndarray) -> list[str]:
        return self.dataset.table["image_id"].astype(str).to_numpy()[rows].tolist()

    def unboxed_positive_rows(self, split: str = "train") -> list[int]:
        """Rows of ``split`` with image label 1 and no box annotation (the pseudo-labelling candidates)."""
        rows = self.split_rows(split)
        labels = self.dataset.table["label"].to_numpy()[rows]
        return [int(r) for r, i, y in zip(rows, self._ids(rows), labels)
                if y == 1 and i not in self.dataset.boxes]

    def train_rows(self) -> list[int]:
        """Rows that train: annotated, unannotated negatives, and unboxed positives with pseudo boxes."""
        rows = self.split_rows("train")
        labels = self.dataset.table["label"].to_numpy()[rows]
        out = []
        for row, image_id, y in zip(rows, self._ids(rows), labels):
            if image_id in self.dataset.boxes or y == 0 or (y == 1 and image_id in self.pseudo_boxes):
                out.append(int(row))
        return out

    def supervision_summary(self) -> dict[str, int]:
        """Counts of train images by how they are supervised."""
        rows = self.split_rows("train")
        ids = self._ids(rows)
        labels = self.dataset.table["label"].to_numpy()[rows]
        boxed = sum(i in self.dataset.boxes for i in ids)
        negatives = sum(bool(i not in self.dataset.boxes and y == 0) for i, y in zip(ids, labels))
        unboxed = sum(bool(i not in self.dataset.boxes and y == 1) for i, y in zip(ids, labels))
        pseudo = sum(i in self.pseudo_boxes for i in ids if i not in self.dataset.boxes)
        return {"train_images": len(ids), "box_annotated": boxed, "negatives_without_boxes": negatives,
                "positives_without_boxes": unboxed, "pseudo_labelled": pseudo,
                "skipped": len(ids) - boxed - negatives - pseudo}

    def set_pseudo_boxes(self, pseudo_boxes: dict[str, list[Box]]) -> None:
        """Use ``pseudo_boxes`` for unboxed positives from now on (rebuilds the train set)."""
        self.pseudo_boxes = dict(pseudo_boxes)
        self._sets.pop("train", None)

    # --- datasets and loaders -------------------------------------------------------------------------
    def _extra(self, train: bool) -> list:
        return list(self.extra_transforms(train)) if self.extra_transforms is not None else []

    def make_set(self, rows: Sequence[int], train: bool) -> DetectionDataset:
        boxes = {**self.pseudo_boxes, **self.dataset.boxes} if train else self.dataset.boxes
        transform = build_transform(self.recipe, train, self._extra(train))
        return DetectionDataset(self.dataset, rows, boxes, transform, annotated=set(self.dataset.boxes),
                                cache=self._cache)

    def dataset_for(self, split: str) -> DetectionDataset:
        if split not in self._sets:
            if split == "train":
                rows = self.train_rows()
                if not rows:
                    raise DataValidationError(
                        "no training image has boxes or a negative label", where="train split",
                        fix="add YOLO label files for some training images, or image-level labels")
                self._sets[split] = self.make_set(rows, train=True)
            else:
                self._sets[split] = self.make_set(self.split_rows(split), train=False)
        return self._sets[split]

    def setup(self, stage: str | None = None) -> None:
        self.dataset_for("train")
        if len(self.dataset.subset_indices("val")):
            self.dataset_for("val")

    def loader(self, data: Dataset, shuffle: bool) -> DataLoader:
        generator = torch.Generator().manual_seed(self.recipe.seed)
        return DataLoader(data, batch_size=self.recipe.data.batch_size, shuffle=shuffle,
                          num_workers=self.recipe.data.num_workers, collate_fn=collate_detection,
                          generator=generator if shuffle else None,
                          persistent_workers=self.recipe.data.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self.loader(self.dataset_for("train"), shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self.loader(self.dataset_for("val"), shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self.loader(self.dataset_for("test"), shuffle=False)

    def dataloader_for(self, split: str) -> DataLoader:
        """Loader over every image of ``split`` without augmentation, in table order (for predictions)."""
        return self.loader(self.make_set(self.split_rows(split), train=False), shuffle=False)

    def rows_loader(self, rows: Sequence[int]) -> DataLoader:
        """Loader over the given rows without augmentation (e.g. pseudo-labelling candidates)."""
        return self.loader(self.make_set(rows, train=False), shuffle=False)
