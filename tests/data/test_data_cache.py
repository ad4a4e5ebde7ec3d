"""The decoded-data cache: hits skip decoding and map the arrays read-only, keys separate settings, concurrent
builders build once, and an interrupted or killed build leaves nothing that is read later."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import xsearch.data.folder
import xsearch.data.loader
from xsearch.data import load_dataset
from xsearch.data.cache import STAGING_SUFFIX

ROOT = Path(__file__).resolve().parents[2]


def image_folder(root: Path, count: int = 5) -> Path:
    for label, colour in enumerate([(200, 0, 0), (0, 200, 0)]):
        (root / "train" / f"c{label}").mkdir(parents=True)
        for i in range(count):
            Image.new("RGB", (10, 10), colour).save(root / "train" / f"c{label}" / f"{i}.png")
    return root


def folders(cache: Path) -> list[str]:
    return sorted(p.name for p in cache.iterdir() if p.is_dir())


def test_second_load_maps_the_cache_without_decoding(tmp_path, monkeypatch):
    root = image_folder(tmp_path / "images")
    first = load_dataset(
        "folder", 12, data_dir=root, cache_dir=tmp_path / "cache", val_fraction=0.2
    )

    def no_decode(*args):
        raise AssertionError("decoded again despite the cache")

    monkeypatch.setattr(xsearch.data.folder, "decode_image", no_decode)
    second = load_dataset(
        "folder", 12, data_dir=root, cache_dir=tmp_path / "cache", val_fraction=0.2
    )
    for field in dataclasses.fields(first):
        a, b = getattr(first, field.name), getattr(second, field.name)
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b
            assert type(a) is type(b)
    assert isinstance(second.x_train, np.memmap)
    assert not second.x_train.flags.writeable
    assert folders(tmp_path / "cache") == [first.cache_key]  # no staging folder left
    assert sorted(p.name for p in (tmp_path / "cache" / first.cache_key).iterdir()) == [
        "meta.json",
        "x_test.npy",
        "x_train.npy",
        "x_val.npy",
        "y_test.npy",
        "y_train.npy",
        "y_val.npy",
    ]
    with pytest.raises(AssertionError, match="decoded again"):
        load_dataset(
            "folder", 12, data_dir=root, cache_dir=tmp_path / "cache", val_fraction=0.2, seed=1
        )


def test_cache_key_covers_settings(tmp_path):
    for kwargs in ({}, {"seed": 1}, {"val_fraction": 0.2}, {"max_train": 50}, {"image_size": 9}):
        load_dataset("digits", **{"image_size": 8, **kwargs}, cache_dir=tmp_path)
    # a check on load, not part of the key
    load_dataset("digits", 8, cache_dir=tmp_path, max_bad_fraction=0.5)
    names = folders(tmp_path)
    assert len(names) == 5
    assert all(n.startswith("digits-") for n in names)


def test_cache_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("XSEARCH_CACHE_DIR", str(tmp_path / "env-cache"))
    load_dataset("digits", 8)
    assert len(list((tmp_path / "env-cache").glob("digits-8px-*/x_train.npy"))) == 1


def test_concurrent_loads_build_once_and_share_the_result(tmp_path, monkeypatch):
    root = image_folder(tmp_path / "images")
    real_build, builds = xsearch.data.loader._build, []
    started = threading.Event()

    def slow_build(*args):
        builds.append(args[0])
        started.set()
        threading.Event().wait(0.5)  # the other loader arrives while this one builds
        real_build(*args)

    monkeypatch.setattr(xsearch.data.loader, "_build", slow_build)
    results = []

    def load():
        results.append(
            load_dataset("folder", 8, data_dir=root, cache_dir=tmp_path / "cache", val_fraction=0.2)
        )

    threads = [threading.Thread(target=load) for _ in range(2)]
    threads[0].start()
    started.wait(10)
    threads[1].start()
    for thread in threads:
        thread.join(30)
    assert len(builds) == 1
    assert len(results) == 2
    np.testing.assert_array_equal(results[0].x_train, results[1].x_train)


def test_a_build_in_progress_or_interrupted_is_never_read(tmp_path, monkeypatch):
    root = image_folder(tmp_path / "images", count=300)  # two blocks of files
    cache = tmp_path / "cache"
    real_blocks = xsearch.data.folder._decoder

    def interrupted_after_one_block(files, size):
        blocks = real_blocks(files, size)

        def first_block_only():
            iterator = blocks()
            yield next(iterator)
            assert next(p.name for p in cache.iterdir() if p.is_dir()).endswith(STAGING_SUFFIX)
            # nothing to read yet
            assert not any(p.is_dir() and not p.name.startswith(".") for p in cache.iterdir())
            raise KeyboardInterrupt

        return first_block_only

    monkeypatch.setattr(xsearch.data.folder, "_decoder", interrupted_after_one_block)
    with pytest.raises(KeyboardInterrupt):
        load_dataset("folder", 8, data_dir=root, cache_dir=cache)
    assert folders(cache) == []
    monkeypatch.undo()
    built = load_dataset("digits", 8, cache_dir=cache).cache_key
    shutil.rmtree(cache / built)
    # what a killed build leaves: the next build deletes it
    stale = cache / f".{built}.killed{STAGING_SUFFIX}"
    stale.mkdir()
    (stale / "x_train.npy").write_bytes(b"half")
    assert load_dataset("digits", 8, cache_dir=cache).cache_key == built
    assert folders(cache) == [built]
    # a damaged cache folder is an error that says what to do
    (cache / built / "meta.json").unlink()
    with pytest.raises(
        ValueError, match=r"is incomplete or was written by another xsearch version .* delete it"
    ):
        load_dataset("digits", 8, cache_dir=cache)


BUILD_SCRIPT = """
import sys, time
import xsearch.data.loader as loader
import xsearch.data.npy as npy
real_build, real_write = loader._build, npy.NpyFile.write
def build(*args):
    print("building", flush=True)
    real_build(*args)
