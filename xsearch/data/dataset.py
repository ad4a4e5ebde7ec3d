"""`Dataset` (the loaded splits), `RawData` (what a source reads) and per-channel statistics."""

from __future__ import annotations

import dataclasses

import numpy as np

Split = tuple[np.ndarray, np.ndarray]


@dataclasses.dataclass
class Dataset:
    """Images as uint8 NHWC arrays, with fixed train/val/test splits."""

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


@dataclasses.dataclass
class RawData:
    """A source's images (uint8 NHWC, resized) and int32 labels; `val`/`test` are None when the source has none."""

    train: Split
    class_names: list[str]
    val: Split | None = None
    test: Split | None = None


def channel_stats(x: np.ndarray, chunk: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel float32 mean and std (at least 1e-3) of uint8 NHWC images, accumulated in float64 by chunks."""
    channels = x.shape[-1]
    total = np.zeros(channels)
    total_sq = np.zeros(channels)
    for start in range(0, len(x), chunk):
        part = x[start : start + chunk].reshape(-1, channels).astype(np.float64)
        total += part.sum(axis=0)
        total_sq += np.square(part).sum(axis=0)
    count = max(1, x.size // channels)
    mean = total / count
    std = np.sqrt(np.maximum(total_sq / count - np.square(mean), 0.0))
    return mean.astype(np.float32), np.maximum(std, 1e-3).astype(np.float32)
