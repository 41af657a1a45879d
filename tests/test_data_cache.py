"""The preprocessed on-disk image cache: built once, reused, invalidated by content and rule, safe on failure."""

from __future__ import annotations

import os
import pickle
import shutil

import albumentations as A
import numpy as np
import pytest

from clinagent_lab.data import cache as cache_mod
from clinagent_lab.data.cache import cache_entries, clear_cache, image_cache
from clinagent_lab.data.datamodule import ImageDataModule
from clinagent_lab.data.formats import load_dataset
from clinagent_lab.data.images import to_channels
from clinagent_lab.data.splits import assign_splits
from clinagent_lab.data.synth import generate
from clinagent_lab.data.transforms import resize_transforms
from clinagent_lab.errors import DataValidationError
from clinagent_lab.recipe import Recipe, apply_patch


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv("CLINAGENT_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def derm(tmp_path):
    root = generate("dermoscopy", tmp_path / "derm", n=48, image_size=20, seed=0)
    return assign_splits(load_dataset(root), seed=0)[0]


@pytest.fixture(scope="module")
def siim(tmp_path_factory):
    root = generate("siim_acr", tmp_path_factory.mktemp("siim") / "siim", seed=1, n=24, image_size=40)
    return assign_splits(load_dataset(root), seed=0)[0]


def _build(ds, size=12, channels=3, modality="dermoscopy", **kw):
    return image_cache(ds.read_image, ds.table["path"].tolist(), np.arange(len(ds.table)), size=size,
                       channels=channels, modality=modality, **kw)


def _expected(ds, i, size, channels, modality):
    resize = A.Compose(resize_transforms(size, modality))
    return resize(image=to_channels(ds.read_image(i), channels))["image"].reshape(size, size, channels)


def test_built_once_equal_to_decoding_and_reused(derm, cache_dir):
    first = _build(derm, workers=2)
    assert first is not None and len(first) == len(derm.table)
    for i in (0, 7, len(derm.table) - 1):
        np.testing.assert_array_equal(first[i], _expected(derm, i, 12, 3, "dermoscopy"))
    stamp = (first.folder / "images.npy").stat().st_mtime_ns
    again = _build(derm)
    assert again.folder == first.folder and (again.folder / "images.npy").stat().st_mtime_ns == stamp
    assert len(cache_entries()) == 1 and cache_entries()[0]["n"] == len(derm.table)


def test_key_follows_content_rule_and_channels_not_mtime(derm, cache_dir):
    base = _build(derm).folder
    path = derm.table["path"].iat[3]
    os.utime(path, ns=(1, 1))  # touched, same bytes: same entry
    assert _build(derm).folder == base
    assert _build(derm, size=10).folder != base
    assert _build(derm, channels=1).folder != base
    assert _build(derm, modality="chest_xray").folder != base  # aspect-keeping resize rule
    stat = os.stat(path)
    image = np.full((20, 20, 3), 7, dtype=np.uint8)
    from PIL import Image

    Image.fromarray(image).save(path, format="PNG")
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))  # new pixels behind the old timestamp
    changed = _build(derm)
    assert changed.folder != base
    np.testing.assert_array_equal(changed[3], np.full((12, 12, 3), 7, dtype=np.uint8))


def test_dicom_windowing_and_monochrome1_are_cached_as_read(siim, cache_dir):
    cached = _build(siim, size=16, channels=1, modality="chest_xray")
    photometric = siim.table["path"].map(lambda p: __import__("pydicom").dcmread(
        p, stop_before_pixels=True).PhotometricInterpretation)
    assert set(photometric) == {"MONOCHROME1", "MONOCHROME2"}
    for i in range(len(siim.table)):
        np.testing.assert_array_equal(cached[i], _expected(siim, i, 16, 1, "chest_xray"))


