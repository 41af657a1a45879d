"""Classification train-loader throughput per worker process, from the on-disk cache, and where a worker's time goes.

Synthetic ISIC 2019 images (the real layout, JPEGs at ``--source-size``) are prepared and cached at 224 px once
(not timed); the initializer's dermoscopy augmentation (``plan.initializer.AUGMENT_BY_MODALITY``: preset medium,
flips, 90-degree rotations, colour jitter 0.1) and the same recipe at preset light are then measured two ways:

- ``cpu-float``: albumentations ``Normalize`` in the worker, float32 ``C x S x S`` tensors collated, pinned and
  copied to the device (the loader before device-side normalisation);
- ``uint8``: pixels stay uint8 through augmentation, ``ToTensorV2`` without a copy, uint8 batches; the
  normalisation (and channels_last) runs on the batch after the transfer (``ImageClassifier.on_after_batch_transfer``,
  timed here on the CPU apart: on a GPU it is one fused elementwise kernel per batch).

Figures printed (one JSON line each, then a table):

- ``throughput``: train-loader images/s over ``--epochs`` epochs (after a warm-up epoch, persistent workers)
  with ``num_workers`` 0, 1, 2, and per worker process (images/s divided by max(1, workers)); the consumer only
  takes the batches;
- ``profile``: one process, microseconds per image: memmap read, each albumentations op (its probability
  included: the mean over the images; each op called alone, so each carries its own call overhead), the
  float conversion, collation of a batch (per image), the whole ``Compose`` once more as a reference, and the
  device step on the CPU. OpenCV runs single-threaded (as in a loader worker) so that the figures are per core.

    python benchmarks/loader.py                      # 512 training images, both presets, 0/1/2 workers
    python benchmarks/loader.py --n 256 --workers 0  # quicker
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

SIZE = 224
PATHS = ("cpu-float", "uint8")


def _dataset(root: Path, n: int, source_size: int):
    from clinagent_lab.agent.engine import prepare_data
    from clinagent_lab.data.synth import generate
    from clinagent_lab.notebooks.runtime import without_split

    generate("isic2019", root, n=n, image_size=source_size, seed=0)
    return without_split(prepare_data(str(root))[0], "test")


def _recipe(dataset, preset: str, batch: int):
    from clinagent_lab.plan.initializer import AUGMENT_BY_MODALITY
    from clinagent_lab.recipe import Recipe, apply_patch

    augment = {f"augment.{k}": v for k, v in AUGMENT_BY_MODALITY["dermoscopy"][0].items()}
    base = Recipe(task_type="multiclass_classification", classes=list(dataset.classes))
    return apply_patch(base, {**augment, "augment.preset": preset, "data.image_size": SIZE, "data.batch_size": batch,
                              "data.cache_images": True, "model.in_channels": 3, "training.channels_last": True})


def _datamodule(dataset, recipe, path: str):
    from clinagent_lab.data.datamodule import ImageDataModule
    from clinagent_lab.data.transforms import build_transforms

    class CpuFloat(ImageDataModule):
        """The loader as it was: normalised float32 images made in the workers."""

        def _transform(self, train: bool):
            return build_transforms(self.recipe.augment, self.recipe.data.image_size, self.channels, self.modality,
                                    train=train, seed=self.recipe.seed if train else None, normalise=True)

    cls = CpuFloat if path == "cpu-float" else ImageDataModule
    dm = cls(dataset, recipe, modality="dermoscopy")
    dm.setup()
    return dm


def _device_step(batch):
    import torch

    from clinagent_lab.data.transforms import normalise_images

    return normalise_images(batch["image"].contiguous(memory_format=torch.channels_last))


def throughput(dm, path: str, workers: int, epochs: int) -> dict:
    dm.recipe.data.num_workers = workers
    loader = dm.train_dataloader()
    for _ in loader:  # warm-up epoch: workers start, caches fill
        pass
    n, start = 0, time.perf_counter()
    for _ in range(epochs):
        for batch in loader:  # the consumer only takes batches (a GPU's device step is asynchronous)
            n += len(batch["label"])
    rate = n / (time.perf_counter() - start)
    del loader
    return {"figure": "throughput", "path": path, "preset": dm.recipe.augment.preset, "workers": workers,
            "images": n, "images_per_s": round(rate, 1), "per_worker": round(rate / max(1, workers), 1)}


def profile(dm, path: str, limit: int) -> dict:
    import numpy as np
    import torch
    from torch.utils.data import default_collate

    ds = dm.datasets["train"]
    compose = ds.transform
    ops = list(compose.transforms)
    costs: dict[str, float] = {}

    def add(name: str, seconds: float) -> None:
        costs[name] = costs.get(name, 0.0) + seconds

    n = min(limit, len(ds))
    items = []
    for k in range(n):
        t = time.perf_counter()
        image = ds.cache[k]
        add("memmap read", time.perf_counter() - t)
        for i, op in enumerate(ops):
            t = time.perf_counter()
            image = op(image=image)["image"]
            add(f"{i}:{type(op).__name__}", time.perf_counter() - t)
        t = time.perf_counter()
        image = image.float() if image.dtype != torch.uint8 else image
        add("float conversion", time.perf_counter() - t)
        items.append({"image": image, "label": torch.tensor(0), "index": torch.tensor(k), "group": torch.tensor(-1)})
    t = time.perf_counter()
    whole = [compose(image=ds.cache[k])["image"] for k in range(n)]
    add("whole Compose (reference)", time.perf_counter() - t)
    t = time.perf_counter()
    read_only = [ds.cache[k] for k in range(n)]
    add("whole Compose (reference)", -(time.perf_counter() - t))
    del whole, read_only
    batch = dm.recipe.data.batch_size
    t = time.perf_counter()
    batches = [default_collate(items[a:a + batch]) for a in range(0, n, batch)]
    add("collate", time.perf_counter() - t)
    if path == "uint8":
        t = time.perf_counter()
        for b in batches:
            _device_step(b)
        add("device step on CPU (normalise + channels_last)", time.perf_counter() - t)
    us = {k: round(v / n * 1e6, 1) for k, v in costs.items()}
    worker = sum(v for k, v in us.items() if not k.startswith(("whole", "device")))
    return {"figure": "profile", "path": path, "preset": dm.recipe.augment.preset, "images": n, "us_per_image": us,
            "worker_us_per_image": round(worker, 1), "worker_images_per_s": round(1e6 / worker, 1),
            "bytes_per_image": int(np.prod(batches[0]["image"].shape[1:])) * batches[0]["image"].element_size()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=512, help="images in the synthetic dataset (train is ~70%%)")
    parser.add_argument("--source-size", type=int, default=512, help="side of the synthetic JPEGs")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--presets", nargs="+", default=["medium", "light"])
    parser.add_argument("--profile-images", type=int, default=200)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs per figure (after one warm-up epoch)")
    parser.add_argument("--work", default=None, help="folder for the data and the cache (default: a temporary one)")
    args = parser.parse_args()

    work = Path(args.work or tempfile.mkdtemp(prefix="loader-bench-"))
    os.environ["CLINAGENT_CACHE_DIR"] = str(work / "cache")
    import torch

    import cv2

    torch.set_num_threads(1)  # one core per process, as a loader worker has
    cv2.setNumThreads(0)
    dataset = _dataset(work / "data", args.n, args.source_size)
    rows = []
    for preset in args.presets:
        for path in PATHS:
            dm = _datamodule(dataset, _recipe(dataset, preset, args.batch), path)
            prof = profile(dm, path, args.profile_images)
            print(json.dumps(prof), flush=True)
            for workers in args.workers:
                row = throughput(dm, path, workers, args.epochs)
                print(json.dumps(row), flush=True)
                rows.append((row, prof))
    print(f"\n{'preset':8} {'path':10} {'workers':>7} {'img/s':>8} {'per worker':>10} {'profile img/s':>13}")
    for row, prof in rows:
        print(f"{row['preset']:8} {row['path']:10} {row['workers']:>7} {row['images_per_s']:>8} "
              f"{row['per_worker']:>10} {prof['worker_images_per_s']:>13}")


if __name__ == "__main__":
    main()
