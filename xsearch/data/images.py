"""Image helpers: decode a file, resize uint8 NHWC batches, and make them RGB."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, Image.DecompressionBombError)
"""What Pillow raises for a file it cannot decode (not an image, truncated, corrupt, too large)."""


def decode_image(path: Path, size: int) -> np.ndarray:
    """Decodes an image file (any mode: grey, CMYK, palette, RGBA, ...) to RGB uint8 (size, size, 3),
    bilinear-resized (aspect ratio not kept; transparency dropped)."""
    with Image.open(path) as file:
        file.draft("RGB", (size, size))
        # palette transparency: no warning through RGBA
        image = file.convert("RGBA") if file.mode == "P" else file
        return np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))


def resize_images(x: np.ndarray, size: int) -> np.ndarray:
    """Bilinear-resizes uint8 NHWC images (1 or 3 channels) to (size, size); returns `x` when already that size."""
    if x.shape[1:3] == (size, size):
        return x
    out = np.empty((len(x), size, size, x.shape[-1]), np.uint8)
    for i, image in enumerate(x):
        resized = Image.fromarray(image[..., 0] if x.shape[-1] == 1 else image).resize(
            (size, size), Image.Resampling.BILINEAR
        )
        out[i] = np.asarray(resized).reshape(size, size, -1)
    return out


def to_rgb(x: np.ndarray) -> np.ndarray:
    """Repeats single-channel NHWC images to 3 channels; returns 3-channel images as they are."""
    if x.shape[-1] == 3:
        return x
    if x.shape[-1] == 1:
        return np.repeat(x, 3, axis=-1)
    raise ValueError(f"Images must have 1 or 3 channels; received shape {x.shape}.")
