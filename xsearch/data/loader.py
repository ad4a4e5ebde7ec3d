"""`load_dataset`: decodes a source once into the fixed splits of its cache, which every later load memory-maps."""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from pathlib import Path

from xsearch.common.atomic import write_atomic
from xsearch.data.arrays import read_arrays
from xsearch.data.build import write_splits
from xsearch.data.cache import (
    UNREADABLE,
    build_lock,
    cache_folder,
    cache_root,
    listed,
    open_cache,
    refuse_unreadable,
    staging_folder,
    write_meta,
)
from xsearch.data.dataset import Dataset, RawData
from xsearch.data.digits import read_digits
from xsearch.data.folder import read_folder
from xsearch.data.idx import IDX_DATASETS, read_idx_source
from xsearch.data.imagenet_npz import find_imagenet_dir, read_imagenet_npz
from xsearch.data.keras_datasets import read_cifar
from xsearch.data.splits import Plan, plan_splits
from xsearch.data.tfds import read_tfds

TFDS_PREFIX = "tfds:"
SOURCES = (
    "digits",
    "folder",
    "arrays",
    "imagenet-npz",
    "fashion-mnist",
    "mnist",
    "cifar10",
    "cifar100",
    f"{TFDS_PREFIX}<name>",
)


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
    max_bad_fraction: float = 0.05,
    layout: str = "NHWC",
) -> Dataset:
    """Loads `source` (one of `SOURCES`) as uint8 RGB images of image_size x image_size, memory-mapped from its cache.

    Splits the source lacks are carved off its train split (fractions of it, stratified, by `seed`);
    `max_train` subsamples the training split. The first load decodes the source a block at a time into
    the cache in `cache_dir` (default `$XSEARCH_CACHE_DIR`, else `~/.cache/xsearch/data`); later loads,
    in any process, map the cached arrays without decoding. Image files that cannot be decoded are left
    out with a warning (listed in the cache's ``unreadable.txt``, and in `Dataset.unreadable`); more than
    `max_bad_fraction` of the files is an error. `layout` ("NHWC" or "NCHW") is that of the "arrays" source.
    """
    _check_arguments(image_size, val_fraction, test_fraction, max_train, max_bad_fraction)
    directory = Path(data_dir).expanduser().resolve() if data_dir is not None else None
    name, read, directory = _source_reader(source, directory, image_size, layout)
    key = {
        "source": source,
        "data_dir": str(directory) if directory is not None else None,
        "image_size": image_size,
        "seed": seed,
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
        "max_train": max_train,
        **({"layout": layout} if source == "arrays" else {}),
    }
    folder = cache_folder(cache_root(cache_dir), key)
    if not folder.is_dir():
        with build_lock(folder):
            if not folder.is_dir():  # another process may have built it while this one waited
                raw = read()
                plan = plan_splits(
                    {split: s.labels for split, s in raw.splits().items()},
                    seed=seed,
                    val_fraction=val_fraction,
                    test_fraction=test_fraction,
                    max_train=max_train,
                )
                _build(folder, raw, plan, name, source, image_size, max_bad_fraction)
    return open_cache(folder, max_bad_fraction)


def _build(
    folder: Path,
    raw: RawData,
    plan: Plan,
    name: str,
    source: str,
    image_size: int,
    max_bad_fraction: float,
) -> None:
    """Decodes `raw` into `folder` (through a staging folder); refuses too many unreadable files, with their list
    written beside the cache, and warns about the others."""
    with staging_folder(folder) as staging:
        written = write_splits(raw, plan, staging, image_size, f"decoding {name}")
        listing = folder.parent / f"{folder.name}.{UNREADABLE}"
        if len(written.unreadable) > max_bad_fraction * written.files:
            write_atomic(listing, "".join(f"{path}\n" for path in written.unreadable))
            refuse_unreadable(written.unreadable, written.files, max_bad_fraction, listing)
        empty = [split for split in ("train", "val") if not written.counts[split]]
        if empty:
            raise ValueError(
                f"Data set {name}: the {' and '.join(empty)} split is empty once the unreadable files are "
                f"left out; {written.counts}."
            )
        write_meta(
            staging,
            {
                "name": name,
                "source": source,
                "image_size": image_size,
                "class_names": raw.class_names,
                "mean": written.mean.tolist(),
                "std": written.std.tolist(),
                "images": written.counts,
                "files": written.files,
                "ignored": len(raw.ignored),
            },
            written.unreadable,
        )
    listing.unlink(missing_ok=True)
    _warn_left_out(name, folder, written.unreadable, written.files, list(raw.ignored))


