"""Each source of `load_dataset` on small real-format files, and the argument errors."""

from __future__ import annotations

import hashlib
from pathlib import Path

import keras
import numpy as np
import pytest
from PIL import Image
from sklearn.datasets import load_digits

from xsearch.data import SOURCES, load_dataset
from xsearch.data.keras_datasets import CIFAR100_CLASSES

COLOURS = {"cat": (220, 30, 30), "dog": (30, 220, 30), "fox": (30, 30, 220)}


def make_folder(root: Path, split: str = "train", classes=COLOURS, count: int = 4) -> Path:
    """count images per class, alternating .jpg / .PNG / .jpeg, each a flat colour."""
    suffixes = (".jpg", ".PNG", ".jpeg")
    for name in classes:
        (root / split / name).mkdir(parents=True)
        for i in range(count):
            image = Image.new("RGB", (20 + i, 12), COLOURS[name])
            image.save(
                root / split / name / f"{i}{suffixes[i % 3]}",
                format="PNG" if i % 3 == 1 else "JPEG",
            )
    return root


def write_batch(path: Path, labels: list[int], side: int, suffix: bool = True) -> None:
    """An official-format batch: R plane = row*side+col, G = 20, B = 30; `labels` 1-based."""
    planes = np.stack(
        [np.arange(side * side) % 256, np.full(side * side, 20), np.full(side * side, 30)]
    )
    data = np.tile(planes.reshape(1, -1), (len(labels), 1)).astype(np.uint8)
    if suffix:
        np.savez(path, data=data, labels=labels, mean=data.mean(0))
    else:
        with open(path, "wb") as file:
            np.savez(file, data=data, labels=labels)


def test_folder_loads_classes_labels_and_splits(tmp_path):
    root = make_folder(tmp_path / "images")
    ds = load_dataset(
        "folder",
        16,
        data_dir=root,
        cache_dir=tmp_path / "cache",
        val_fraction=0.25,
        test_fraction=0.25,
    )
    assert ds.name == f"folder:{root.resolve()}"
    assert ds.class_names == ["cat", "dog", "fox"]
    assert ds.num_classes == 3
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (6, 3, 3)
    assert ds.x_train.shape == (6, 16, 16, 3)
    assert ds.x_train.dtype == np.uint8
    assert ds.y_train.dtype == np.int32
    for x, y in ((ds.x_train, ds.y_train), (ds.x_val, ds.y_val), (ds.x_test, ds.y_test)):
        brightest = x.reshape(len(x), -1, 3).mean(axis=1).argmax(axis=1)
        np.testing.assert_array_equal(brightest, y)  # cat is red, dog green, fox blue
    assert ds.mean.dtype == np.float32
    assert ds.mean.shape == (3,)


@pytest.mark.parametrize("image_size", [8, 16])
def test_imagenet_npz_channel_planar_to_nhwc(tmp_path, image_size):
    data = tmp_path / "imagenet8"
    data.mkdir()
    write_batch(data / "train_data_batch_1.npz", [1, 2, 3, 1, 2, 3, 1, 2, 3, 1], side=8)
    write_batch(data / "train_data_batch_2", [3, 2, 1, 3, 2, 3, 2, 1, 2, 3], side=8, suffix=False)
    write_batch(data / "val_data.npz", [1, 2, 5], side=8)
    ds = load_dataset(
        "imagenet-npz", image_size, data_dir=data, cache_dir=tmp_path / "cache", test_fraction=0.2
    )
    assert ds.name == "imagenet-npz"
    assert ds.num_classes == 5
    assert ds.class_names[0] == "1"
    assert (len(ds.y_train), len(ds.y_test)) == (16, 4)
    np.testing.assert_array_equal(ds.y_val, [0, 1, 4])
    assert sorted(np.concatenate([ds.y_train, ds.y_test]).tolist()) == [0] * 6 + [1] * 7 + [2] * 7
    assert ds.x_train.shape == (16, image_size, image_size, 3)
    assert (ds.x_val[..., 1] == 20).all()
    assert (ds.x_val[..., 2] == 30).all()
    if image_size == 8:
        np.testing.assert_array_equal(ds.x_val[0, :, :, 0], np.arange(64).reshape(8, 8))


def test_imagenet_npz_missing_files_lists_paths(tmp_path, monkeypatch):
    monkeypatch.setenv("XSEARCH_DATA_DIR", str(tmp_path / "env"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    with pytest.raises(FileNotFoundError) as error:
        load_dataset("imagenet-npz", 64, cache_dir=tmp_path / "cache")
    message = str(error.value)
    assert str(tmp_path / "env" / "imagenet64") in message
    assert str(tmp_path / "home" / ".xsearch" / "data" / "imagenet64") in message
    assert "Imagenet64_train_part1.zip" in message
    assert "--data-dir" in message
    assert "XSEARCH_DATA_DIR" in message
    with pytest.raises(FileNotFoundError, match="imagenet32") as error:
        load_dataset("imagenet-npz", 32, cache_dir=tmp_path / "cache")
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "given")):
        load_dataset("imagenet-npz", 32, data_dir=tmp_path / "given", cache_dir=tmp_path / "cache")


