"""The files of a dataset, each ``stat``-ed once: shared by validation, leakage digests and the cache key.

Three steps of preparing a dataset need to know, for every row, whether its file exists and whether it changed
since the memo (:mod:`clinagent_lab.data.memo`) last saw it: the image check (:func:`.validate.check_images`),
the leakage check's content digests (:func:`.splits.check_leakage`) and the image cache's key
(:func:`.cache.image_cache`). On a network file system (a hospital cluster's NFS or Lustre) a ``stat`` is a
round trip to the server, so 25,000 files cost seconds per pass. Each of those steps asks the dataset's
:class:`FileListing` (``LoadedDataset.files``) instead: the first ask stats a file, later asks read the
answer. When the first files of a large ask answer slowly (a remote server, a cold disk), the rest are spread
over threads, as ``git``'s preloaded index does: ``stat`` waits on the server, not on the CPU, and releases
the GIL (on a local disk whose inodes are cached, threads would only add their overhead: 25,000 files take
0.1 s in one thread and 0.5 s in sixteen).

A listing is a snapshot taken when a file is first asked about; every view of a dataset (splits assigned, rows
dropped, test rows removed) shares its parent's. A dataset loaded again (the next session, each notebook
kernel) takes a new one, and a file changed since is then seen as changed: the memo's facts are keyed by the
stat, the image cache by the content digests.

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "a.png"; _ = p.write_bytes(b"abc")
    >>> files = FileListing()
    >>> [st.size if st else None for st in files.stats([str(p), str(p.parent), None, ""])]
    [3, None, None, None]
    >>> len(files)  # the file and the folder were asked about; None and "" are no file names
    2
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, NamedTuple

__all__ = ["FileStat", "FileListing", "file_name"]

_PROBE = 256
"""Files stat-ed in the calling thread before deciding whether threads would help."""
_SLOW_S = 50e-6
"""A mean ``stat`` slower than this (a cached local one takes about 5 us) sends the rest to threads."""
_THREADS = 16
"""Threads for the rest (``stat`` is I/O-bound: more threads than cores pay off on a network mount)."""


class FileStat(NamedTuple):
    """What tells a file apart from its earlier self without reading it (``git``'s index keeps the same):
    a rewrite changes the size or a time; ``ctime`` also changes when the mtime is set back (``touch -d``,
    ``cp -p`` over the file), and the inode when the file is replaced by another."""

    size: int
    mtime_ns: int
    ctime_ns: int
    inode: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileStat:
        return cls(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def file_name(path: object) -> str | None:
    """The absolute name a listing and the memo know ``path`` by; None for a row without a file name."""
    if not isinstance(path, (str, os.PathLike)):
        return None
    text = os.fspath(path)
    return os.path.abspath(text) if isinstance(text, str) and text else None


def _stat(name: str) -> FileStat | None:
    try:
        st = os.stat(name)
    except (OSError, ValueError):  # missing, unreadable folder, or a name the OS refuses (NUL byte)
        return None
    return FileStat.of(st) if stat.S_ISREG(st.st_mode) else None


class FileListing:
    """``stat`` of each file asked about, asked once; None for a row whose file is missing or not a regular
    file. Safe to share between threads."""

    def __init__(self) -> None:
        self._known: dict[str, FileStat | None] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._known)

    def stats(self, paths: Sequence[object]) -> list[FileStat | None]:
        """The stat of each of ``paths`` (same order); files not asked about before are stat-ed now, once."""
        names = [file_name(p) for p in paths]
        with self._lock:  # held throughout: two callers never stat the same file twice
            todo = list(dict.fromkeys(n for n in names if n is not None and n not in self._known))
            self._known.update(zip(todo, _stat_all(todo)))
            return [None if n is None else self._known[n] for n in names]

    def is_file(self, path: object) -> bool:
        """True when ``path`` names a regular file (as ``os.path.isfile``, answered from the listing)."""
        return self.stats([path])[0] is not None

    def __getstate__(self) -> dict[str, Any]:
        return {"_known": dict(self._known)}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self._known, self._lock = state["_known"], threading.Lock()


def _stat_all(names: list[str]) -> list[FileStat | None]:
    start = time.perf_counter()
    head = [_stat(n) for n in names[:_PROBE]]
    rest = names[_PROBE:]
    if not rest or (time.perf_counter() - start) / len(head) < _SLOW_S:
        return head + [_stat(n) for n in rest]
    with ThreadPoolExecutor(max_workers=_THREADS, thread_name_prefix="clinagent-stat") as pool:
        return head + list(pool.map(_stat, rest, chunksize=64))
