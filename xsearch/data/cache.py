"""The on-disk cache of decoded datasets: one uint8 `.npz` per (source, data_dir, size, seed, fractions, max_train)."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np

from xsearch.common.atomic import atomic_path
from xsearch.data.dataset import Dataset

CACHE_FORMAT = 1
ARRAY_FIELDS = ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test", "mean", "std")


def cache_root(cache_dir: str | Path | None) -> Path:
    """`cache_dir` if given, else `$XSEARCH_CACHE_DIR`, else `~/.cache/xsearch/data`."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("XSEARCH_CACHE_DIR")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "xsearch" / "data"


def cache_file(root: Path, key: dict[str, Any]) -> Path:
    """The cache path for `key` (which must hold "source" and "image_size"): readable prefix + hash of the key."""
    digest = hashlib.sha256(json.dumps({**key, "format": CACHE_FORMAT}, sort_keys=True).encode()).hexdigest()
    slug = re.sub(r"[^A-Za-z0-9]+", "-", key["source"]).strip("-")
    return root / f"{slug}-{key['image_size']}px-{digest[:16]}.npz"


def write_cache(path: Path, dataset: Dataset) -> None:
    """Writes `dataset` to `path` atomically (`xsearch.common.atomic.atomic_path`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    arrays = {name: getattr(dataset, name) for name in ARRAY_FIELDS}
    with atomic_path(path, suffix=".npz") as temporary:
        np.savez(
            temporary,
            name=np.array(dataset.name),
            num_classes=np.array(dataset.num_classes),
            class_names=np.array(dataset.class_names, dtype=str),
            **arrays,
        )


def read_cache(path: Path) -> Dataset:
    """The `Dataset` stored at `path` by `write_cache`."""
    with np.load(path) as stored:
        return Dataset(
            name=str(stored["name"]),
            num_classes=int(stored["num_classes"]),
            class_names=[str(name) for name in stored["class_names"]],
            **{field: stored[field] for field in ARRAY_FIELDS},
        )
