"""The parts `load_dataset` is made of, one at a time: image helpers, each source's reader (TFDS through a
fake `tensorflow_datasets`), the split carving, the cache files and the batch stream's argument checks."""

from __future__ import annotations

import dataclasses
import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from xsearch.data.cache import cache_file, cache_root, read_cache, write_cache
from xsearch.data.dataset import RawData
from xsearch.data.digits import read_digits
from xsearch.data.imagenet_npz import find_imagenet_dir, official_side
from xsearch.data.images import decode_image, resize_images, to_rgb
from xsearch.data.loader import SOURCES, load_dataset
from xsearch.data.splits import make_dataset
from xsearch.data.stream import BatchStream
from xsearch.data.tfds import read_tfds


def test_image_helpers_resize_make_rgb_and_decode(tmp_path):
    grey = np.full((2, 8, 8, 1), 77, np.uint8)
    rgb = to_rgb(grey)
    assert rgb.shape == (2, 8, 8, 3) and (rgb == 77).all()
    assert to_rgb(rgb) is rgb and resize_images(rgb, 8) is rgb  # nothing to do: the same array
    with pytest.raises(ValueError, match="1 or 3 channels"):
        to_rgb(np.zeros((1, 4, 4, 2), np.uint8))
    small = resize_images(grey, 4)
    assert small.shape == (2, 4, 4, 1) and small.dtype == np.uint8 and (small == 77).all()
    Image.new("RGB", (20, 10), (200, 10, 30)).save(tmp_path / "flat.png")
    decoded = decode_image(tmp_path / "flat.png", 6)
    assert decoded.shape == (6, 6, 3) and decoded.dtype == np.uint8 and (decoded == (200, 10, 30)).all()


def test_digits_reader_gives_all_1797_digits_as_one_rgb_train_pool():
    raw = read_digits(8)
    x, y = raw.train
    assert x.shape == (1797, 8, 8, 3) and x.dtype == np.uint8 and x.max() == 255
    assert y.dtype == np.int32 and sorted(set(y.tolist())) == list(range(10))
    assert raw.val is None and raw.test is None and raw.class_names == [str(d) for d in range(10)]


