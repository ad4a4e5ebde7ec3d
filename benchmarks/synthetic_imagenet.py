"""Random images in the official downsampled-ImageNet npz format, for imagenet-small-shaped runs.

The files look like Chrabaszcz et al.'s ``Imagenet64_train_npz`` / ``Imagenet64_val_npz``:
``train_data_batch_<k>.npz`` and ``val_data.npz``, each with ``data`` (N, 3*side*side) uint8
in channel-major order, 1-based ``labels`` and a ``mean``. The pixels are noise: the data measure
speed and the shape of a study, not accuracy.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def write_imagenet_npz(
    folder: Path,
    train_images: int,
    val_images: int,
    side: int = 64,
    classes: int = 1000,
    train_batches: int = 2,
    seed: int = 0,
) -> None:
    """Write ``train_images`` split over ``train_batches`` files and ``val_images`` into ``folder``."""
    if min(train_images, val_images, classes, train_batches) < 1 or train_images < train_batches:
        raise ValueError(
            "train_images >= train_batches >= 1, val_images >= 1 and classes >= 1 are needed; received "
            f"{train_images}, {train_batches}, {val_images}, {classes}."
        )
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    sizes = [len(part) for part in np.array_split(np.arange(train_images), train_batches)]
    files = [(f"train_data_batch_{k + 1}", count) for k, count in enumerate(sizes)] + [
        ("val_data", val_images)
    ]
    for name, count in files:
        labels = np.resize(np.arange(1, classes + 1), count)
        np.savez(
            folder / f"{name}.npz",
            data=rng.integers(0, 256, (count, 3 * side * side), dtype=np.uint8),
            labels=labels,
            mean=np.zeros(3 * side * side),
        )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder", type=Path, help="where to write the .npz files")
    parser.add_argument("--train-images", type=int, default=20_000)
    parser.add_argument("--val-images", type=int, default=1_000)
    parser.add_argument("--side", type=int, default=64)
    parser.add_argument("--classes", type=int, default=1000)
    args = parser.parse_args(argv)
    write_imagenet_npz(args.folder, args.train_images, args.val_images, args.side, args.classes)
    print(
        f"wrote {args.train_images} + {args.val_images} random {args.side}x{args.side} images to {args.folder}"
    )


if __name__ == "__main__":
    main()
