"""The "fashion-mnist" and "mnist" sources: the real files of Debian's dataset-fashion-mnist, and made idx files."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import keras
import numpy as np
import pytest

from tests.helpers import tiny_study_toml
from xsearch.cli import main
from xsearch.data import load_dataset
from xsearch.data.idx import IDX_DATASETS, read_idx

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
needs_debian_files = pytest.mark.skipif(
    not DEBIAN.is_dir() and os.environ.get("CI") != "true",
    reason="Debian's dataset-fashion-mnist is not installed (`apt-get install dataset-fashion-mnist`; .ci/run does)",
)


def write_idx(path: Path, array: np.ndarray, gz: bool = True) -> None:
    """``array`` (uint8) as an idx file, gzipped when ``gz``."""
    data = (
        bytes([0, 0, 0x08, array.ndim])
        + np.asarray(array.shape, ">u4").tobytes()
        + array.astype(np.uint8).tobytes()
    )
    path = path.with_name(path.name + ".gz") if gz else path
    with gzip.open(path, "wb") if gz else path.open("wb") as file:
        file.write(data)


def write_idx_set(
    folder: Path, train: int = 40, test: int = 20, side: int = 12, gz: bool = True
) -> Path:
    """A four-file idx set: image i's pixels all equal 10 * its label, labels cycling 0..9."""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, count in (("train", train), ("t10k", test)):
        labels = np.arange(count) % 10
        write_idx(
            folder / f"{prefix}-images-idx3-ubyte",
            np.repeat(10 * labels, side * side).reshape(count, side, side),
            gz,
        )
        write_idx(folder / f"{prefix}-labels-idx1-ubyte", labels, gz)
    return folder