def _numbered(count: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
    """``count`` 1x1 images whose pixel is their index (mod 256 in each channel), labels cycling through classes."""
    index = np.arange(count)
    images = np.stack([index % 256, index // 256, np.zeros_like(index)], -1).astype(np.uint8).reshape(count, 1, 1, 3)
    return images, (index % classes).astype(np.int32)


def _ids(x: np.ndarray) -> list[int]:
    return sorted(int(p[0, 0, 0]) + 256 * int(p[0, 0, 1]) for p in x)


def test_splits_carve_test_then_val_off_train_stratified_and_subsample_train():
    raw = RawData(train=_numbered(100, 5), class_names=list("abcde"))
    ds = make_dataset(raw, name="n", seed=0, val_fraction=0.2, test_fraction=0.1, max_train=None)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (70, 20, 10)
    assert sorted(_ids(ds.x_train) + _ids(ds.x_val) + _ids(ds.x_test)) == list(range(100))  # disjoint, complete
    assert np.bincount(ds.y_val).tolist() == [4] * 5 and ds.num_classes == 5 and ds.class_names == list("abcde")
    small = make_dataset(raw, name="n", seed=0, val_fraction=0.2, test_fraction=0.1, max_train=35)
    assert len(small.y_train) == 35 and set(_ids(small.x_train)) <= set(_ids(ds.x_train))
    np.testing.assert_array_equal(small.x_val, ds.x_val)
    assert small.mean.shape == (3,) and small.mean.dtype == np.float32

    given = RawData(train=_numbered(50, 5), val=_numbered(7, 5), class_names=list("abcde"))
    kept = make_dataset(given, name="n", seed=0, val_fraction=0.2, test_fraction=0.0, max_train=None)
    assert len(kept.y_val) == 7 and len(kept.y_test) == 0 and len(kept.y_train) == 50
    with pytest.raises(ValueError, match="Cannot carve 60 images off the 50 left"):
        make_dataset(raw, name="n", seed=0, val_fraction=0.6, test_fraction=0.5, max_train=None)


def test_cache_root_and_file_names_and_a_write_read_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("XSEARCH_CACHE_DIR", str(tmp_path / "env"))
    assert cache_root(tmp_path / "given") == tmp_path / "given" and cache_root(None) == tmp_path / "env"
    monkeypatch.delenv("XSEARCH_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root(None) == tmp_path / "home" / ".cache" / "xsearch" / "data"

    key = {"source": "tfds:imagenet_resized/64x64", "image_size": 64, "seed": 0}
    path = cache_file(tmp_path, key)
    assert path.parent == tmp_path and path.name.startswith("tfds-imagenet-resized-64x64-64px-") and path.suffix == ".npz"
    assert cache_file(tmp_path, {**key, "seed": 1}) != path and cache_file(tmp_path, dict(key)) == path

    raw = RawData(train=_numbered(40, 4), class_names=["w", "x", "y", "z"])
    dataset = make_dataset(raw, name="numbered", seed=0, val_fraction=0.25, test_fraction=0.25, max_train=None)
    write_cache(tmp_path / "sub" / "d.npz", dataset)
    assert [p.name for p in (tmp_path / "sub").iterdir()] == ["d.npz"]  # no temporary file left
    again = read_cache(tmp_path / "sub" / "d.npz")
    for field in dataclasses.fields(dataset):
        a, b = getattr(dataset, field.name), getattr(again, field.name)
        if isinstance(a, np.ndarray):
            assert a.dtype == b.dtype
            np.testing.assert_array_equal(a, b)
        else:
            assert a == b and type(a) is type(b)


def test_imagenet_official_side_and_data_folder_lookup(tmp_path, monkeypatch):
    assert [official_side(size) for size in (7, 8, 16, 20, 32, 64, 100)] == [8, 8, 16, 32, 32, 64, 64]
    folder = tmp_path / "env" / "imagenet32"
    folder.mkdir(parents=True)
    (folder / "val_data.npz").write_bytes(b"")
    monkeypatch.setenv("XSEARCH_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(FileNotFoundError, match="Imagenet32_train.zip and Imagenet32_val.zip"):
        find_imagenet_dir(None, 24)  # no train batch yet
    (folder / "train_data_batch_1").write_bytes(b"")  # the official files also come without the suffix
    assert find_imagenet_dir(None, 24) == folder and find_imagenet_dir(folder, 64) == folder


def _fake_tfds(splits: dict, names: list[str], calls: list) -> types.ModuleType:
    """A `tensorflow_datasets` stand-in that serves ``splits`` (lists of (image, label) pairs)."""
    module = types.ModuleType("tensorflow_datasets")

    def load(name, data_dir, download, as_supervised, with_info):
        calls.append({"name": name, "data_dir": data_dir, "download": download, "as_supervised": as_supervised})
        if name == "missing":
            raise RuntimeError("Dataset missing not found in data_dir")
        info = SimpleNamespace(supervised_keys=("image", "label"), features={"label": SimpleNamespace(names=names)})
        return splits, info

    module.load = load
    module.as_numpy = lambda split: iter(split)
    return module


def test_tfds_reader_takes_train_and_test_splits_resized_to_rgb(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    pairs = lambda count: [(rng.integers(0, 256, (12, 10, 1), dtype=np.uint8), i % 2) for i in range(count)]  # noqa: E731
    calls = []
    monkeypatch.setitem(sys.modules, "tensorflow_datasets", _fake_tfds({"train": pairs(20), "test": pairs(6)},
                                                                       ["cat", "dog"], calls))
    raw = read_tfds("pets", tmp_path, 8)
    assert calls == [{"name": "pets", "data_dir": tmp_path, "download": False, "as_supervised": True}]
    assert raw.train[0].shape == (20, 8, 8, 3) and raw.train[0].dtype == np.uint8 and raw.train[1].dtype == np.int32
    assert raw.val is None and raw.test[0].shape == (6, 8, 8, 3) and raw.class_names == ["cat", "dog"]
    with pytest.raises(ValueError, match="Prepare it first, e.g. `tfds build missing"):
        read_tfds("missing", tmp_path, 8)

    dataset = load_dataset("tfds:pets", 8, data_dir=tmp_path, cache_dir=tmp_path / "cache", val_fraction=0.2)
    assert dataset.name == "tfds:pets" and (len(dataset.y_train), len(dataset.y_val), len(dataset.y_test)) == (16, 4, 6)
    assert "tfds:<name>" in SOURCES

    monkeypatch.setitem(sys.modules, "tensorflow_datasets", _fake_tfds({"test": pairs(2)}, ["cat", "dog"], calls))
    with pytest.raises(ValueError, match="has no 'train' split; found \\['test'\\]"):
        read_tfds("pets", tmp_path, 8)


def test_batch_stream_refuses_an_empty_batch():
    with pytest.raises(ValueError, match="batch_size must be >= 1; received batch_size=0"):
        BatchStream(np.zeros((4, 2, 2, 3), np.uint8), np.zeros(4), 0)
    with pytest.raises(ValueError, match="x of shape \\(N, H, W, C\\)"):
        BatchStream(np.zeros((4, 2, 2), np.uint8), np.zeros(4), 2)
