"""The on-disk cache of decoded data sets: one folder per (source, data_dir, size, seed, fractions, max_train).

A cache folder holds ``x_<split>.npy`` (uint8 NHWC) and ``y_<split>.npy`` (int32) for each of `SPLITS`,
memory-mapped read-only by every process that loads it (they share the page cache), ``meta.json``
(names, classes, mean and std, counts) and ``unreadable.txt`` when files were left out. A build
writes into a hidden staging folder beside it and renames that into place when complete, holding
an exclusive `fcntl.flock` on a lock file beside it: concurrent builders (processes, or machines on
a shared disk whose file system supports flock) build once, and a killed build leaves only a
staging folder that is never read and is deleted by the next build.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from xsearch.common.atomic import write_atomic
from xsearch.data.dataset import SPLITS, Dataset

CACHE_FORMAT = 2  # 1: one .npz read whole into every process
META = "meta.json"
UNREADABLE = "unreadable.txt"
STAGING_SUFFIX = ".partial"
MAX_LISTED = 10


def cache_root(cache_dir: str | Path | None) -> Path:
    """`cache_dir` if given, else `$XSEARCH_CACHE_DIR`, else `~/.cache/xsearch/data`."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("XSEARCH_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "xsearch" / "data"


def cache_folder(root: Path, key: dict[str, Any]) -> Path:
    """The cache folder for `key` (which must hold "source" and "image_size"): readable prefix + hash of the key."""
    digest = hashlib.sha256(
        json.dumps({**key, "format": CACHE_FORMAT}, sort_keys=True).encode()
    ).hexdigest()
    slug = re.sub(r"[^A-Za-z0-9]+", "-", key["source"]).strip("-")
    return root / f"{slug}-{key['image_size']}px-{digest[:16]}"


@contextlib.contextmanager
def build_lock(folder: Path) -> Iterator[None]:
    """Holds an exclusive lock on ``.<folder name>.lock`` beside `folder`, waiting (and saying so) while another
    process holds it."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f".{folder.name}.lock", "a") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(
                f"xsearch: waiting for another process to finish building the data cache {folder}",
                file=sys.stderr,
                flush=True,
            )
            fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@contextlib.contextmanager
def staging_folder(folder: Path) -> Iterator[Path]:
    """An empty hidden folder beside `folder` to build in, renamed to `folder` when the block succeeds and deleted
    when it fails. Hold `build_lock`: the staging folders that killed builds left are deleted first."""
    for stale in folder.parent.glob(f".{folder.name}.*{STAGING_SUFFIX}"):
        shutil.rmtree(stale, ignore_errors=True)
    staging = Path(
        tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.", suffix=STAGING_SUFFIX)
    )
    try:
        yield staging
        os.chmod(staging, 0o755)
        os.rename(staging, folder)
        _fsync_folder(folder.parent)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def open_cache(folder: Path, max_bad_fraction: float) -> Dataset:
    """The `Dataset` of a cache folder, its arrays memory-mapped read-only; ValueError when more files were left
    out as unreadable than `max_bad_fraction` of the files read allows (`refuse_unreadable`)."""
    try:
        meta = json.loads((folder / META).read_text())
        arrays = {
            f"{axis}_{split}": np.load(
                folder / f"{axis}_{split}.npy", mmap_mode="r", allow_pickle=False
            )
            for split in SPLITS
            for axis in "xy"
        }
        unreadable = (
            (folder / UNREADABLE).read_text().splitlines()
            if (folder / UNREADABLE).is_file()
            else []
        )
        dataset = Dataset(
            name=meta["name"],
            num_classes=len(meta["class_names"]),
            class_names=meta["class_names"],
            mean=np.array(meta["mean"], np.float32),
            std=np.array(meta["std"], np.float32),
            source=meta["source"],
            cache_key=folder.name,
            unreadable=unreadable,
            ignored=meta["ignored"],
            **arrays,
        )
        files = int(meta["files"])
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(
            f"The data cache {folder} is incomplete or was written by another xsearch version ({err}); "
            "delete it and it is built again."
        ) from err
    refuse_unreadable(unreadable, files, max_bad_fraction, folder / UNREADABLE)
    return dataset


def write_meta(folder: Path, meta: dict[str, Any], unreadable: list[str]) -> None:
    """``meta.json`` and, when files were left out as unreadable, ``unreadable.txt`` (one path a line)."""
    if unreadable:
        write_atomic(folder / UNREADABLE, "".join(f"{path}\n" for path in unreadable))
    write_atomic(folder / META, json.dumps({**meta, "format": CACHE_FORMAT}, indent=1))


def refuse_unreadable(
    unreadable: list[str], files: int, max_bad_fraction: float, listing: Path
) -> None:
    """ValueError naming the unreadable files when there are more than `max_bad_fraction` of `files`."""
    if len(unreadable) <= max_bad_fraction * files:
        return
    raise ValueError(
        f"{len(unreadable):,} of {files:,} image files ({len(unreadable) / files:.1%}) could not be decoded, more than "
        f"data.max_bad_fraction = {max_bad_fraction} allows: {listed(unreadable)}. The full list is in {listing}. "
        "Remove or replace those files, or raise data.max_bad_fraction to train without them."
    )


def listed(paths: list[str]) -> str:
    """The first `MAX_LISTED` paths, comma-separated, and how many more."""
    more = f" and {len(paths) - MAX_LISTED:,} more" if len(paths) > MAX_LISTED else ""
    return ", ".join(paths[:MAX_LISTED]) + more


def _fsync_folder(folder: Path) -> None:
    descriptor = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
