"""`Dataset` (the loaded splits), what a source reads (`RawData`: a `SourceSplit` per split, decoded a `Block`
at a time) and per-channel statistics."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from xsearch.data.images import resize_images, to_rgb

SPLITS = ("train", "val", "test")
BLOCK_ROWS = 1024  # images per block of a source held in memory (in-memory sources and arrays)
STATS_ROWS = 128


@dataclasses.dataclass
class Dataset:
    """Images as uint8 NHWC arrays with fixed train/val/test splits; `load_dataset` memory-maps them from its
    cache (read-only), so that the processes of one machine share one copy in the page cache."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    class_names: list[str]
    mean: np.ndarray
    std: np.ndarray
    source: str = ""  # the `load_dataset` source it was read from
    cache_key: str = ""  # the name of its cache folder
    # image files left out: they could not be decoded
    unreadable: list[str] = dataclasses.field(default_factory=list)
    ignored: int = 0  # files left out as not images (other extensions, hidden files, Thumbs.db)

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(images, labels) of the split `name` (one of `SPLITS`)."""
        return getattr(self, f"x_{name}"), getattr(self, f"y_{name}")

    def summary(self) -> dict[str, Any]:
        """What the data set is made of, as JSON values: source, image size, cache key, images per split,
        class names, images per class of each split, and the files left out."""
        return {
            "name": self.name,
            "source": self.source,
            "image_size": int(self.x_train.shape[1]),
            "cache_key": self.cache_key,
            "images": {split: len(self.split(split)[1]) for split in SPLITS},
            "class_names": list(self.class_names),
            "class_counts": {
                split: np.bincount(self.split(split)[1], minlength=self.num_classes).tolist()
                for split in SPLITS
            },
            "unreadable_files": len(self.unreadable),
            "ignored_files": self.ignored,
        }


@dataclasses.dataclass(frozen=True)
class Block:
    """Consecutive images of a source split (uint8 NHWC, RGB, at the requested size); ``unreadable``: the rows
    (within the block) whose file could not be decoded, left zero."""

    images: np.ndarray
    unreadable: tuple[int, ...] = ()


@dataclasses.dataclass(frozen=True)
class SourceSplit:
    """One split of a source: the int32 label of each image, and its images a `Block` at a time, in order."""

    labels: np.ndarray
    blocks: Callable[[], Iterator[Block]]
    # the file of each image, for sources that read files (names the unreadable ones)
    files: Sequence[str] = ()

    @classmethod
    def from_arrays(cls, x: np.ndarray, y: np.ndarray, image_size: int) -> SourceSplit:
        """A split of uint8 NHWC images held in memory (1 or 3 channels), resized and made RGB a block at a time."""

        def blocks() -> Iterator[Block]:
            for start in range(0, len(x), BLOCK_ROWS):
                yield Block(to_rgb(resize_images(x[start : start + BLOCK_ROWS], image_size)))

        return cls(np.asarray(y, np.int32).reshape(-1), blocks)


@dataclasses.dataclass(frozen=True)
class RawData:
    """What a source reads: its train split, the val/test splits it has (None: carved off train by the seed),
    its class names, and the files it left out as not images."""

    train: SourceSplit
    class_names: list[str]
    val: SourceSplit | None = None
    test: SourceSplit | None = None
    ignored: Sequence[str] = ()

    def splits(self) -> dict[str, SourceSplit]:
        """The splits the source has, by name."""
        return {name: split for name in SPLITS if (split := getattr(self, name)) is not None}


class ChannelStats:
    """Per-channel mean and std of uint8 NHWC images added a block at a time (sums in float64)."""

    def __init__(self, channels: int = 3) -> None:
        self.total = np.zeros(channels)
        self.total_sq = np.zeros(channels)
        self.count = 0

    def add(self, images: np.ndarray) -> None:
        for start in range(0, len(images), STATS_ROWS):  # float64 copies of a few images at a time
            pixels = (
                images[start : start + STATS_ROWS].reshape(-1, images.shape[-1]).astype(np.float64)
            )
            self.total += pixels.sum(axis=0)
            self.total_sq += np.square(pixels).sum(axis=0)
            self.count += len(pixels)

    def result(self) -> tuple[np.ndarray, np.ndarray]:
        """float32 (mean, std), the std at least 1e-3."""
        count = max(1, self.count)
        mean = self.total / count
        std = np.sqrt(np.maximum(self.total_sq / count - np.square(mean), 0.0))
        return mean.astype(np.float32), np.maximum(std, 1e-3).astype(np.float32)
