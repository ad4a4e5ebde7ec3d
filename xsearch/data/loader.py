"""`load_dataset`: reads a source once, makes the fixed splits, and caches the result."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

from xsearch.data.cache import cache_file, cache_root, read_cache, write_cache
from xsearch.data.dataset import Dataset, RawData
from xsearch.data.digits import read_digits
from xsearch.data.folder import read_folder
from xsearch.data.imagenet_npz import find_imagenet_dir, read_imagenet_npz
from xsearch.data.keras_datasets import read_cifar
from xsearch.data.splits import make_dataset
from xsearch.data.tfds import read_tfds

TFDS_PREFIX = "tfds:"
SOURCES = ("digits", "folder", "imagenet-npz", "cifar10", "cifar100", f"{TFDS_PREFIX}<name>")


def load_dataset(
    source: str,
    image_size: int,
    *,
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    seed: int = 0,
    val_fraction: float = 0.1,
    test_fraction: float = 0.1,
    max_train: int | None = None,
) -> Dataset:
    """Loads `source` (one of `SOURCES`) as uint8 RGB images of image_size x image_size.

    Splits the source lacks are carved off its train split (fractions of it, stratified, by `seed`);
    `max_train` subsamples the training split. The result is cached in `cache_dir` (default
    `$XSEARCH_CACHE_DIR`, else `~/.cache/xsearch/data`), so later calls with the same arguments
    skip decoding.
    """
    _check_arguments(image_size, val_fraction, test_fraction, max_train)
    directory = Path(data_dir).expanduser().resolve() if data_dir is not None else None
    name, read, directory = _source_reader(source, directory, image_size)
    key = {
        "source": source,
        "data_dir": str(directory) if directory is not None else None,
        "image_size": image_size,
        "seed": seed,
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
        "max_train": max_train,
    }
    path = cache_file(cache_root(cache_dir), key)
    if path.is_file():
        return read_cache(path)
    dataset = make_dataset(
        read(),
        name=name,
        seed=seed,
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        max_train=max_train,
    )
    write_cache(path, dataset)
    return dataset


def _source_reader(
    source: str, data_dir: Path | None, image_size: int
) -> tuple[str, Callable[[], RawData], Path | None]:
    """The dataset name, a reader of `source`'s images, and the data directory it reads from."""
    if source == "digits":
        return source, functools.partial(read_digits, image_size), None
    if source == "folder":
        if data_dir is None:
            raise ValueError("Source 'folder' needs data_dir: the folder that holds train/<class>/ images.")
        return f"folder:{data_dir}", functools.partial(read_folder, data_dir, image_size), data_dir
    if source == "imagenet-npz":
        found = find_imagenet_dir(data_dir, image_size)
        return source, functools.partial(read_imagenet_npz, found, image_size), found
    if source in ("cifar10", "cifar100"):
        return source, functools.partial(read_cifar, source, image_size), None
    if source.startswith(TFDS_PREFIX) and len(source) > len(TFDS_PREFIX):
        tfds_name = source[len(TFDS_PREFIX) :]
        return source, functools.partial(read_tfds, tfds_name, data_dir, image_size), data_dir
    raise ValueError(f"Unknown data source {source!r}; valid sources are {', '.join(SOURCES)}.")


def _check_arguments(
    image_size: int, val_fraction: float, test_fraction: float, max_train: int | None
) -> None:
    if isinstance(image_size, bool) or not isinstance(image_size, int) or image_size < 1:
        raise ValueError(f"image_size must be an integer >= 1; received image_size={image_size!r}.")
    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be in (0, 1); received val_fraction={val_fraction!r}.")
    if not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError(
            "test_fraction must be in [0, 1) with val_fraction + test_fraction < 1; "
            f"received test_fraction={test_fraction!r}, val_fraction={val_fraction!r}."
        )
    if max_train is not None and (isinstance(max_train, bool) or not isinstance(max_train, int) or max_train < 1):
        raise ValueError(f"max_train must be None or an integer >= 1; received max_train={max_train!r}.")
