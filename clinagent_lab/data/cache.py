"""Preprocessed image cache on disk: decode, convert and resize each image once, read it as a memory map.

Like nnU-Net's preprocessing step, every image of a split is decoded (DICOM windowing and ``MONOCHROME1``
through the dataset's own reader, see :mod:`clinagent_lab.data.dicom`), converted to the model's channels
and resized by the modality's deterministic resize rule (:func:`clinagent_lab.data.transforms.resize_transforms`)
once, into one ``N x S x S x C`` uint8 ``.npy`` file that every iteration, session, rerun and the final test
then memory-maps. Entries live under :func:`cache_root` (``$CLINAGENT_CACHE_DIR``, default
``~/.cache/clinagent``) in ``images/<key>/``; ``clinagent cache info`` lists them and ``clinagent cache clear``
deletes them.

The key is a sha256 over :data:`CACHE_VERSION`, the files' content digests in row order
(:mod:`clinagent_lab.data.memo`, looked up with the dataset's one ``stat`` pass,
:mod:`clinagent_lab.data.listing`), the image size, the channels, the resize rule (albumentations'
serialisation of it) and the dataset's reader (format and format options, such as a DICOM window): change
any of them and a new entry is built; an entry of an older version is never found and is rebuilt.

Building runs in worker processes (forked, so they share the dataset's reader) that each decode a chunk of
images and write them at their offsets with ``pwrite``: memory stays flat whatever the dataset size. The
entry is written into a temporary folder and renamed into place when complete, under a file lock, so a
half-written entry is never read and concurrent builders (two kernels, DDP ranks) build it once. A folder
that is not writable or too small gives a warning naming it, and the caller reads images without the cache.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import multiprocessing
import os
import shutil
import sys
import threading
import time
import uuid
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
from tqdm.auto import tqdm

from ..errors import DataValidationError
from .memo import CACHE_ENV, MEMO_DB, cache_root, clear_memos, file_digests
from .images import to_channels
from .listing import FileListing
from .transforms import resize_transforms

__all__ = ["CACHE_VERSION", "CACHE_ENV", "cache_root", "CachedImages", "image_cache", "cache_entries",
           "clear_cache", "usable_cores"]

CACHE_VERSION = 1
"""Bumped when the cached bytes for the same inputs would change; older entries are then rebuilt."""
WORKERS_ENV = "CLINAGENT_CACHE_WORKERS"
"""Build processes (default: the usable cores)."""
_DATA = "images.npy"
_META = "meta.json"
_CHUNK = 32


def usable_cores() -> int:
    """Cores this process may run on (the affinity mask, not the machine's total)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS
        return max(1, os.cpu_count() or 1)


def _env_workers() -> int:
    value = os.environ.get(WORKERS_ENV, "")
    return int(value) if value.isdigit() and int(value) > 0 else usable_cores()


class CachedImages:
    """Read-only ``N x S x S x C`` uint8 images of one cache entry, indexed by position; picklable (the
    memory map is opened lazily in each process, never copied into a pickle)."""

    def __init__(self, folder: str | Path, positions: np.ndarray | None = None) -> None:
        self.folder = Path(folder)
        self.meta = json.loads((self.folder / _META).read_text(encoding="utf-8"))
        self.positions = None if positions is None else np.asarray(positions, dtype=np.int64)
        self._array: np.ndarray | None = None

    @property
    def array(self) -> np.ndarray:
        if self._array is None:
            self._array = np.load(self.folder / _DATA, mmap_mode="r")
        return self._array

    def __len__(self) -> int:
        return int(self.meta["n"]) if self.positions is None else len(self.positions)

    def __getitem__(self, k: int) -> np.ndarray:
        i = int(k) if self.positions is None else int(self.positions[k])
        return np.array(self.array[i])  # a private copy: augmentations may write into it

    def subset(self, positions: np.ndarray) -> CachedImages:
        """The images at ``positions`` (of this view) as a new view on the same file."""
        base = np.arange(len(self)) if self.positions is None else self.positions
        view = CachedImages.__new__(CachedImages)
        view.folder, view.meta, view._array = self.folder, self.meta, None
        view.positions = base[np.asarray(positions, dtype=np.int64)]
        return view

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_array": None}


def _entry_key(digests: list[str], size: int, channels: int, rule: str, reader: dict[str, Any]) -> str:
    content = hashlib.sha256("\n".join(digests).encode()).hexdigest()
    blob = json.dumps({"version": CACHE_VERSION, "content": content, "size": size, "channels": channels,
                       "rule": rule, "reader": reader}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def resize_rule(size: int, modality: str) -> str:
    """The deterministic resize step as albumentations serialises it (part of the cache key)."""
    import albumentations as A  # deferred: heavy (OpenCV), only needed to key or build an entry

    return json.dumps(A.to_dict(A.Compose(resize_transforms(size, modality))), sort_keys=True)


def _valid(folder: Path, n: int, shape: tuple[int, ...]) -> bool:
    try:
        meta = json.loads((folder / _META).read_text(encoding="utf-8"))
        ok = meta.get("version") == CACHE_VERSION and meta.get("n") == n and tuple(meta["shape"]) == shape
        return ok and (folder / _DATA).stat().st_size >= meta["data_bytes"]
    except (OSError, ValueError, KeyError, TypeError):
        return False


# ------------------------------------------------------------------------------------------- building

_BUILD: dict[str, Any] = {}  # what forked workers inherit: the reader, the rows, the output file


def _build_chunk(bounds: tuple[int, int]) -> int | tuple[int, str]:
    """Decode, convert, resize and write rows ``bounds``; ``(position, why)`` when a row cannot be read."""
    state = _BUILD
    size, channels, offset = state["size"], state["channels"], state["offset"]
    item = size * size * channels
    fd = os.open(state["path"], os.O_WRONLY)
    try:
        for k in range(*bounds):
            try:
                image = to_channels(state["read"](int(state["rows"][k])), channels)
            except Exception as exc:  # noqa: BLE001 - reported with the file by the parent process
                return k, f"{type(exc).__name__}: {exc}"
            out = state["resize"](image=image)["image"].reshape(size, size, channels)
            os.pwrite(fd, np.ascontiguousarray(out, dtype=np.uint8).tobytes(), offset + k * item)
    finally:
        os.close(fd)
    return bounds[1] - bounds[0]


def _write(tmp: Path, read: Callable[[int], np.ndarray], rows: np.ndarray, size: int, channels: int,
           modality: str, workers: int, label: str, files: list[str]) -> None:
    import albumentations as A  # deferred: heavy (OpenCV), only needed to build an entry

    shape = (len(rows), size, size, channels)
    header = np.lib.format.open_memmap(tmp / _DATA, mode="w+", dtype=np.uint8, shape=shape)
    offset = int(header.offset)
    del header  # the header is written; the pixels go in with pwrite, never through a mapping
    _BUILD.update(read=read, rows=rows, size=size, channels=channels, path=str(tmp / _DATA), offset=offset,
                  resize=A.Compose(resize_transforms(size, modality)))
    chunks = [(a, min(a + _CHUNK, len(rows))) for a in range(0, len(rows), _CHUNK)]
    bar = tqdm(total=len(rows), desc=label, unit="img", file=sys.stderr, mininterval=1.0,
               disable=len(rows) < 2 * _CHUNK)


    def count(done: int | tuple[int, str]) -> None:
        if isinstance(done, tuple):
            raise DataValidationError(f"cannot read the image while caching it: {done[1]}",
                                      where=files[done[0]], fix="check or remove the file, then run again")
        bar.update(done)

    try:
        # forking is safe only from the main thread: a process forked from a worker thread of a threaded host
        # (the Jupyter server runs the engine in a thread pool) inherits locks other threads hold, and hangs
        fork = ("fork" in multiprocessing.get_all_start_methods()
                and threading.current_thread() is threading.main_thread())
        if workers > 1 and fork and len(chunks) > 1:
            import cv2  # deferred: heavy; its thread pool must be off before forking

            threads = cv2.getNumThreads()
            cv2.setNumThreads(0)  # children must not inherit OpenCV's thread pool: it deadlocks after fork
            try:
                with multiprocessing.get_context("fork").Pool(min(workers, len(chunks))) as pool:
                    for done in pool.imap_unordered(_build_chunk, chunks):
                        count(done)
            finally:
                cv2.setNumThreads(threads)
        else:
            for chunk in chunks:
                count(_build_chunk(chunk))
    finally:
        bar.close()
        _BUILD.clear()


def _fits(root: Path, need: int) -> str | None:
    """Why ``root`` cannot take ``need`` more bytes, or None."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".probe-{uuid.uuid4().hex}"
        probe.write_bytes(b"")
        probe.unlink()
        free = shutil.disk_usage(root).free
    except OSError as exc:
        return f"not writable ({exc.strerror or exc})"
    if free < need * 1.05 + 64 * 2**20:
        return f"too full ({free / 2**30:.1f} GiB free, {need / 2**30:.1f} GiB needed)"
    return None


def _warn(root: Path, why: str) -> None:
    warnings.warn(f"image cache folder {root} is {why}: reading images without the cache (every epoch "
                  f"decodes again); set {CACHE_ENV} to a writable folder with room", stacklevel=3)


def image_cache(read: Callable[[int], np.ndarray], paths: list[Any], rows: np.ndarray, *, size: int,
                channels: int, modality: str = "other", reader: dict[str, Any] | None = None,
                workers: int | None = None, label: str = "caching images",
                listing: FileListing | None = None) -> CachedImages | None:
    """The cache entry for ``rows`` at ``size`` x ``size`` x ``channels``, built first when missing.

    Args:
        read: ``read(row) -> HxWxC uint8`` (the dataset's ``read_image``).
        paths: file path of every row of the dataset (``table["path"]``); rows without a file cannot be keyed
            by content, so then None is returned.
        rows: the dataset rows to cache, in the order positions will index them.
        size, channels, modality: the resize rule and channel conversion.
        reader: what else decides the pixels (format, format options such as a DICOM window).
        workers: build processes; default: ``$CLINAGENT_CACHE_WORKERS``, else the usable cores.
        label: progress bar text.
        listing: the dataset's :class:`~.listing.FileListing` (``LoadedDataset.files``): files the preparation
            has stat-ed already are not stat-ed again; default: a listing of its own.

    Returns:
        The images, or None (no files, or the folder is unwritable/full: a warning names it).
    """
    rows = np.asarray(rows, dtype=np.int64)
    files = [paths[int(i)] for i in rows]
    listing = listing if listing is not None else FileListing()
    if not len(rows) or any(st is None for st in listing.stats(files)):
        return None
    root = cache_root()
    digests = file_digests(files, root / MEMO_DB, workers, listing=listing)
    key = _entry_key(digests, size, channels, resize_rule(size, modality), reader or {})
    images = root / "images"
    final = images / key
    shape = (len(rows), size, size, channels)
    if _valid(final, *shape[:1], shape):
        return CachedImages(final)
    need = int(np.prod(shape))
    why = _fits(images, need)
    if why is not None:
        _warn(root, why)
        return None
    try:
        with open(images / f"{key}.lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building the same entry
            if _valid(final, len(rows), shape):
                return CachedImages(final)
            if final.exists():
                shutil.rmtree(final)  # incomplete or from an older version
            tmp = images / f".{key}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
            tmp.mkdir()
            try:
                start = time.perf_counter()
                _write(tmp, read, rows, size, channels, modality, workers or _env_workers(), label, files)
                meta = {"version": CACHE_VERSION, "key": key, "n": len(rows), "shape": list(shape),
                        "data_bytes": need, "modality": modality, "reader": reader or {},
                        "first_file": files[0], "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                        "build_s": round(time.perf_counter() - start, 2)}
                (tmp / _META).write_text(json.dumps(meta, indent=2, default=str), encoding="utf-8")
                os.replace(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
    except OSError as exc:
        _warn(root, f"not usable ({exc.strerror or exc})")
        return None
    return CachedImages(final)


def cache_entries(root: Path | None = None) -> list[dict[str, Any]]:
    """Every entry under ``root`` (default :func:`cache_root`) with its size on disk; ``stale`` marks entries
    of an older version and unfinished builds (safe to delete)."""
    folder = (root or cache_root()) / "images"
    out = []
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if not path.is_dir():
            continue
        try:
            meta = json.loads((path / _META).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            meta = {}
        nbytes = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        out.append({"key": path.name, "path": str(path), "bytes": nbytes, "n": meta.get("n"),
                    "shape": meta.get("shape"), "created": meta.get("created"),
                    "first_file": meta.get("first_file"),
                    "stale": meta.get("version") != CACHE_VERSION or path.name.startswith(".")})
    return out


def clear_cache(root: Path | None = None, stale_only: bool = False) -> tuple[int, int]:
    """Delete cache entries (all, or only stale ones) and, for all, the memos of :mod:`clinagent_lab.data.memo`;
    returns ``(entries, bytes)``."""
    root = root or cache_root()
    entries = [e for e in cache_entries(root) if e["stale"] or not stale_only]
    for entry in entries:
        shutil.rmtree(entry["path"], ignore_errors=True)
    if not stale_only:
        for lock in (root / "images").glob("*.lock") if (root / "images").is_dir() else []:
            lock.unlink(missing_ok=True)
        clear_memos(root)
    return len(entries), sum(e["bytes"] for e in entries)