def test_unwritable_or_full_folder_warns_and_falls_back(derm, tmp_path, monkeypatch):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("CLINAGENT_CACHE_DIR", str(blocker / "cache"))
    with pytest.warns(UserWarning, match=f"{blocker / 'cache'}.*not writable"):
        assert _build(derm) is None
    monkeypatch.setenv("CLINAGENT_CACHE_DIR", str(tmp_path / "small"))
    monkeypatch.setattr(cache_mod.shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10, 10, 10))
    with pytest.warns(UserWarning, match="too full"):
        assert _build(derm) is None
    r = apply_patch(Recipe(task_type="multiclass_classification", classes=list(derm.classes)),
                    {"data.image_size": 12})
    with pytest.warns(UserWarning, match="too full"):
        dm = ImageDataModule(derm, r, modality="dermoscopy")
        dm.setup()
    assert isinstance(dm.datasets["train"].cache, np.ndarray)  # the in-memory cache took over


def test_half_written_and_older_entries_are_never_used(derm, cache_dir, monkeypatch):
    def broken(i):
        if i == 30:
            raise OSError("disk went away")
        return derm.read_image(i)

    with pytest.raises(DataValidationError, match="disk went away") as err:
        image_cache(broken, derm.table["path"].tolist(), np.arange(len(derm.table)), size=12, channels=3,
                    workers=2)
    assert err.value.where == derm.table["path"].iat[30]
    assert not [p for p in (cache_dir / "images").iterdir() if p.is_dir()]  # no entry, no leftover
    good = _build(derm)
    meta = good.folder / "meta.json"
    meta.write_text(meta.read_text().replace('"version": 1', '"version": 0'))
    rebuilt = _build(derm)  # same key, stale content: rebuilt in place
    assert '"version": 1' in (rebuilt.folder / "meta.json").read_text()
    monkeypatch.setattr(cache_mod, "CACHE_VERSION", 2)
    assert _build(derm).folder != good.folder
    monkeypatch.setattr(cache_mod, "CACHE_VERSION", 1)
    assert [e["stale"] for e in cache_entries()].count(True) == 1
    assert clear_cache(stale_only=True)[0] == 1 and len(cache_entries()) == 1
    assert clear_cache()[0] == 1 and cache_entries() == []


def test_handle_pickles_without_pixels_and_subsets(derm, cache_dir):
    cached = _build(derm)
    view = cached.subset(np.array([5, 2]))
    view[0]
    blob = pickle.dumps(view)
    assert len(blob) < 4096
    np.testing.assert_array_equal(pickle.loads(blob)[1], cached[2])


def test_datamodule_reads_the_disk_cache_and_subsamples_share_it(derm, cache_dir):
    r = apply_patch(Recipe(task_type="multiclass_classification", classes=list(derm.classes)),
                    {"data.image_size": 12, "data.max_train_samples": 10})
    dm = ImageDataModule(derm, r, modality="dermoscopy")
    dm.prepare_cache()
    assert len(cache_entries()) == 2  # train and val; test is never read here
    dm.setup()
    train = dm.datasets["train"]
    assert isinstance(train.cache, cache_mod.CachedImages) and len(train.cache) == 10
    for k in range(len(train)):
        np.testing.assert_array_equal(train.raw_image(k), _expected(derm, int(train.rows[k]), 12, 3, "dermoscopy"))
    full = ImageDataModule(derm, apply_patch(r, {"data.max_train_samples": None}), modality="dermoscopy")
    full.setup()
    assert len(cache_entries()) == 2


def test_built_from_a_worker_thread_without_forking(derm, cache_dir, monkeypatch):
    """The Jupyter server runs the engine in a thread pool: a process forked from such a thread inherits locks
    other threads hold and can hang, so there the cache is built in the calling process."""
    from concurrent.futures import ThreadPoolExecutor

    forks = []
    monkeypatch.setattr(cache_mod.multiprocessing, "get_context", lambda method: forks.append(method))
    with ThreadPoolExecutor(1) as pool:
        built = pool.submit(_build, derm, workers=2).result(timeout=120)
    assert built is not None and forks == []
    np.testing.assert_array_equal(built[3], _expected(derm, 3, 12, 3, "dermoscopy"))