def test_imagenet_npz_bad_batch(tmp_path):
    np.savez(tmp_path / "train_data_batch_1.npz", pixels=np.zeros((2, 12), np.uint8), labels=[1, 2])
    write_batch(tmp_path / "val_data.npz", [1, 2], side=2)
    with pytest.raises(ValueError, match=r"train_data_batch_1.npz has no 'data' array"):
        load_dataset("imagenet-npz", 2, data_dir=tmp_path, cache_dir=tmp_path / "cache")


def digits_hashes(x: np.ndarray) -> list[str]:
    return sorted(hashlib.sha1(image.tobytes()).hexdigest() for image in x)


def test_digits_splits_are_disjoint_and_complete(tmp_path):
    ds = load_dataset("digits", 8, cache_dir=tmp_path)
    assert ds.num_classes == 10
    assert ds.class_names == [str(d) for d in range(10)]
    assert len(ds.y_train) + len(ds.y_val) + len(ds.y_test) == 1797
    assert ds.x_train.dtype == np.uint8
    assert ds.y_train.dtype == np.int32
    assert ds.x_val.shape[1:] == (8, 8, 3)
    assert set(ds.y_val.tolist()) == set(range(10))  # stratified
    grey = np.round(load_digits().data * 255 / 16).astype(np.uint8).reshape(-1, 8, 8, 1)
    union = np.concatenate([ds.x_train, ds.x_val, ds.x_test])
    assert digits_hashes(union) == digits_hashes(np.repeat(grey, 3, axis=-1))


def test_digits_resized_and_seeded(tmp_path):
    first = load_dataset("digits", 32, cache_dir=tmp_path / "a", seed=1)
    again = load_dataset("digits", 32, cache_dir=tmp_path / "b", seed=1)
    other = load_dataset("digits", 32, cache_dir=tmp_path / "c", seed=2)
    assert first.x_train.shape == (1437, 32, 32, 3)
    assert first.x_test.shape == (180, 32, 32, 3)
    np.testing.assert_array_equal(first.x_val, again.x_val)
    np.testing.assert_array_equal(first.y_train, again.y_train)
    assert not np.array_equal(first.y_val, other.y_val)


def test_max_train_keeps_val_and_test(tmp_path):
    full = load_dataset("digits", 8, cache_dir=tmp_path, test_fraction=0)
    small = load_dataset("digits", 8, cache_dir=tmp_path, test_fraction=0, max_train=100)
    assert len(small.y_train) == 100
    assert small.x_test.shape == (0, 8, 8, 3)
    np.testing.assert_array_equal(small.x_val, full.x_val)
    assert set(small.y_train.tolist()) == set(range(10))


def fake_cifar(classes: int):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (60, 32, 32, 3), dtype=np.uint8)
    labels = (np.arange(60) % classes).reshape(-1, 1)
    return lambda: ((images[:50], labels[:50]), (images[50:], labels[50:]))


@pytest.mark.parametrize(("source", "classes"), [("cifar10", 10), ("cifar100", 100)])
def test_cifar_from_keras_loader(tmp_path, monkeypatch, source, classes):
    monkeypatch.setattr(getattr(keras.datasets, source), "load_data", fake_cifar(classes))
    ds = load_dataset(source, 16, cache_dir=tmp_path, val_fraction=0.2)
    assert ds.num_classes == len(ds.class_names) == classes
    assert (ds.x_train.shape, ds.x_val.shape, ds.x_test.shape) == (
        (40, 16, 16, 3),
        (10, 16, 16, 3),
        (10, 16, 16, 3),
    )
    assert ds.y_test.dtype == np.int32
    assert ds.y_test.ndim == 1


def test_cifar_offline_error_names_keras_cache(tmp_path, monkeypatch):
    def offline():
        raise Exception("URL fetch failure on https://www.cs.toronto.edu/")

    monkeypatch.setattr(keras.datasets.cifar10, "load_data", offline)
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "kh"))
    with pytest.raises(ValueError, match="URL fetch failure") as error:
        load_dataset("cifar10", 32, cache_dir=tmp_path)
    assert str(tmp_path / "kh" / "datasets" / "cifar-10-batches-py-target_archive") in str(
        error.value
    )


def test_cifar100_has_100_distinct_names():
    assert len(set(CIFAR100_CLASSES)) == 100


def test_tfds_missing_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(__import__("sys").modules, "tensorflow_datasets", None)
    with pytest.raises(ValueError, match="pip install tensorflow-datasets"):
        load_dataset("tfds:imagenet_resized/64x64", 64, cache_dir=tmp_path)


def test_unknown_source_lists_sources(tmp_path):
    with pytest.raises(
        ValueError, match="valid sources are digits, folder, arrays, imagenet-npz"
    ) as error:
        load_dataset("emnist", 32, cache_dir=tmp_path)
    assert all(source in str(error.value) for source in SOURCES)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image_size": 0}, "image_size"),
        ({"val_fraction": 0.0}, "val_fraction"),
        ({"test_fraction": 0.95}, "test_fraction"),
        ({"max_train": 0}, "max_train"),
    ],
)
def test_argument_errors(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        load_dataset("digits", **{"image_size": 8, **kwargs}, cache_dir=tmp_path)
