"""Content digests of image files, remembered between sessions.

A file's digest is the sha256 of its bytes. Hashing 25,000 full-size JPEGs reads about a gigabyte, so digests
are remembered in a small SQLite table under the cache folder (see :func:`clinagent_lab.data.cache.cache_root`)
keyed by path and the file's ``(size, mtime_ns, inode)``, the way ``git``'s index and DVC's state database do:
an unchanged file is not read again, a touched or replaced file is hashed again. Keys built from these digests
(the preprocessed image cache, the leakage check) follow the files' content, not their timestamps.

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
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

__all__ = ["file_digests", "DIGEST_DB"]

DIGEST_DB = "digests.sqlite"
"""File name of the digest memo inside the cache folder."""


def _sha256(path: str) -> str:
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def _open_memo(memo: Path) -> sqlite3.Connection | None:
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(str(memo), timeout=30)
        db.execute("CREATE TABLE IF NOT EXISTS digests (path TEXT PRIMARY KEY, size INTEGER, mtime_ns INTEGER,"
                   " inode INTEGER, digest TEXT)")
        return db
    except (OSError, sqlite3.Error):
        return None  # an unwritable cache folder only costs hashing again


def file_digests(paths: list[str | Path], memo: Path | None, workers: int | None = None) -> list[str]:
    """sha256 of each file in ``paths`` (same order); files unchanged since a previous call are not read.

    Args:
        paths: image files.
        memo: the SQLite memo file (None: hash every file).
        workers: hashing threads (hashlib releases the GIL); default: the usable cores.
    """
    names = [os.path.abspath(str(p)) for p in paths]
    stats = [os.stat(p) for p in names]
    db = _open_memo(memo) if memo is not None else None
    known: dict[str, tuple[int, int, int, str]] = {}
    if db is not None:
        try:
            known = {row[0]: tuple(row[1:]) for row in db.execute(
                "SELECT path, size, mtime_ns, inode, digest FROM digests")}
        except sqlite3.Error:
            known = {}
    out: list[str | None] = []
    todo: list[int] = []
    for k, (name, st) in enumerate(zip(names, stats)):
        hit = known.get(name)
        if hit is not None and hit[:3] == (st.st_size, st.st_mtime_ns, st.st_ino):
            out.append(hit[3])
        else:
            out.append(None)
            todo.append(k)
    if todo:
        n = workers or len(os.sched_getaffinity(0))
        with ThreadPoolExecutor(max_workers=max(1, n)) as pool:
            for k, digest in zip(todo, pool.map(_sha256, [names[k] for k in todo], chunksize=64)):
                out[k] = digest
        if db is not None:
            rows = [(names[k], stats[k].st_size, stats[k].st_mtime_ns, stats[k].st_ino, out[k]) for k in todo]
            try:
                with db:
                    db.executemany("INSERT OR REPLACE INTO digests VALUES (?, ?, ?, ?, ?)", rows)
            except sqlite3.Error:
                pass  # read-only or full: the digests are still right, only not remembered
    if db is not None:
        db.close()
    return [d for d in out if d is not None]
