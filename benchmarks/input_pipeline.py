"""Images per second served by `BatchStream` on a synthetic uint8 dataset, with and without augmentation.

Usage: python benchmarks/input_pipeline.py [--image-size 32] [--batch-size 64] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from xsearch.data import BatchStream

NUM_IMAGES = 5000


def served_images_per_second(
    x: np.ndarray, y: np.ndarray, batch_size: int, augment: bool = True
) -> float:
    """Images/s of a shuffled `BatchStream` over (x, y): all batches of one epoch, timed on the second epoch."""
    stream = BatchStream(x, y, batch_size, augment=augment, shuffle=True)
    for _ in range(2):
        start = time.perf_counter()
        served = sum(len(stream[i][1]) for i in range(len(stream)))
        elapsed = time.perf_counter() - start
        stream.on_epoch_end()
    return served / elapsed


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--json", help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (NUM_IMAGES, args.image_size, args.image_size, 3), dtype=np.uint8)
    y = rng.integers(0, 10, NUM_IMAGES).astype(np.int32)
    results = [
        {
            "augment": augment,
            "images_per_second": served_images_per_second(x, y, args.batch_size, augment),
        }
        for augment in (False, True)
    ]
    print(
        f"BatchStream, {NUM_IMAGES} images of {args.image_size}x{args.image_size}x3, batch {args.batch_size}"
    )
    print(f"{'augment':<8} {'images/s':>12}")
    for row in results:
        print(f"{'yes' if row['augment'] else 'no':<8} {row['images_per_second']:>12,.0f}")
    report = {
        "image_size": args.image_size,
        "batch_size": args.batch_size,
        "num_images": NUM_IMAGES,
        "results": results,
    }
    if args.json:
        with open(args.json, "w") as file:
            json.dump(report, file, indent=2)
    return report


if __name__ == "__main__":
    main()
