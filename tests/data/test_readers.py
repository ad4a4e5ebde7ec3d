"""The parts `load_dataset` is made of, one at a time: image helpers, each source's reader (TFDS through a
fake `tensorflow_datasets`), the split assignment, the cache folders, the progress bar and the batch stream's
argument checks."""

from __future__ import annotations

import io
import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from rich.console import Console

from xsearch.data.build import write_splits
from xsearch.data.cache import cache_folder, cache_root
from xsearch.data.dataset import SPLITS, Block, RawData, SourceSplit
from xsearch.data.digits import read_digits
from xsearch.data.imagenet_npz import find_imagenet_dir, official_side
from xsearch.data.images import decode_image, resize_images, to_rgb
from xsearch.data.loader import SOURCES, load_dataset
from xsearch.data.progress import progress_bar
from xsearch.data.splits import plan_splits
from xsearch.data.stream import BatchStream
from xsearch.data.tfds import read_tfds


def test_image_helpers_resize_make_rgb_and_decode(tmp_path):
    grey = np.full((2, 8, 8, 1), 77, np.uint8)
    rgb = to_rgb(grey)
    assert rgb.shape == (2, 8, 8, 3)
    assert (rgb == 77).all()
    assert to_rgb(rgb) is rgb
    assert resize_images(rgb, 8) is rgb  # nothing to do: the same array
    with pytest.raises(ValueError, match="1 or 3 channels"):
        to_rgb(np.zeros((1, 4, 4, 2), np.uint8))
    small = resize_images(grey, 4)
    assert small.shape == (2, 4, 4, 1)
    assert small.dtype == np.uint8
    assert (small == 77).all()
    Image.new("RGB", (20, 10), (200, 10, 30)).save(tmp_path / "flat.png")
    decoded = decode_image(tmp_path / "flat.png", 6)
    assert decoded.shape == (6, 6, 3)
    assert decoded.dtype == np.uint8
    assert (decoded == (200, 10, 30)).all()


def test_digits_reader_gives_all_1797_digits_as_one_rgb_train_pool():
    raw = read_digits(8)
    x, y = decoded(raw.train), raw.train.labels
    assert x.shape == (1797, 8, 8, 3)
    assert x.dtype == np.uint8
    assert x.max() == 255
    assert y.dtype == np.int32
    assert sorted(set(y.tolist())) == list(range(10))
    assert raw.val is None
    assert raw.test is None
    assert raw.class_names == [str(d) for d in range(10)]


def decoded(split: SourceSplit) -> np.ndarray:
    """All the images of a source split, its blocks concatenated."""
    return np.concatenate([block.images for block in split.blocks()])


def test_splits_carve_test_then_val_off_train_stratified_and_subsample_train():
    labels = (np.arange(100) % 5).astype(np.int32)
    plan = plan_splits(
        {"train": labels}, seed=0, val_fraction=0.2, test_fraction=0.1, max_train=None
    )
    assert list(plan) == list(SPLITS)
    assert all(source == "train" for source, _ in plan.values())
    members = {split: indices for split, (_, indices) in plan.items()}
    assert [len(members[s]) for s in SPLITS] == [70, 20, 10]
    # disjoint, complete
    assert sorted(np.concatenate(list(members.values())).tolist()) == list(range(100))
    assert np.bincount(labels[members["val"]]).tolist() == [4] * 5  # stratified
    # in train_test_split's order
    assert not np.array_equal(members["train"], np.sort(members["train"]))
    again = plan_splits(
        {"train": labels}, seed=0, val_fraction=0.2, test_fraction=0.1, max_train=None
    )
    other = plan_splits(
        {"train": labels}, seed=1, val_fraction=0.2, test_fraction=0.1, max_train=None
    )
    assert all(np.array_equal(plan[s][1], again[s][1]) for s in SPLITS)
    assert not np.array_equal(plan["val"][1], other["val"][1])

    small = plan_splits(
        {"train": labels}, seed=0, val_fraction=0.2, test_fraction=0.1, max_train=35
    )
    assert len(small["train"][1]) == 35
    assert set(small["train"][1]) <= set(members["train"])
    assert np.array_equal(small["val"][1], members["val"])
    assert set(labels[small["train"][1]]) == set(range(5))

    given = plan_splits(
        {"train": labels[:50], "val": labels[:7]},
        seed=0,
        val_fraction=0.2,
        test_fraction=0.0,
        max_train=None,
    )
    assert given["train"][1].tolist() == list(range(50))
    assert given["val"] == ("val", given["val"][1])
    assert given["val"][1].tolist() == list(range(7))
    assert len(given["test"][1]) == 0
    with pytest.raises(ValueError, match="Cannot carve 60 images off the 50 left"):
        plan_splits({"train": labels}, seed=0, val_fraction=0.6, test_fraction=0.5, max_train=None)


