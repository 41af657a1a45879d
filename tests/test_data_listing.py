"""One ``stat`` per image file per preparation (data.listing): the image check, the leakage digests and the
image cache key all read the dataset's one listing."""

from __future__ import annotations

import os
from collections import Counter

import pytest

from clinagent_lab.agent.prepare import prepare_data
from clinagent_lab.data import listing as listing_mod
from clinagent_lab.data import memo as memo_mod
from clinagent_lab.data.cache import cache_entries
from clinagent_lab.data.datamodule import ImageDataModule
from clinagent_lab.data.listing import FileListing
from clinagent_lab.data.splits import without_split
from clinagent_lab.data.synth import generate
from clinagent_lab.data.validate import drop_rows
from clinagent_lab.recipe import Recipe


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    root = tmp_path / "cache"
    monkeypatch.setenv("CLINAGENT_CACHE_DIR", str(root))
    monkeypatch.setenv("CLINAGENT_CACHE_WORKERS", "1")  # built in this process, where the stats are counted
    return root


def _count_stats(monkeypatch, files: set[str]) -> Counter:
    """``os.stat`` calls per file of ``files`` (``os.path.isfile`` and ``Path.is_file`` go through it too)."""
    counts: Counter = Counter()
    real = os.stat

    def counting(path, *args, **kwargs):
        if not isinstance(path, int):
            name = os.path.abspath(os.fsdecode(path))
            if name in files:
                counts[name] += 1
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counting)
    return counts


def _prepare(root):
    """What a session does before its first kernel: load, check, split, leakage digests, fingerprint, then the
    224-px (here 8-px) cache of the train and validation splits."""
    dataset, fingerprint = prepare_data(root)
    recipe = Recipe(task_type="multiclass_classification" if len(dataset.classes) > 2
                    else "binary_classification", classes=list(dataset.classes))
    recipe.data.image_size = 8
    ImageDataModule(without_split(dataset, "test"), recipe, modality="dermoscopy").prepare_cache()
    return dataset, fingerprint


@pytest.mark.parametrize(("kind", "suffix"), [("isic2019", ".jpg"), ("dermoscopy", ".png")])
def test_a_preparation_stats_each_image_file_once(tmp_path, cache_dir, monkeypatch, kind, suffix):
    root = generate(kind, tmp_path / kind, n=60, image_size=16, seed=0)
    files = {str(p.resolve()) for p in root.rglob(f"*{suffix}")}
    assert len(files) >= 40

    counts = _count_stats(monkeypatch, files)
    dataset, fingerprint = _prepare(root)  # cold: every file checked, hashed and cached
    assert fingerprint.leakage_checked and len(cache_entries()) == 2
    assert set(counts) == files and set(counts.values()) == {1}
    assert len(dataset.files) == len(files)

    counts.clear()
    monkeypatch.setattr(memo_mod, "_sha256", lambda p: pytest.fail(f"{p} hashed again although unchanged"))
    _prepare(root)  # the next session: the memo vouches for the files, both cache entries are found
    assert len(cache_entries()) == 2
    assert set(counts) == files and set(counts.values()) == {1}


def test_every_view_of_a_dataset_shares_its_listing(tmp_path, cache_dir):
    root = generate("isic2019", tmp_path / "isic", n=60, image_size=16, seed=0)
    dataset, _ = prepare_data(root)
    assert without_split(dataset, "test").files is dataset.files
    assert drop_rows(dataset, [0]).files is dataset.files


def test_a_large_slow_ask_is_spread_over_threads_and_each_file_is_still_stat_ed_once(tmp_path, monkeypatch):
    folder = tmp_path / "many"
    folder.mkdir()
    names = []
    for i in range(40):
        (folder / f"{i}.png").write_bytes(b"x" * i)
        names.append(str(folder / f"{i}.png"))
    asked = [*names, str(folder), str(folder / "absent.png"), None, "", float("nan"), names[0]]
    monkeypatch.setattr(listing_mod, "_PROBE", 4)
    monkeypatch.setattr(listing_mod, "_SLOW_S", 0.0)  # every stat counts as slow: the rest go to threads
    threads = set()
    real = listing_mod._stat
    monkeypatch.setattr(listing_mod, "_stat", lambda n: threads.add(__import__("threading").get_ident())
                        or real(n))
    counts = _count_stats(monkeypatch, set(names))
    files = FileListing()
    stats = files.stats(asked)
    assert [st.size if st else None for st in stats] == [*range(40), None, None, None, None, None, 0]
    assert len(threads) > 1 and set(counts.values()) == {1} and len(counts) == 40
    assert files.stats(names[::-1])[0].size == 39 and set(counts.values()) == {1}  # answered from the listing
    assert files.is_file(names[3]) and not files.is_file(str(folder))