@pytest.fixture
def nowhere(monkeypatch, tmp_path):
    """No Keras cache, no Debian folder and no network for the idx sources."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))
    for name, dataset in IDX_DATASETS.items():
        monkeypatch.setitem(
            IDX_DATASETS,
            name,
            type(dataset)(**{**dataset.__dict__, "debian_dir": tmp_path / "no-debian"}),
        )

    def offline():
        raise Exception("URL fetch failure: Name or service not known")

    monkeypatch.setattr(keras.datasets.fashion_mnist, "load_data", offline)
    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)


@needs_debian_files
def test_fashion_mnist_reads_debians_files_with_the_official_split(tmp_path):
    ds = load_dataset(
        "fashion-mnist", 28, cache_dir=tmp_path, val_fraction=0.01, max_train=500, seed=3
    )
    assert ds.source == "fashion-mnist"
    assert ds.class_names[0] == "T-shirt/top"
    assert ds.class_names[9] == "Ankle boot"
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (
        500,
        600,
        10_000,
    )  # val carved off the 60k, test kept
    assert ds.x_train.shape == (500, 28, 28, 3)
    assert ds.x_train.dtype == np.uint8
    # grey, repeated to the builder's RGB
    np.testing.assert_array_equal(ds.x_train[..., 0], ds.x_train[..., 2])
    assert np.bincount(ds.y_test).tolist() == [1000] * 10
    official = read_idx(DEBIAN / "t10k-labels-idx1-ubyte.gz")
    np.testing.assert_array_equal(ds.y_test, official)  # the official test images, in order
    other = load_dataset(
        "fashion-mnist", 28, cache_dir=tmp_path, val_fraction=0.01, max_train=500, seed=4
    )
    assert not np.array_equal(ds.y_val, other.y_val)
    assert np.array_equal(ds.y_test, other.y_test)  # val by the seed


@needs_debian_files
def test_idx_reader_matches_the_raw_bytes():
    images = read_idx(DEBIAN / "train-images-idx3-ubyte.gz")
    assert images.shape == (60_000, 28, 28)
    assert images.dtype == np.uint8
    with gzip.open(DEBIAN / "train-images-idx3-ubyte.gz") as file:
        raw = file.read(16 + 28 * 28)
    np.testing.assert_array_equal(images[0].ravel(), np.frombuffer(raw[16:], np.uint8))


@pytest.mark.parametrize("gz", [True, False])
def test_data_dir_with_made_files_gzipped_or_not(tmp_path, gz, nowhere):
    folder = write_idx_set(tmp_path / "mnist", gz=gz)
    ds = load_dataset("mnist", 16, data_dir=folder, cache_dir=tmp_path / "cache", val_fraction=0.25)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (30, 10, 20)
    assert ds.x_test.shape == (20, 16, 16, 3)
    assert ds.class_names == [str(d) for d in range(10)]
    for x, y in ((ds.x_train, ds.y_train), (ds.x_test, ds.y_test)):
        np.testing.assert_array_equal(x[:, 0, 0, 1], 10 * y)


def test_the_keras_cache_comes_before_debian(tmp_path, nowhere, monkeypatch):
    write_idx_set(tmp_path / "keras-home" / "datasets" / "fashion-mnist", train=30, test=10)
    ds = load_dataset("fashion-mnist", 12, cache_dir=tmp_path / "cache", val_fraction=0.2)
    assert len(ds.y_test) == 10
    assert len(ds.y_train) == 24


def test_keras_loader_is_the_last_resort(tmp_path, nowhere, monkeypatch):
    labels = np.arange(30) % 10
    images = np.repeat(labels, 8 * 8).reshape(30, 8, 8).astype(np.uint8)
    monkeypatch.setattr(
        keras.datasets.mnist, "load_data", lambda: ((images, labels), (images[:10], labels[:10]))
    )
    ds = load_dataset("mnist", 8, cache_dir=tmp_path / "cache", val_fraction=0.2)
    assert len(ds.y_test) == 10
    assert ds.x_test.shape == (10, 8, 8, 3)


def test_nothing_found_names_every_place_and_the_debian_package(tmp_path, nowhere):
    with pytest.raises(FileNotFoundError) as error:
        load_dataset("fashion-mnist", 28, cache_dir=tmp_path / "cache")
    message = str(error.value)
    assert str(tmp_path / "keras-home" / "datasets" / "fashion-mnist") in message
    assert str(tmp_path / "no-debian") in message
    assert "no such folder" in message
    assert "apt-get install dataset-fashion-mnist" in message
    assert "--data-dir" in message
    assert "keras.datasets.fashion_mnist.load_data()" in message
    assert "Name or service not known" in message
    assert not (tmp_path / "cache").exists() or not any((tmp_path / "cache").glob("fashion-mnist*"))


def test_data_dir_missing_or_damaged_files_are_named(tmp_path, nowhere):
    folder = write_idx_set(tmp_path / "fm")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError, match=r"lacks t10k-labels-idx1-ubyte \(\.gz or not\)"):
        load_dataset("fashion-mnist", 12, data_dir=folder, cache_dir=tmp_path / "cache")
    write_idx_set(folder)
    damaged = folder / "train-images-idx3-ubyte.gz"
    with gzip.open(damaged) as file:
        data = file.read()
    with gzip.open(damaged, "wb") as file:
        file.write(data[:-7])
    with pytest.raises(
        ValueError, match=r"train-images-idx3-ubyte.gz: truncated or damaged idx file"
    ):
        load_dataset("fashion-mnist", 12, data_dir=folder, cache_dir=tmp_path / "cache")
    damaged.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match=r"train-images-idx3-ubyte.gz: not a readable idx file"):
        load_dataset("fashion-mnist", 12, data_dir=folder, cache_dir=tmp_path / "cache")


def test_mismatched_counts_are_refused(tmp_path, nowhere):
    folder = write_idx_set(tmp_path / "fm")
    write_idx(folder / "train-labels-idx1-ubyte", np.arange(39) % 10)
    with pytest.raises(ValueError, match=r"expected N grey images \(N, H, W\) and N labels"):
        load_dataset("fashion-mnist", 12, data_dir=folder, cache_dir=tmp_path / "cache")


def test_a_study_without_the_files_exits_2_and_writes_no_study(tmp_path, nowhere, capsys):
    study = tmp_path / "fm.toml"
    study.write_text(tiny_study_toml(data={"source": "fashion-mnist", "image_size": 16}))
    out = tmp_path / "run"
    assert main(["run", "--study", str(study), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "apt-get install dataset-fashion-mnist" in err
    assert str(tmp_path / "no-debian") in err
    assert not (out / "study.journal").exists()


def test_the_shipped_studies_read_fashion_mnist():
    from xsearch.study.spec import load_study_spec

    cpu, gpu = load_study_spec("fashion-mnist"), load_study_spec("fashion-mnist-gpu")
    assert cpu.data.source == gpu.data.source == "fashion-mnist"
    assert gpu.data.image_size == 32
    assert gpu.data.max_train is None  # the full training set at 32x32
    assert cpu.data.max_train is not None
    assert cpu.timeout is not None
    assert cpu.timeout <= 15 * 60


@needs_debian_files
def test_copying_the_debian_files_as_data_dir_gives_the_same_data(tmp_path):
    folder = tmp_path / "copy"
    shutil.copytree(DEBIAN, folder)
    a = load_dataset("fashion-mnist", 28, cache_dir=tmp_path / "a", max_train=100)
    b = load_dataset("fashion-mnist", 28, data_dir=folder, cache_dir=tmp_path / "b", max_train=100)
    np.testing.assert_array_equal(a.x_train, b.x_train)