def _warn_left_out(
    name: str, folder: Path, unreadable: list[str], files: int, ignored: list[str]
) -> None:
    if unreadable:
        print(
            f"xsearch: WARNING: {name}: left out {len(unreadable):,} of {files:,} image files "
            "that could not be decoded "
            f"({len(unreadable) / files:.1%}): {listed(unreadable)}; the full list is in {folder / UNREADABLE}.",
            file=sys.stderr,
            flush=True,
        )
    if ignored:
        print(
            f"xsearch: {name}: left out {len(ignored):,} files that are not images: {listed(ignored)}.",
            file=sys.stderr,
            flush=True,
        )


def _source_reader(
    source: str, data_dir: Path | None, image_size: int, layout: str
) -> tuple[str, Callable[[], RawData], Path | None]:
    """The dataset name, a reader of `source`'s images, and the data directory it reads from."""
    if source in ("digits", "cifar10", "cifar100") and data_dir is not None:
        raise ValueError(
            f"data_dir (--data-dir) {data_dir}: source {source!r} reads no folder (it comes with "
            f"{'scikit-learn' if source == 'digits' else 'Keras, which caches it'}); drop data_dir, or use a "
            f"source that reads one: folder, arrays, imagenet-npz, fashion-mnist, mnist or {TFDS_PREFIX}NAME."
        )
    if source == "digits":
        return source, functools.partial(read_digits, image_size), None
    if source in ("folder", "arrays"):
        if data_dir is None:
            what = (
                "folder that holds the class folders"
                if source == "folder"
                else "folder of x_train.npy ... or .npz file"
            )
            raise ValueError(f"Source {source!r} needs data_dir (--data-dir): the {what}.")
        if source == "folder":
            return (
                f"folder:{data_dir}",
                functools.partial(read_folder, data_dir, image_size),
                data_dir,
            )
        return (
            f"arrays:{data_dir}",
            functools.partial(read_arrays, data_dir, image_size, layout),
            data_dir,
        )
    if source == "imagenet-npz":
        found = find_imagenet_dir(data_dir, image_size)
        return source, functools.partial(read_imagenet_npz, found, image_size), found
    if source in IDX_DATASETS:
        return source, functools.partial(read_idx_source, source, data_dir, image_size), data_dir
    if source in ("cifar10", "cifar100"):
        return source, functools.partial(read_cifar, source, image_size), None
    if source.startswith(TFDS_PREFIX) and len(source) > len(TFDS_PREFIX):
        tfds_name = source[len(TFDS_PREFIX) :]
        return source, functools.partial(read_tfds, tfds_name, data_dir, image_size), data_dir
    raise ValueError(f"Unknown data source {source!r}; valid sources are {', '.join(SOURCES)}.")


def _check_arguments(
    image_size: int,
    val_fraction: float,
    test_fraction: float,
    max_train: int | None,
    max_bad_fraction: float,
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
    if max_train is not None and (
        isinstance(max_train, bool) or not isinstance(max_train, int) or max_train < 1
    ):
        raise ValueError(
            f"max_train must be None or an integer >= 1; received max_train={max_train!r}."
        )
    if (
        isinstance(max_bad_fraction, bool)
        or not isinstance(max_bad_fraction, (int, float))
        or not 0 <= max_bad_fraction < 1
    ):
        raise ValueError(
            f"max_bad_fraction (the share of image files that may be unreadable) must be in [0, 1); "
            f"received max_bad_fraction={max_bad_fraction!r}."
        )
