"""Memo lookup with several datasets in one cache folder: the per-path lookup against reading every row.

A memo (``memo.sqlite``, :mod:`clinagent_lab.data.memo`) holding the sha256 rows of three datasets of the
seed sizes (ISIC 2019 25,331, SIIM-ACR 12,089, GRAZPEDWRI-DX 20,327 images); one dataset's files (all of them,
and a 1,000-image subset) are looked up through ``FileMemo.lookup`` (a primary-key search per path) and, for
comparison, by the query of schema 1 (every row of the kind). Median of ``--repeat`` runs, one JSON line each.

    python benchmarks/memo_lookup.py
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from clinagent_lab.data.listing import FileStat
from clinagent_lab.data.memo import MEMO_DB, FileMemo

DATASETS = {"isic2019": 25331, "siim_acr": 12089, "grazpedwri": 20327}


def _stat(i: int) -> FileStat:
    return FileStat(1000 + i, i, i, i)


def _names(dataset: str, n: int) -> list[str]:
    return [f"/data/{dataset}/images/{i:06d}.jpg" for i in range(n)]


def _median_s(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times), 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    memo = Path(tempfile.mkdtemp()) / MEMO_DB
    with FileMemo(memo) as db:
        for dataset, n in DATASETS.items():
            db.store("sha256", ((name, _stat(i), f"{i:064x}") for i, name in enumerate(_names(dataset, n))))
    rows = sum(DATASETS.values())
    for asked in (DATASETS["isic2019"], 1000):
        names = _names("isic2019", asked)
        stats = [_stat(i) for i in range(asked)]

        def per_path() -> None:
            with FileMemo(memo) as db:
                assert all(v is not None for v in db.lookup("sha256", names, stats))

        def every_row() -> None:  # what schema 1 read for any lookup
            with FileMemo(memo) as db:
                assert db.db is not None
                sql = "SELECT path, size, mtime_ns, ctime_ns, inode, value FROM facts WHERE kind = ?"
                known = {r[0]: r[1:] for r in db.db.execute(sql, ("sha256",))}
                assert len(known) == rows

        print(json.dumps({"memo_rows": rows, "asked": asked, "per_path_s": _median_s(per_path, args.repeat),
                          "every_row_s": _median_s(every_row, args.repeat)}), flush=True)


if __name__ == "__main__":
    main()
