"""The "arrays" source: a user's own arrays, as `.npy` files in a folder or as one `.npz` archive.

``x_train``/``y_train`` are required; ``x_val``/``y_val`` and ``x_test``/``y_test`` are optional pairs (a split
left out is carved off train by the seed), and ``class_names`` (strings) optional. Images are uint8
(0..255) or float (0..1 or 0..255, the same range for every split) in the stated layout, NHWC or NCHW
(N, H, W for grey images); labels are integer class indices (N,) or one-hot rows (N, C).
Everything is checked from the headers and a pass over the labels (and float pixels) before anything
is written; the images are read a block at a time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from xsearch.data.dataset import BLOCK_ROWS, SPLITS, Block, RawData, SourceSplit
from xsearch.data.images import resize_images, to_rgb
from xsearch.data.npy import (
    ArraySource,
    array_blocks,
    array_shape,
    npz_keys,
    read_array,
    source_name,
)

LAYOUTS = ("NHWC", "NCHW")


def read_arrays(data_dir: Path, image_size: int, layout: str = "NHWC") -> RawData:
    """The splits of the arrays in `data_dir` (a folder of `.npy` files or an `.npz` file), checked."""
    if layout not in LAYOUTS:
        raise ValueError(
            f"layout must be one of {', '.join(LAYOUTS)} (where the channel axis of the images is); "
            f"received {layout!r}."
        )
    arrays = _find_arrays(data_dir)
    pairs = {
        split: (arrays[f"x_{split}"], arrays[f"y_{split}"])
        for split in SPLITS
        if f"x_{split}" in arrays
    }
    shapes = {split: _image_shape(x, layout) for split, (x, _) in pairs.items()}
    labels = {split: _labels(y, shapes[split][0]) for split, (_, y) in pairs.items()}
    class_names = _class_names(arrays.get("class_names"), labels)
    scale = _pixel_scale({split: x for split, (x, _) in pairs.items()})
    splits = {
        split: SourceSplit(labels[split], _blocks(x, layout, scale, image_size))
        for split, (x, _) in pairs.items()
    }
    return RawData(
        train=splits["train"],
        val=splits.get("val"),
        test=splits.get("test"),
        class_names=class_names,
    )


def _find_arrays(data_dir: Path) -> dict[str, ArraySource]:
    """The arrays present, by name; ValueError when x_train/y_train are missing or an x/y pair is incomplete."""
    names = [f"{axis}_{split}" for split in SPLITS for axis in "xy"] + ["class_names"]
    if data_dir.is_file():
        keys = npz_keys(data_dir)
        found: dict[str, ArraySource] = {name: (data_dir, name) for name in names if name in keys}
        where, listed = f"{data_dir}", f"it holds {', '.join(keys) or 'no arrays'}"
    elif data_dir.is_dir():
        found = {
            name: (data_dir / f"{name}.npy", None)
            for name in names
            if (data_dir / f"{name}.npy").is_file()
        }
        where, listed = (
            f"folder {data_dir}",
            f"found {', '.join(sorted(found)) or 'no such .npy files'}",
        )
    else:
        what = "is not a .npz file" if data_dir.exists() else "does not exist"
        raise FileNotFoundError(
            f"Source 'arrays': {data_dir} {what}; pass a folder of x_train.npy, y_train.npy "
            "(and optionally x_val/y_val, x_test/y_test) or one .npz file with those arrays."
        )
    if "x_train" not in found or "y_train" not in found:
        raise ValueError(
            f"Source 'arrays': {where} needs x_train and y_train (optionally x_val/y_val, x_test/y_test, "
            f"class_names); {listed}."
        )
    for split in SPLITS:
        if (f"x_{split}" in found) != (f"y_{split}" in found):
            raise ValueError(
                f"Source 'arrays': {where} has only one of x_{split} and y_{split}; give both or neither."
            )
    return found


def _image_shape(source: ArraySource, layout: str) -> tuple[int, ...]:
    """The (N, H, W, C) shape of an image array in `layout`, checked: 1 or 3 channels, uint8 or float."""
    shape, dtype = array_shape(source)
    name = source_name(source)
    if dtype != np.uint8 and dtype.kind != "f":
        raise ValueError(
            f"{name}: images must be uint8 (0..255) or float (0..1 or 0..255); found {dtype}. "
            "Convert them, e.g. x.astype(np.uint8)."
        )
    if len(shape) == 3:
        return (*shape, 1)
    if len(shape) != 4:
        raise ValueError(
            f"{name}: images must have shape (N, H, W, C) or (N, C, H, W) (layout {layout}), or "
            f"(N, H, W) for grey images; found {shape}."
        )
    nhwc = shape if layout == "NHWC" else (shape[0], shape[2], shape[3], shape[1])
    if nhwc[3] not in (1, 3):
        raise ValueError(
            f"{name}: images in layout {layout} (data.layout, one of {', '.join(LAYOUTS)}) must have 1 or 3 "
            f"channels; shape {shape} has {nhwc[3]}."
        )
    if nhwc[0] == 0:
        raise ValueError(f"{name}: the array holds no images.")
    return nhwc


def _labels(source: ArraySource, count: int) -> np.ndarray:
    """int32 class indices from integer labels (N,) or (N, 1), or from one-hot rows (N, C) read a block at a time."""
    shape, dtype = array_shape(source)
    name = source_name(source)
    if len(shape) == 2 and shape[1] > 1:
        labels = np.concatenate(
            [_one_hot(block, name) for block in array_blocks(source, BLOCK_ROWS)]
            or [np.zeros(0, np.int32)]
        )
    elif len(shape) in (1, 2) and dtype.kind in "iu":
        labels = read_array(source).reshape(-1)
    else:
        raise ValueError(
            f"{name}: labels must be integer class indices of shape (N,) or one-hot rows (N, C); found "
            f"{dtype} {shape}. Convert float indices with y.astype(int)."
        )
    if len(labels) != count:
        raise ValueError(
            f"{name}: {len(labels)} labels for {count} images; there must be one label per image."
        )
    if labels.size and labels.min() < 0:
        raise ValueError(f"{name}: labels must be >= 0; found {labels.min()}.")
    return labels.astype(np.int32)


def _one_hot(block: np.ndarray, name: str) -> np.ndarray:
    ones = block == 1
    if not (np.all(ones | (block == 0)) and np.all(ones.sum(axis=1) == 1)):
        raise ValueError(
            f"{name}: 2-D labels are read as one-hot rows (N, C), so each row must hold one 1 and "
            "zeros; soft labels are not supported: give the class indices (N,) instead."
        )
    return np.argmax(ones, axis=1).astype(np.int32)


def _class_names(source: ArraySource | None, labels: dict[str, np.ndarray]) -> list[str]:
    """`class_names` when given (one per class index), else the indices as strings."""
    classes = 1 + max(int(y.max(initial=0)) for y in labels.values())
    if source is None:
        return [str(index) for index in range(classes)]
    names = read_array(source)
    if names.ndim != 1 or names.dtype.kind not in "US" or len(names) < classes:
        raise ValueError(
            f"{source_name(source)}: class_names must be strings, one per class: at least {classes} (the largest "
            f"label is {classes - 1}); found {names.dtype} {names.shape}."
        )
    return [str(name) for name in names]


def _pixel_scale(images: dict[str, ArraySource]) -> float:
    """What float pixels are multiplied by: 255 when every split's are in [0, 1], else 1 (they must be in [0, 255])."""
    floats = {
        split: source for split, source in images.items() if array_shape(source)[1].kind == "f"
    }
    if not floats:
        return 1.0
    if len(floats) != len(images):
        raise ValueError(
            f"Source 'arrays': {', '.join(source_name(s) for s in floats.values())} hold float images and the "
            "others uint8; give every split the same dtype."
        )
    low, high = np.inf, -np.inf
    for source in floats.values():
        for block in array_blocks(source, BLOCK_ROWS):
            if not np.all(np.isfinite(block)):
                raise ValueError(
                    f"{source_name(source)}: float images hold NaN or infinite values."
                )
            low, high = (
                min(low, float(block.min(initial=np.inf))),
                max(high, float(block.max(initial=-np.inf))),
            )
    if low < 0 or high > 255:
        raise ValueError(
            f"Source 'arrays': float images must be in [0, 1] or [0, 255]; found values in [{low}, {high}]. "
            "Undo any normalisation first (xsearch normalises with the training split's mean and std)."
        )
    return 255.0 if high <= 1 else 1.0


def _blocks(
    source: ArraySource, layout: str, scale: float, image_size: int
) -> Callable[[], Iterator[Block]]:
    def blocks() -> Iterator[Block]:
        for block in array_blocks(source, BLOCK_ROWS):
            if block.ndim == 3:
                block = block[..., None]
            elif layout == "NCHW":
                block = block.transpose(0, 2, 3, 1)
            if block.dtype != np.uint8:
                block = np.clip(np.rint(block * scale), 0, 255).astype(np.uint8)
            yield Block(to_rgb(resize_images(np.ascontiguousarray(block), image_size)))

    return blocks
