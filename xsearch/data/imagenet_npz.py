"""The "imagenet-npz" source: Downsampled ImageNet (Chrabaszcz et al. 2017) in its official npz batches."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from xsearch.data.dataset import BLOCK_ROWS, Block, RawData, SourceSplit
from xsearch.data.images import resize_images
from xsearch.data.npy import ArraySource, array_blocks, array_shape, npz_keys, read_array

OFFICIAL_SIDES = (8, 16, 32, 64)
DOWNLOAD_PAGE = "https://image-net.org/download-images.php (Downsampled ImageNet)"


def official_side(image_size: int) -> int:
    """The smallest official downsampled side >= image_size (64 for larger images)."""
    return next((side for side in OFFICIAL_SIDES if side >= image_size), OFFICIAL_SIDES[-1])


def find_imagenet_dir(data_dir: Path | None, image_size: int) -> Path:
    """The first directory holding `val_data[.npz]` and `train_data_batch_1[.npz]`: `data_dir` when given,
    else `$XSEARCH_DATA_DIR/imagenet<S>` then `~/.xsearch/data/imagenet<S>`; FileNotFoundError otherwise."""
    side = official_side(image_size)
    if data_dir is not None:
        candidates = [data_dir]
    else:
        candidates = [
            Path(d) / f"imagenet{side}" for d in (os.environ.get("XSEARCH_DATA_DIR"),) if d
        ]
        candidates.append(Path.home() / ".xsearch" / "data" / f"imagenet{side}")
    for directory in candidates:
        if _find(directory, "val_data") and _find(directory, "train_data_batch_1"):
            return directory
    archives = (
        "Imagenet64_train_part1.zip, Imagenet64_train_part2.zip and Imagenet64_val.zip"
        if side == 64
        else f"Imagenet{side}_train.zip and Imagenet{side}_val.zip"
    )
    raise FileNotFoundError(
        "Downsampled ImageNet not found: looked for val_data.npz and train_data_batch_1.npz .. "
        f"train_data_batch_10.npz in {', '.join(str(c) for c in candidates)}. To provide it, download "
        f"{archives} from {DOWNLOAD_PAGE}, unzip them into a folder DIR, and pass --data-dir DIR "
        f"(or set XSEARCH_DATA_DIR so that the files are in $XSEARCH_DATA_DIR/imagenet{side})."
    )


def read_imagenet_npz(directory: Path, image_size: int) -> RawData:
    """Reads train_data_batch_1, 2, ... (up to the first missing one) and val_data; labels become 0-based.

    Labels and array headers are read and checked here; the images are streamed from the files a block at
    a time when the splits' blocks are read.
    """
    train_files: list[Path] = []
    while path := _find(directory, f"train_data_batch_{len(train_files) + 1}"):
        train_files.append(path)
    val_file = _find(directory, "val_data")
    if val_file is None:
        raise FileNotFoundError(
            f"{directory}: no val_data file (val_data or val_data.npz) beside the train batches."
        )
    train = _batches(train_files, image_size)
    val = _batches([val_file], image_size)
    num_classes = int(max(train.labels.max(initial=0), val.labels.max(initial=0))) + 1
    return RawData(
        train=train, val=val, class_names=[str(label) for label in range(1, num_classes + 1)]
    )


def _find(directory: Path, stem: str) -> Path | None:
    return next((p for p in (directory / f"{stem}.npz", directory / stem) if p.is_file()), None)


def _batches(paths: list[Path], image_size: int) -> SourceSplit:
    """The images of npz batches, in order, with their 0-based labels."""
    labels = [_labels(path) for path in paths]
    for path, batch_labels in zip(paths, labels):
        _check_data(path, len(batch_labels))

    def blocks() -> Iterator[Block]:
        for path in paths:
            for planar in array_blocks((path, "data"), BLOCK_ROWS):
                yield Block(resize_images(_planar_to_nhwc(planar), image_size))

    return SourceSplit(np.concatenate(labels), blocks)


def _labels(path: Path) -> np.ndarray:
    labels = read_array(_array(path, "labels")).astype(np.int32) - 1
    if labels.ndim != 1:
        raise ValueError(
            f"{path}: 'labels' must be one label a row, shape (N,); found {labels.shape}."
        )
    if labels.size and labels.min() < 0:
        raise ValueError(f"{path}: labels must be 1-based (1..1000); found {labels.min() + 1}.")
    return labels


def _check_data(path: Path, count: int) -> None:
    """`data` must be uint8 (count, 3*S*S), R, G then B planes."""
    shape, dtype = array_shape(_array(path, "data"))
    side = round((shape[-1] / 3) ** 0.5) if len(shape) == 2 else 0
    if dtype != np.uint8 or side == 0 or 3 * side * side != shape[-1] or shape[0] != count:
        raise ValueError(
            f"{path}: 'data' must be uint8 of shape (N, 3*S*S) (e.g. S=32 or 64), one row per label ({count}); "
            f"found {dtype} {shape}."
        )


def _planar_to_nhwc(data: np.ndarray) -> np.ndarray:
    """Rows (N, 3*S*S) with R, G then B planes, as uint8 (N, S, S, 3)."""
    side = round((data.shape[-1] / 3) ** 0.5)
    return np.ascontiguousarray(data.reshape(-1, 3, side, side).transpose(0, 2, 3, 1))


def _array(path: Path, key: str) -> ArraySource:
    if key not in npz_keys(path):
        raise ValueError(
            f"{path} has no {key!r} array; expected an npz file with 'data' and 'labels' "
            "(official Downsampled ImageNet format)."
        )
    return path, key
