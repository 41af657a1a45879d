"""Scale benchmark: preparing full-size ISIC/SIIM-layout data, the on-disk image cache, loader throughput.

Every figure runs in its own Python process so that its peak RSS (``ru_maxrss`` of the process and its workers)
is its own. Datasets are written once (synthetic, in the real layouts at full size) under ``--data``; the cache
goes to a fresh folder under ``--work``.

    python benchmarks/scale.py --data /tmp/scale_bench --sizes 1000 5000 25331 --siim 2000
    python benchmarks/scale.py --sizes 25331 --siim 0 --figures cold second   # a few minutes: cold + 2nd only

Figures printed (one JSON line each, then a table):

- ``prepare``: load + validate + split + leakage check + fingerprint (what ``clinagent run`` does first);
  ``stats_per_file``: ``os.stat`` calls per image file over the preparation and cache lookup (one pass: 1.0);
- ``cache``: building the train+val cache entries at 224 px with 1 worker process and with all cores;
- ``plain``: a plain PIL/pydicom decode-and-resize loop over the same files (1 core; all cores via a pool);
- ``second``: a second session on the same data (prepare + cache lookup) with the cache warm;
- ``loader``: images/s at 224 px from the cache vs decoding every time: per sample (read + evaluation
  transform, what the cache replaces) and through the validation DataLoader (batches of float32 tensors).

Imports (torch, Lightning, albumentations, scikit-learn) are done before each timer starts and reported apart
(``import_s``): they cost the same whatever the data size.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

SIZE = 224
FIGURES = ("cold", "one-worker", "second", "plain", "loader")


def _rss_mib() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, kids) / 1024, 1)


def _dataset(root: str):
    from clinagent_lab.agent.engine import prepare_data

    return prepare_data(root)


def _datamodule(dataset, fp, cache: bool = True):
    from clinagent_lab.data.datamodule import ImageDataModule
    from clinagent_lab.recipe import Recipe

    recipe = Recipe(task_type="multiclass_classification" if len(dataset.classes) > 2 else "binary_classification",
                    classes=list(dataset.classes))
    recipe.data.image_size, recipe.data.cache_images, recipe.data.batch_size = SIZE, cache, 64
    recipe.model.in_channels = 1 if dataset.format == "siim_acr" else 3
    modality = "chest_xray" if dataset.format == "siim_acr" else "dermoscopy"
    from clinagent_lab.notebooks.runtime import without_split

    return ImageDataModule(without_split(dataset, "test"), recipe, modality=modality)


def step(name: str, root: str, workers: int, limit: int) -> dict:
    """One measurement, in this process."""
    t_import = time.perf_counter()
    import albumentations  # noqa: F401  (imports are a fixed cost, measured apart from the data work)
    import sklearn.model_selection  # noqa: F401

    import clinagent_lab.agent.engine  # noqa: F401
    import clinagent_lab.data.datamodule  # noqa: F401

    stats = _count_stats(_files(root, 10**9)) if name in ("prepare", "second", "cache") else None
    start = time.perf_counter()
    out: dict = {"step": name, "root": root, "workers": workers, "import_s": round(start - t_import, 2)}
    if name in ("prepare", "second", "cache"):
        dataset, fp = _dataset(root)
        out["prepare_s"] = round(time.perf_counter() - start, 2)
        out["n"] = len(dataset.table)
        if name != "prepare":
            os.environ["CLINAGENT_CACHE_WORKERS"] = str(workers)
            t = time.perf_counter()
            dm = _datamodule(dataset, fp)
            from clinagent_lab.data.cache import cache_entries

            before = {e["key"] for e in cache_entries()}
            dm.prepare_cache()
            out["cache_s"] = round(time.perf_counter() - t, 2)
            out["entries_built"] = len({e["key"] for e in cache_entries()} - before)
            n = len(dm.dataset.table)
            out["cached"] = n
            out["cache_img_s"] = round(n / max(out["cache_s"], 1e-9), 1)
    elif name == "plain":
        out.update(_plain(root, workers, limit))
    elif name == "loader":
        out.update(_loader(root, limit))
    out["wall_s"] = round(time.perf_counter() - start, 2)
    out["peak_rss_mib"] = _rss_mib()
    if stats is not None:  # os.stat calls per image file over the whole step (one pass: 1)
        out["stats_per_file"] = round(sum(stats.values()) / max(len(stats), 1), 2)
        out["files_stat_ed"] = len(stats)
    return out


def _count_stats(files: list[str]) -> dict[str, int]:
    """Count ``os.stat`` calls on ``files`` in this process from now on (``os.path.isfile``, ``Path.is_file``
    and ``Path.stat`` go through it); a wrapper costs about a microsecond a call."""
    names = {os.path.abspath(f) for f in files}
    counts: dict[str, int] = {}
    real = os.stat

    def counting(path, *args, **kwargs):
        if not isinstance(path, int):
            name = os.path.abspath(os.fsdecode(path))
            if name in names:
                counts[name] = counts.get(name, 0) + 1
        return real(path, *args, **kwargs)

    os.stat = counting
    return counts


def _plain_one(path: str) -> int:
    import cv2
    import numpy as np

    cv2.setNumThreads(1)
    if path.endswith(".dcm"):
        import pydicom

        ds = pydicom.dcmread(path)
        arr = ds.pixel_array.astype(np.float32)
        arr = (arr - arr.min()) / max(float(arr.max() - arr.min()), 1.0) * 255
        if ds.PhotometricInterpretation == "MONOCHROME1":
            arr = 255 - arr
        image = arr.astype(np.uint8)
    else:
        from PIL import Image

        with Image.open(path) as img:
            image = np.asarray(img.convert("RGB"))
    return int(cv2.resize(image, (SIZE, SIZE), interpolation=cv2.INTER_AREA).size)


def _files(root: str, limit: int) -> list[str]:
    files = sorted(str(p) for p in Path(root).rglob("*") if p.suffix in (".jpg", ".dcm"))
    return files[:limit]


def _plain(root: str, workers: int, limit: int) -> dict:
    files = _files(root, limit)
    t = time.perf_counter()
    if workers > 1:
        from multiprocessing import get_context

        with get_context("fork").Pool(workers) as pool:
            pool.map(_plain_one, files, chunksize=32)
    else:
        for f in files:
            _plain_one(f)
    s = time.perf_counter() - t
    return {"plain_n": len(files), "plain_s": round(s, 2), "plain_img_s": round(len(files) / s, 1)}


def _loader(root: str, limit: int) -> dict:
    """Validation images at 224 px: per-sample fetch + eval transform, and whole DataLoader batches."""
    dataset, fp = _dataset(root)
    out = {}
    for cache in (True, False):
        dm = _datamodule(dataset, fp, cache=cache)
        dm.setup()
        ds = dm.datasets["val"]
        n = min(limit, len(ds))
        t = time.perf_counter()
        for k in range(n):
            ds[k]
        tag = "cache" if cache else "decode"
        out[f"{tag}_sample_img_s"] = round(n / (time.perf_counter() - t), 1)
        t, seen = time.perf_counter(), 0
        for batch in dm.val_dataloader():
            seen += len(batch["label"])
            if seen >= limit:
                break
        out[f"{tag}_loader_img_s"] = round(seen / (time.perf_counter() - t), 1)
    out["sample_speedup"] = round(out["cache_sample_img_s"] / out["decode_sample_img_s"], 1)
    out["loader_speedup"] = round(out["cache_loader_img_s"] / out["decode_loader_img_s"], 1)
    return out


def _run(name: str, root: str, workers: int = 1, limit: int = 2000, env: dict | None = None) -> dict:
    cmd = [sys.executable, __file__, "--step", name, "--root", root, "--workers", str(workers),
           "--limit", str(limit)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **(env or {})}, check=False)
    if done.returncode:
        raise SystemExit(f"step {name} on {root} failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(result), flush=True)
    return result


def _generate(data: Path, sizes: list[int], siim: int) -> list[Path]:
    from clinagent_lab.data.synth.seed_formats import isic2019, siim_acr

    roots = []
    for n in sizes:
        root = data / f"isic_{n}"
        if not (root / "ISIC_2019_Training_GroundTruth.csv").exists():
            isic2019(root, n=n, image_size=96, save_size=(450, 600), seed=n)
        roots.append(root)
    if siim:
        root = data / f"siim_{siim}"
        if not (root / "train-rle.csv").exists():
            siim_acr(root, n=siim, image_size=1024, seed=1, n_test=0)
        roots.append(root)
    return roots


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", default="/tmp/clinagent-scale", help="where the synthetic datasets are written")
    ap.add_argument("--work", default=None, help="cache folder (default: <data>/cache-bench, emptied first)")
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 25331])
    ap.add_argument("--siim", type=int, default=2000, help="SIIM-layout DICOMs at 1024x1024 (0: none)")
    ap.add_argument("--plain-limit", type=int, default=1000, help="files in the plain decode loop")
    ap.add_argument("--figures", nargs="+", choices=FIGURES, default=list(FIGURES),
                    help="what to measure (default: all); 'cold second' is the preparation alone")
    ap.add_argument("--step", help=argparse.SUPPRESS)
    ap.add_argument("--root", help=argparse.SUPPRESS)
    ap.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    ap.add_argument("--limit", type=int, default=2000, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.step:
        print(json.dumps(step(args.step, args.root, args.workers, args.limit)))
        return
    import shutil

    from clinagent_lab.data.cache import usable_cores

    cores = usable_cores()
    print(f"cores: {cores}, load average: {os.getloadavg()}", flush=True)
    data = Path(args.data)
    roots = _generate(data, args.sizes, args.siim)
    work = Path(args.work or data / "cache-bench")
    rows = []
    want = set(args.figures)
    for root in roots:
        r = str(root)
        shutil.rmtree(work, ignore_errors=True)
        env = {"CLINAGENT_CACHE_DIR": str(work)}
        one = (_run("cache", r, 1, env=env) if "one-worker" in want and (root == roots[0] or "siim" in r)
               else None)
        shutil.rmtree(work, ignore_errors=True)
        cold = _run("cache", r, cores, env=env)  # always: the later figures read its cache folder
        row = {"data": root.name, "n": cold["n"], "prepare_s": cold["prepare_s"], "cache_s": cold["cache_s"],
               "cache_img_s": cold["cache_img_s"], "cache_1core_img_s": one and one["cache_img_s"],
               "first_total_s": round(cold["prepare_s"] + cold["cache_s"], 1),
               "peak_rss_mib": cold["peak_rss_mib"], "stats_per_file": cold["stats_per_file"]}
        if "second" in want:
            second = _run("second", r, cores, env=env)
            row.update(second_total_s=round(second["prepare_s"] + second["cache_s"], 1),
                       second_prepare_s=second["prepare_s"], second_rebuilt=second["entries_built"],
                       second_stats_per_file=second["stats_per_file"], import_s=second["import_s"])
        if "plain" in want:
            row.update(plain_1core_img_s=_run("plain", r, 1, args.plain_limit)["plain_img_s"],
                       plain_img_s=_run("plain", r, cores, args.plain_limit)["plain_img_s"])
        if "loader" in want:
            loader = _run("loader", r, 1, 2000, env=env)
            row.update(sample_cache_img_s=loader["cache_sample_img_s"],
                       sample_decode_img_s=loader["decode_sample_img_s"],
                       sample_speedup=loader["sample_speedup"], loader_cache_img_s=loader["cache_loader_img_s"],
                       loader_decode_img_s=loader["decode_loader_img_s"],
                       loader_speedup=loader["loader_speedup"])
        rows.append(row)
    print("\n| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows:
        print("| " + " | ".join(str(v) for v in row.values()) + " |")
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