def test_write_splits_puts_each_image_in_its_place_and_leaves_out_unreadable_ones(tmp_path):
    x = (
        np.arange(10, dtype=np.uint8)
        .reshape(10, 1, 1, 1)
        .repeat(2, axis=1)
        .repeat(2, axis=2)
        .repeat(3, axis=3)
    )

    def blocks():
        yield Block(x[:4], unreadable=(1,))
        yield Block(x[4:])

    raw = RawData(
        train=SourceSplit(np.arange(10, dtype=np.int32) % 2, blocks, [f"f{i}" for i in range(10)]),
        class_names=["a", "b"],
        val=SourceSplit.from_arrays(x[:2], np.array([1, 0]), 2),
    )
    plan = {
        "train": ("train", np.array([8, 1, 0, 6, 7, 4])),
        "val": ("val", np.array([1, 0])),
        "test": ("train", np.array([9, 2, 3])),
    }
    written = write_splits(raw, plan, tmp_path, 2, "decoding")
    assert written.counts == {"train": 5, "val": 2, "test": 3}
    assert written.unreadable == ["f1"]
    assert written.files == 12
    assert np.load(tmp_path / "x_train.npy")[:, 0, 0, 0].tolist() == [
        8,
        0,
        6,
        7,
        4,
    ]  # in the plan's order, f1 left out
    assert np.load(tmp_path / "y_train.npy").tolist() == [0, 0, 0, 1, 0]
    assert np.load(tmp_path / "x_val.npy")[:, 1, 1, 2].tolist() == [1, 0]
    assert np.load(tmp_path / "y_val.npy").tolist() == [0, 1]
    assert np.load(tmp_path / "y_test.npy").tolist() == [1, 0, 1]
    assert written.mean.tolist() == [5.0] * 3
    raw = RawData(train=SourceSplit(np.zeros(3, np.int32), blocks), class_names=["a"])
    (tmp_path / "again").mkdir()
    with pytest.raises(ValueError, match="gave more images than its 3 labels"):
        write_splits(
            raw,
            {
                "train": ("train", np.arange(3)),
                "val": ("train", np.arange(0)),
                "test": ("train", np.arange(0)),
            },
            tmp_path / "again",
            2,
            "decoding",
        )


def test_cache_root_and_folder_names(tmp_path, monkeypatch):
    monkeypatch.setenv("XSEARCH_CACHE_DIR", str(tmp_path / "env"))
    assert cache_root(tmp_path / "given") == tmp_path / "given"
    assert cache_root(None) == tmp_path / "env"
    monkeypatch.delenv("XSEARCH_CACHE_DIR")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_root(None) == tmp_path / "home" / ".cache" / "xsearch" / "data"

    key = {"source": "tfds:imagenet_resized/64x64", "image_size": 64, "seed": 0}
    folder = cache_folder(tmp_path, key)
    assert folder.parent == tmp_path
    assert folder.name.startswith("tfds-imagenet-resized-64x64-64px-")
    assert cache_folder(tmp_path, {**key, "seed": 1}) != folder
    assert cache_folder(tmp_path, dict(key)) == folder


def test_progress_bar_draws_on_a_console_and_is_silent_off_a_terminal(capsys):
    with progress_bar(10, "decoding") as advance:  # pytest's stderr is not a terminal
        advance(10)
    assert capsys.readouterr().err == ""
    drawn = io.StringIO()
    with progress_bar(
        10, "decoding digits", Console(file=drawn, force_terminal=True, width=100)
    ) as advance:
        advance(4)
    assert "decoding digits" in drawn.getvalue()
    assert "4/10" in drawn.getvalue()


