"""What preparing a dataset learns, remembered between sessions under the cache folder.

Preparing 25,000 full-size images reads about a gigabyte to hash the files, opens every file to check it, and
runs a grouped, stratified split whose scikit-learn search is a Python loop over the groups. None of that
changes while the files do not, so a second session on the same data should not pay for it again:

- **per-file facts** (a file's sha256, "this file opens") live in a small SQLite memo (``memo.sqlite``) keyed by
  path and the file's ``(size, mtime_ns, inode)``, the way ``git``'s index and DVC's state database do: an
  unchanged file is not read again, a touched or replaced file is read again;
- **results of pure computations** over many rows (a split's held-out mask) live in ``results/`` as ``.npz``
  files named by a sha256 of everything the result depends on (the rows' labels and groups, the fraction, the
  seed, the library version): different inputs give a different key, never a stale answer.

Everything here is an optimisation: an unwritable or damaged cache folder only costs the work again.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.bin"; _ = p.write_bytes(b"abc")
    >>> file_digests([p], memo=None)[0][:12]
    'ba7816bf8f01'
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from collections.abc import Callable, Iterable

import numpy as np

__all__ = ["CACHE_ENV", "MEMO_DB", "cache_root", "memo_path", "FileMemo", "file_digests", "remembered_arrays",
           "clear_memos"]

CACHE_ENV = "CLINAGENT_CACHE_DIR"
MEMO_DB = "memo.sqlite"
"""File name of the per-file memo inside the cache folder."""
_RESULTS = "results"
_OLD_FILES = ("digests.sqlite",)  # the digest-only memo of earlier versions, deleted by ``cache clear``


def cache_root() -> Path:
    """``$CLINAGENT_CACHE_DIR``, else ``~/.cache/clinagent`` (a folder the user can see and delete)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "clinagent"


def memo_path() -> Path:
    """The per-file memo of the current cache folder."""
    return cache_root() / MEMO_DB


class FileMemo:
    """Facts about files (``kind`` -> value), valid while the file's size, mtime and inode are unchanged.

    A memo that cannot be opened or written behaves as an empty one.
    """

    def __init__(self, path: Path | None) -> None:
        self.db: sqlite3.Connection | None = None
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(path), timeout=30)
            self.db.execute("CREATE TABLE IF NOT EXISTS facts (kind TEXT, path TEXT, size INTEGER, "
                            "mtime_ns INTEGER, inode INTEGER, value TEXT, PRIMARY KEY (kind, path))")
        except (OSError, sqlite3.Error):
            self.db = None

    def __enter__(self) -> FileMemo:
        return self

    def __exit__(self, *_: object) -> None:
        if self.db is not None:
            self.db.close()

    def lookup(self, kind: str, names: list[str], stats: list[os.stat_result]) -> list[str | None]:
        """The remembered value of each file (None where unknown or the file changed since)."""
        known: dict[str, tuple[int, int, int, str]] = {}
        if self.db is not None:
            try:
                known = {row[0]: tuple(row[1:]) for row in self.db.execute(
                    "SELECT path, size, mtime_ns, inode, value FROM facts WHERE kind = ?", (kind,))}
            except sqlite3.Error:
                known = {}
        out: list[str | None] = []
        for name, st in zip(names, stats):
            hit = known.get(name)
            out.append(hit[3] if hit is not None and hit[:3] == (st.st_size, st.st_mtime_ns, st.st_ino) else None)
        return out

    def store(self, kind: str, rows: Iterable[tuple[str, os.stat_result, str]]) -> None:
        """Remember ``(path, stat, value)`` rows; a read-only or full memo keeps nothing, silently."""
        if self.db is None:
            return
        values = [(kind, name, st.st_size, st.st_mtime_ns, st.st_ino, value) for name, st, value in rows]
        try:
            with self.db:
                self.db.executemany("INSERT OR REPLACE INTO facts VALUES (?, ?, ?, ?, ?, ?)", values)
        except sqlite3.Error:
            pass


def _sha256(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def file_digests(paths: list[str | Path], memo: Path | None, workers: int | None = None) -> list[str]:
    """sha256 of each file in ``paths`` (same order); files unchanged since a previous call are not read.

    Args:
        paths: image files.
        memo: the memo file (:func:`memo_path`; None: hash every file).
        workers: hashing threads (hashlib releases the GIL); default: the usable cores.
    """
    names = [os.path.abspath(str(p)) for p in paths]
    stats = [os.stat(p) for p in names]
    with FileMemo(memo) as db:
        out = db.lookup("sha256", names, stats)
        todo = [k for k, digest in enumerate(out) if digest is None]
        if todo:
            n = workers or len(os.sched_getaffinity(0))
            with ThreadPoolExecutor(max_workers=max(1, n)) as pool:
                for k, digest in zip(todo, pool.map(_sha256, [names[k] for k in todo], chunksize=64)):
                    out[k] = digest
            db.store("sha256", ((names[k], stats[k], out[k]) for k in todo))
    return [d for d in out if d is not None]


def _key(parts: Iterable[bytes | str | float | int]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else repr(part).encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


def remembered_arrays(name: str, parts: Iterable[bytes | str | float | int],
                      compute: Callable[[], dict[str, np.ndarray]],
                      root: Path | None = None) -> dict[str, np.ndarray]:
    """``compute()`` once per distinct ``parts``; later calls with equal parts read the saved arrays.

    ``compute`` must be a pure function of ``parts`` (everything it depends on, the library version included).
    The file is written under a temporary name and renamed into place, so a half-written result is never read.

    Example:
        >>> import tempfile, pathlib
        >>> root = pathlib.Path(tempfile.mkdtemp())
        >>> calls = []
        >>> f = lambda: calls.append(1) or {"x": np.arange(3)}
        >>> remembered_arrays("demo", [b"abc", 1], f, root)["x"].tolist()
        [0, 1, 2]
        >>> remembered_arrays("demo", [b"abc", 1], f, root)["x"].tolist(), len(calls)
        ([0, 1, 2], 1)
    """
    folder = (root or cache_root()) / _RESULTS
    path = folder / f"{name}-{_key(parts)}.npz"
    try:
        with np.load(path, allow_pickle=False) as saved:
            return {k: saved[k] for k in saved.files}
    except (OSError, ValueError, EOFError):
        pass  # not computed yet, or unreadable: compute it again
    result = compute()
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".{path.stem}.{uuid.uuid4().hex}.npz"
        np.savez(tmp, **result)
        os.replace(tmp, path)
    except OSError:
        pass  # an unwritable cache folder only costs the computation next time
    return result


def clear_memos(root: Path) -> None:
    """Delete the per-file memo and the remembered results (``clinagent cache clear``)."""
    for name in (MEMO_DB, *_OLD_FILES):
        (root / name).unlink(missing_ok=True)
    results = root / _RESULTS
    if results.is_dir():
        for f in results.iterdir():
            f.unlink(missing_ok=True)
        results.rmdir()
