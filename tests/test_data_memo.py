"""What preparing a dataset learns is remembered (data.memo): a second session on unchanged files neither
re-opens them nor re-runs the split search, and a changed file or input is looked at again."""

from __future__ import annotations

import hashlib
import os
import sqlite3

import numpy as np
import pytest
from PIL import Image

from clinagent_lab.data import memo as memo_mod
from clinagent_lab.data import splits as splits_mod
from clinagent_lab.data import validate as validate_mod
from clinagent_lab.data.cache import clear_cache
from clinagent_lab.data.formats import load_dataset
from clinagent_lab.data.listing import FileListing
from clinagent_lab.data.memo import MEMO_DB, SCHEMA_VERSION, FileMemo, cache_root, file_digests
from clinagent_lab.data.splits import assign_splits, holdout_mask
from clinagent_lab.data.synth import generate
from clinagent_lab.data.validate import check_images


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("CLINAGENT_CACHE_DIR", str(root))
    return root


def _forbid(monkeypatch, module, name):
    def fail(*_a, **_k):
        raise AssertionError(f"{name} ran although its result was remembered")
    monkeypatch.setattr(module, name, fail)


def test_split_search_is_remembered_by_its_inputs(cache_dir, monkeypatch):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 300)
    groups = np.array([f"p{i // 2}" for i in range(300)])
    mask, method = holdout_mask(labels, groups, 0.2, seed=3)
    assert method == "stratified" and 0.15 < mask.mean() < 0.25
    assert any((cache_dir / "results").glob("holdout-*.npz"))

    _forbid(monkeypatch, splits_mod, "_holdout_mask")
    again, again_method = holdout_mask(labels, groups, 0.2, seed=3)
    assert again_method == method and np.array_equal(again, mask)
    # whole groups only, also when read back
    held = set(groups[again])
    assert not held & set(groups[~again])

    monkeypatch.undo()
    monkeypatch.setenv("CLINAGENT_CACHE_DIR", str(cache_dir))
    other, _ = holdout_mask(labels, groups, 0.2, seed=4)  # another seed: searched again, another mask
    assert not np.array_equal(other, mask)
    changed = labels.copy()
    changed[0] = (changed[0] + 1) % 3
    calls = []
    real = splits_mod._holdout_mask
    monkeypatch.setattr(splits_mod, "_holdout_mask", lambda *a: calls.append(1) or real(*a))
    holdout_mask(changed, groups, 0.2, seed=3)
    assert calls == [1]  # one label changed: not the remembered answer


def test_unwritable_cache_folder_still_splits(tmp_path, monkeypatch):
    blocked = tmp_path / "file"
    blocked.write_text("not a folder")
    monkeypatch.setenv("CLINAGENT_CACHE_DIR", str(blocked))
    labels = np.arange(100) % 2
    groups = np.array([str(i) for i in range(100)])
    a, _ = holdout_mask(labels, groups, 0.2, seed=0)
    b, _ = holdout_mask(labels, groups, 0.2, seed=0)
    assert np.array_equal(a, b) and a.sum() == 20


