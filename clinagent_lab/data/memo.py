"""What preparing a dataset learns, remembered between sessions under the cache folder.

Preparing 25,000 full-size images reads about a gigabyte to hash the files, opens every file to check it, and
runs a grouped, stratified split whose scikit-learn search is a Python loop over the groups. None of that
changes while the files do not, so a second session on the same data should not pay for it again:

- **per-file facts** (a file's sha256, "this file opens") live in a small SQLite memo (``memo.sqlite``) keyed
  by path and the file's ``(size, mtime_ns, ctime_ns, inode)`` (:class:`~.listing.FileStat`, from the
  dataset's one ``stat`` pass, :mod:`clinagent_lab.data.listing`), the way ``git``'s index and DVC's state
  database do: an unchanged file is not read again, a touched or replaced file is read again;
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

import errno
import hashlib
import os
import sqlite3
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from .listing import FileListing, FileStat

__all__ = ["CACHE_ENV", "MEMO_DB", "cache_root", "memo_path", "FileMemo", "file_digests", "remembered_arrays",
           "clear_memos", "SCHEMA_VERSION"]

CACHE_ENV = "CLINAGENT_CACHE_DIR"
MEMO_DB = "memo.sqlite"
"""File name of the per-file memo inside the cache folder."""
_RESULTS = "results"
_OLD_FILES = ("digests.sqlite",)  # the digest-only memo of earlier versions, deleted by ``cache clear``
SCHEMA_VERSION = 2
"""``PRAGMA user_version`` of :data:`MEMO_DB`; bumped when the table changes (2: ``ctime_ns`` in the stat key,
table clustered by ``(kind, path)``). A memo of an older version is rebuilt, never misread."""
_SCHEMA = ("CREATE TABLE facts (kind TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL, "
           "mtime_ns INTEGER NOT NULL, ctime_ns INTEGER NOT NULL, inode INTEGER NOT NULL, "
           "value TEXT NOT NULL, PRIMARY KEY (kind, path)) WITHOUT ROWID")
_BATCH = 500
"""Paths per lookup query (SQLite before 3.32 takes at most 999 parameters)."""


def cache_root() -> Path:
    """``$CLINAGENT_CACHE_DIR``, else ``~/.cache/clinagent`` (a folder the user can see and delete)."""
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "clinagent"


def memo_path() -> Path:
    """The per-file memo of the current cache folder."""
    return cache_root() / MEMO_DB


class FileMemo:
    """Facts about files (``kind`` -> value), valid while the file's :class:`~.listing.FileStat` is unchanged.

    The table's primary key is ``(kind, path)`` and a lookup asks for the given paths only, so its cost
    follows the dataset at hand, not every dataset the cache folder has seen. A memo of an older
    :data:`SCHEMA_VERSION` is emptied and rebuilt (its facts are learnt again); one of a newer version
    (another clinagent sharing the folder) is neither read nor written. A memo that cannot be opened or
    written behaves as an empty one.
    """

    def __init__(self, path: Path | None) -> None:
        self.db: sqlite3.Connection | None = None
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = _open(path)
        except (OSError, sqlite3.Error):
            self.db = None

    def __enter__(self) -> FileMemo:
        return self

    def __exit__(self, *_: object) -> None:
        if self.db is not None:
            self.db.close()

    def lookup(self, kind: str, names: list[str], stats: list[FileStat]) -> list[str | None]:
        """The remembered value of each file (None where unknown or the file changed since)."""
        known: dict[str, tuple[Any, ...]] = {}
        if self.db is not None:
            try:
                for start in range(0, len(names), _BATCH):
                    chunk = names[start:start + _BATCH]
                    rows = self.db.execute(_select(len(chunk)), (kind, *chunk))
                    known.update((row[0], row[1:]) for row in rows)
            except sqlite3.Error:
                known = {}
        out: list[str | None] = []
        for name, st in zip(names, stats):
            hit = known.get(name)
            out.append(hit[4] if hit is not None and hit[:4] == tuple(st) else None)
        return out

    def store(self, kind: str, rows: Iterable[tuple[str, FileStat, str]]) -> None:
        """Remember ``(path, stat, value)`` rows; a read-only or full memo keeps nothing, silently."""
        if self.db is None:
            return
        values = [(kind, name, *st, value) for name, st, value in rows]
        try:
            with self.db:
                self.db.executemany("INSERT OR REPLACE INTO facts VALUES (?, ?, ?, ?, ?, ?, ?)", values)
        except sqlite3.Error:
            pass


def _select(n: int) -> str:
    """The lookup of ``n`` paths of one kind: a search of the primary key per path, never a scan."""
    return ("SELECT path, size, mtime_ns, ctime_ns, inode, value FROM facts WHERE kind = ? AND path IN ("
            + ", ".join("?" * n) + ")")


def _open(path: Path) -> sqlite3.Connection | None:
    """The memo at ``path`` in the current schema (created or rebuilt), or None for a newer one."""
    db = sqlite3.connect(str(path), timeout=30)
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            db.close()
            return None
        if version < SCHEMA_VERSION:
            db.execute("BEGIN IMMEDIATE")  # one process rebuilds; another waits, then finds it done
            if db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
                db.execute("DROP TABLE IF EXISTS facts")
                db.execute(_SCHEMA)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            db.commit()
    except sqlite3.Error:
        db.close()
        raise
    return db


def _sha256(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def file_digests(paths: list[str | Path], memo: Path | None, workers: int | None = None,
                 listing: FileListing | None = None) -> list[str]:
    """sha256 of each file in ``paths`` (same order); files unchanged since a previous call are not read.

    Args:
        paths: image files.
        memo: the memo file (:func:`memo_path`; None: hash every file).
        workers: hashing threads (hashlib releases the GIL); default: the usable cores.
        listing: the dataset's :class:`~.listing.FileListing` (``LoadedDataset.files``), so that files the
            preparation has stat-ed already are not stat-ed again; default: a listing of its own.

    Raises:
        FileNotFoundError: a path is not a regular file.
    """
    names = [os.path.abspath(str(p)) for p in paths]
    found = (listing if listing is not None else FileListing()).stats(names)
    absent = next((n for n, st in zip(names, found) if st is None), None)
    if absent is not None:
        raise FileNotFoundError(errno.ENOENT, "no such file", absent)
    stats = [st for st in found if st is not None]
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