def test_imagenet_official_side_and_data_folder_lookup(tmp_path, monkeypatch):
    assert [official_side(size) for size in (7, 8, 16, 20, 32, 64, 100)] == [
        8,
        8,
        16,
        32,
        32,
        64,
        64,
    ]
    folder = tmp_path / "env" / "imagenet32"
    folder.mkdir(parents=True)
    (folder / "val_data.npz").write_bytes(b"")
    monkeypatch.setenv("XSEARCH_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(FileNotFoundError, match=r"Imagenet32_train.zip and Imagenet32_val.zip"):
        find_imagenet_dir(None, 24)  # no train batch yet
    # the official files also come without the suffix
    (folder / "train_data_batch_1").write_bytes(b"")
    assert find_imagenet_dir(None, 24) == folder
    assert find_imagenet_dir(folder, 64) == folder


def _fake_tfds(splits: dict, names: list[str], calls: list) -> types.ModuleType:
    """A `tensorflow_datasets` stand-in that serves ``splits`` (lists of (image, label) pairs); with a
    ``SkipDecoding`` decoder for the image it serves encoded bytes instead of the image."""
    module = types.ModuleType("tensorflow_datasets")

    def load(name, data_dir, download, as_supervised, with_info, decoders):
        calls.append(
            {
                "name": name,
                "data_dir": data_dir,
                "download": download,
                "as_supervised": as_supervised,
                "decoders": decoders,
            }
        )
        if name == "missing":
            raise RuntimeError("Dataset missing not found in data_dir")
        info = SimpleNamespace(
            supervised_keys=("image", "label"), features={"label": SimpleNamespace(names=names)}
        )
        if decoders == {"image": "skip"}:
            return {
                split: [(b"encoded", label) for _, label in pairs]
                for split, pairs in splits.items()
            }, info
        return splits, info

    module.load = load
    module.as_numpy = lambda split: iter(split)
    module.decode = SimpleNamespace(SkipDecoding=lambda: "skip")
    return module


def test_tfds_reader_takes_train_and_test_splits_resized_to_rgb(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    pairs = lambda count: [  # noqa: E731
        (rng.integers(0, 256, (12, 10, 1), dtype=np.uint8), i % 2) for i in range(count)
    ]
    calls = []
    monkeypatch.setitem(
        sys.modules,
        "tensorflow_datasets",
        _fake_tfds({"train": pairs(20), "test": pairs(6)}, ["cat", "dog"], calls),
    )
    raw = read_tfds("pets", tmp_path, 8)
    expected = {"name": "pets", "data_dir": tmp_path, "download": False, "as_supervised": True}
    assert calls == [
        {**expected, "decoders": None},
        {**expected, "decoders": {"image": "skip"}},
    ]  # labels: no decoding
    train = decoded(raw.train)
    assert train.shape == (20, 8, 8, 3)
    assert train.dtype == np.uint8
    assert raw.train.labels.dtype == np.int32
    assert raw.train.labels.tolist() == [i % 2 for i in range(20)]
    assert raw.val is None
    assert decoded(raw.test).shape == (6, 8, 8, 3)
    assert raw.class_names == ["cat", "dog"]
    with pytest.raises(ValueError, match=r"Prepare it first, e.g. `tfds build missing"):
        read_tfds("missing", tmp_path, 8)

    dataset = load_dataset(
        "tfds:pets", 8, data_dir=tmp_path, cache_dir=tmp_path / "cache", val_fraction=0.2
    )
    assert dataset.name == "tfds:pets"
    assert (len(dataset.y_train), len(dataset.y_val), len(dataset.y_test)) == (16, 4, 6)
    assert "tfds:<name>" in SOURCES

    monkeypatch.setitem(
        sys.modules, "tensorflow_datasets", _fake_tfds({"test": pairs(2)}, ["cat", "dog"], calls)
    )
    with pytest.raises(ValueError, match="has no 'train' split; found \\['test'\\]"):
        read_tfds("pets", tmp_path, 8)


def test_batch_stream_refuses_an_empty_batch():
    with pytest.raises(ValueError, match="batch_size must be >= 1; received batch_size=0"):
        BatchStream(np.zeros((4, 2, 2, 3), np.uint8), np.zeros(4), 0)
    with pytest.raises(ValueError, match="x of shape \\(N, H, W, C\\)"):
        BatchStream(np.zeros((4, 2, 2), np.uint8), np.zeros(4), 2)