def write(self, positions, rows):
    real_write(self, positions, rows)
    print("writing", flush=True)
    time.sleep(float(sys.argv[3]))
loader._build, npy.NpyFile.write = build, write
data = loader.load_dataset("folder", 8, data_dir=sys.argv[1], cache_dir=sys.argv[2], val_fraction=0.2)
print("loaded", len(data.y_train), int(data.x_train.sum()), flush=True)
"""


def _builder(root: Path, cache: Path, pause: float) -> subprocess.Popen:
    """A process that loads the folder into the cache, pausing `pause` seconds after each block it writes."""
    return subprocess.Popen(
        [sys.executable, "-c", BUILD_SCRIPT, str(root), str(cache), str(pause)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


@pytest.mark.slow
def test_two_processes_building_one_cache_build_it_once(tmp_path):
    root = image_folder(tmp_path / "images", count=40)
    processes = [_builder(root, tmp_path / "cache", 1.0) for _ in range(2)]
    outputs = [process.communicate(timeout=180) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    stdout = [out for out, _ in outputs]
    assert sum(out.count("building") for out in stdout) == 1
    loaded = {line for out in stdout for line in out.splitlines() if line.startswith("loaded")}
    assert len(loaded) == 1
    assert len(folders(tmp_path / "cache")) == 1


@pytest.mark.slow
def test_a_killed_build_leaves_nothing_that_is_read_and_the_next_build_cleans_up(tmp_path):
    root = image_folder(tmp_path / "images", count=40)
    cache = tmp_path / "cache"
    process = _builder(root, cache, 120.0)
    assert process.stdout.readline().strip() == "building"
    assert process.stdout.readline().strip() == "writing"  # half-way: one split's images written
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    staging = folders(cache)
    assert len(staging) == 1
    assert staging[0].endswith(STAGING_SUFFIX)
    assert (cache / staging[0] / "x_train.npy").is_file()
    survivor = _builder(root, cache, 0.0)
    out, err = survivor.communicate(timeout=180)
    assert survivor.returncode == 0, err
    assert "loaded 56" in out, err
    built = folders(cache)
    assert len(built) == 1
    assert not built[0].startswith(".")  # the killed build's staging folder is gone
