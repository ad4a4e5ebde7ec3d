"""Writing a cache's split files in one pass over the source: each block of decoded images goes, image by image,
to its place in the split that `xsearch.data.splits.plan_splits` gave it. A block is in memory at a time."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from xsearch.data.dataset import SPLITS, Block, ChannelStats, RawData, SourceSplit
from xsearch.data.npy import NpyFile, save_npy
from xsearch.data.progress import progress_bar
from xsearch.data.splits import Plan

LEFT_OUT = -1  # the split of a source image that no split keeps (``max_train``)


@dataclasses.dataclass(frozen=True)
class Written:
    """What `write_splits` wrote: images per split, the training split's mean and std, the unreadable files
    left out, and the number of images the source had."""

    counts: dict[str, int]
    mean: np.ndarray
    std: np.ndarray
    unreadable: list[str]
    files: int


@dataclasses.dataclass
class _Places:
    """Where each image of one source split goes: a split (an index into `SPLITS`, or `LEFT_OUT`) and a row there."""

    split: np.ndarray
    row: np.ndarray


def write_splits(
    raw: RawData, plan: Plan, folder: Path, image_size: int, description: str
) -> Written:
    """Writes ``x_<split>.npy`` and ``y_<split>.npy`` for every split into `folder`, with a progress bar.

    Each split's rows are in the plan's order; the images that cannot be decoded are left out of it.
    """
    sources = raw.splits()
    places = {
        name: _Places(np.full(len(s.labels), LEFT_OUT, np.int8), np.zeros(len(s.labels), np.int64))
        for name, s in sources.items()
    }
    for code, split in enumerate(SPLITS):
        origin, members = plan[split]
        places[origin].split[members] = code
        places[origin].row[members] = np.arange(len(members))
    files = {
        split: NpyFile(
            folder / f"x_{split}.npy", len(plan[split][1]), (image_size, image_size, 3), np.uint8
        )
        for split in SPLITS
    }
    holes: dict[str, list[int]] = {split: [] for split in SPLITS}
    stats = ChannelStats()
    unreadable: list[str] = []
    total = sum(len(source.labels) for source in sources.values())
    with progress_bar(total, description) as advance:
        for name, source in sources.items():
            for start, block in _blocks(name, source):
                rows = slice(start, start + len(block.images))
                codes, row = places[name].split[rows].copy(), places[name].row[rows]
                for bad in block.unreadable:
                    unreadable.append(
                        source.files[start + bad] if source.files else f"{name} image {start + bad}"
                    )
                    if codes[bad] != LEFT_OUT:
                        holes[SPLITS[codes[bad]]].append(int(row[bad]))
                        codes[bad] = LEFT_OUT
                for code, split in enumerate(SPLITS):
                    keep = codes == code
                    if keep.any():
                        files[split].write(row[keep], block.images[keep])
                        if split == "train":
                            stats.add(block.images[keep])
                advance(len(block.images))
    counts = {split: files[split].close(np.array(holes[split], np.int64)) for split in SPLITS}
    for split in SPLITS:
        origin, members = plan[split]
        save_npy(
            folder / f"y_{split}.npy", np.delete(sources[origin].labels[members], holes[split])
        )
    mean, std = stats.result()
    return Written(counts, mean, std, unreadable, total)


def _blocks(name: str, source: SourceSplit) -> Iterator[tuple[int, Block]]:
    """(first row, block) of each block of `source`, checking that they are as many images as it has labels."""
    start = 0
    for block in source.blocks():
        if start + len(block.images) > len(source.labels):
            raise ValueError(
                f"the {name} split of the source gave more images than its {len(source.labels)} labels."
            )
        yield start, block
        start += len(block.images)
    if start != len(source.labels):
        raise ValueError(
            f"the {name} split of the source gave {start} images for its {len(source.labels)} labels."
        )
