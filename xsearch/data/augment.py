"""Per-image random horizontal flip and random crop after reflect padding, in numpy."""

from __future__ import annotations

import numpy as np


def flip_crop(x: np.ndarray, indices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`x[indices]` (uint8 NHWC), each image flipped with probability 1/2 and randomly cropped back to its
    size after reflect padding of max(1, side//8) pixels per side.

    Padding and flipping are vectorised over the batch; the crops are per-image slices, which measured
    2-3x faster than one fancy-indexed gather.
    """
    count, height, width = len(indices), x.shape[1], x.shape[2]
    pad_y, pad_x = max(1, height // 8), max(1, width // 8)
    padded = np.pad(x[indices], ((0, 0), (pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode="reflect")
    flip = rng.random(count) < 0.5
    padded[flip] = padded[flip, :, ::-1]
    top = rng.integers(0, 2 * pad_y + 1, count)
    left = rng.integers(0, 2 * pad_x + 1, count)
    out = np.empty((count, height, width, x.shape[3]), np.uint8)
    for i in range(count):
        out[i] = padded[i, top[i] : top[i] + height, left[i] : left[i] + width]
    return out