def test_readable_files_are_not_opened_again_until_they_change(tmp_path, cache_dir, monkeypatch):
    generate("isic2019", tmp_path / "isic", n=60, image_size=16, seed=0)

    def load():  # each check on the data as loaded anew: a loaded dataset stats its files once (data.listing)
        return load_dataset(tmp_path / "isic")

    ds = load()
    assert len(check_images(ds, full_decode_below=0).table) == len(ds.table)  # header check
    assert (cache_dir / MEMO_DB).is_file()

    opened = []
    real = validate_mod._bad_image_reason
    monkeypatch.setattr(validate_mod, "_bad_image_reason", lambda *a: opened.append(a[2]) or real(*a))
    check_images(load(), full_decode_below=0)
    assert opened == []

    victim = ds.table["path"].iat[5]
    Image.new("RGB", (16, 16)).save(victim, format="JPEG")  # a new file under the same name: looked at again
    os.utime(victim, ns=(1, 1))
    check_images(load(), full_decode_below=0)
    assert opened == [victim]

    # rewritten in place, same size, the old mtime set back (cp -p, rsync -t): the ctime still tells
    opened.clear()
    other = ds.table["path"].iat[6]
    before = os.stat(other)
    data = bytearray(open(other, "rb").read())
    data[-3] ^= 0xFF  # a byte of the entropy-coded data: a different file of the same size, still a JPEG
    with open(other, "r+b") as fh:
        fh.write(bytes(data))
    os.utime(other, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(other)
    assert (after.st_size, after.st_mtime_ns, after.st_ino) == (before.st_size, before.st_mtime_ns, before.st_ino)
    check_images(load(), full_decode_below=0)
    assert opened == [other]

    opened.clear()
    with open(ds.table["path"].iat[7], "wb") as fh:  # broken now: found, and never remembered as readable
        fh.write(b"not a jpeg at all")
    with pytest.warns(UserWarning, match="dropped 1 unreadable"):
        out = check_images(load(), full_decode_below=0)
    assert len(out.table) == len(ds.table) - 1
    with pytest.warns(UserWarning, match="dropped 1 unreadable"):
        check_images(load(), full_decode_below=0)

    # a full decode is its own fact: a header check does not vouch for it
    opened.clear()
    with pytest.warns(UserWarning):
        check_images(load(), full_decode_below=10_000)
    assert len(opened) == len(ds.table)


def test_second_preparation_equals_the_first_and_clear_forgets(tmp_path, cache_dir):
    generate("isic2019", tmp_path / "isic", n=60, image_size=16, seed=1)
    first, rule = assign_splits(check_images(load_dataset(tmp_path / "isic")), seed=0)
    second, rule2 = assign_splits(check_images(load_dataset(tmp_path / "isic")), seed=0)
    assert rule == rule2
    assert first.table["split"].tolist() == second.table["split"].tolist()
    assert cache_root() == cache_dir
    clear_cache()
    assert not (cache_dir / MEMO_DB).exists() and not (cache_dir / "results").exists()


def _files(folder, n, tag):
    folder.mkdir(parents=True)
    paths = []
    for i in range(n):
        path = folder / f"{tag}{i}.bin"
        path.write_bytes(f"{tag} {i}".encode())
        paths.append(str(path))
    return paths


def test_a_lookup_reads_only_the_asked_files_through_the_primary_key(tmp_path, monkeypatch):
    memo = tmp_path / MEMO_DB
    first = _files(tmp_path / "isic", 5, "a")
    second = _files(tmp_path / "siim", 7, "b")
    expected = file_digests(first, memo)
    file_digests(second, memo)
    with FileMemo(memo) as db:
        assert db.db.execute("SELECT COUNT(*) FROM facts").fetchone()[0] == 12  # both datasets remembered

    monkeypatch.setattr(memo_mod, "_BATCH", 2)  # several queries of two paths each
    statements = []
    with FileMemo(memo) as db:
        db.db.set_trace_callback(statements.append)
        stats = FileListing().stats(first)
        assert db.lookup("sha256", first, stats) == expected
        db.db.set_trace_callback(None)
        selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
        assert len(selects) == 3
        read = 0
        for sql in selects:
            plan = " ".join(row[-1] for row in db.db.execute("EXPLAIN QUERY PLAN " + sql))
            assert "SEARCH facts USING PRIMARY KEY" in plan and "SCAN" not in plan, plan
            read += len(db.db.execute(sql).fetchall())
        assert read == len(first)  # the other dataset's rows are never read


def test_an_older_memo_is_rebuilt_not_misread_and_a_newer_one_is_left_alone(tmp_path):
    memo = tmp_path / MEMO_DB
    [path] = _files(tmp_path / "data", 1, "x")
    st = os.stat(path)
    old = sqlite3.connect(memo)  # the version-1 layout, with a wrong digest for the unchanged file
    old.execute("CREATE TABLE facts (kind TEXT, path TEXT, size INTEGER, mtime_ns INTEGER, inode INTEGER, "
                "value TEXT, PRIMARY KEY (kind, path))")
    old.execute("INSERT INTO facts VALUES ('sha256', ?, ?, ?, ?, ?)",
                (path, st.st_size, st.st_mtime_ns, st.st_ino, "0" * 64))
    old.commit()
    old.close()
    truth = hashlib.sha256(open(path, "rb").read()).hexdigest()
    assert file_digests([path], memo) == [truth]
    db = sqlite3.connect(memo)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert "ctime_ns" in [row[1] for row in db.execute("PRAGMA table_info(facts)")]
    assert db.execute("SELECT value FROM facts").fetchall() == [(truth,)]
    db.close()

    newer = tmp_path / "newer.sqlite"
    db = sqlite3.connect(newer)
    db.execute("CREATE TABLE facts (anything TEXT)")
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.commit()
    db.close()
    assert file_digests([path], newer) == [truth]  # hashed, nothing read from or written to it
    db = sqlite3.connect(newer)
    assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 1
    assert [row[1] for row in db.execute("PRAGMA table_info(facts)")] == ["anything"]
    db.close()
