"""The "digits" source: scikit-learn's 8x8 grey digits, scaled to uint8 RGB images."""

from __future__ import annotations

import numpy as np
from sklearn.datasets import load_digits

from xsearch.data.dataset import RawData, SourceSplit


def read_digits(image_size: int) -> RawData:
    """All 1797 digits as one train pool: values 0..16 scaled to 0..255, resized, grey repeated to RGB."""
    pixels, labels = load_digits(return_X_y=True)
    grey = np.round(pixels * (255 / 16)).astype(np.uint8).reshape(-1, 8, 8, 1)
    return RawData(
        train=SourceSplit.from_arrays(grey, labels, image_size),
        class_names=[str(d) for d in range(10)],
    )
