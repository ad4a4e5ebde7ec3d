"""Which images of a source make each split, in which order: missing val/test splits carved off train, train
subsampled.

Only labels are needed, so the splits of a data set of any size are decided before its images are decoded.
"""

from __future__ import annotations

import math

import numpy as np
from sklearn.model_selection import train_test_split

from xsearch.data.dataset import SPLITS

Plan = dict[str, tuple[str, np.ndarray]]
"""For each of `SPLITS`: the source split its images come from and their indices there, in the split's order."""


def plan_splits(
    labels: dict[str, np.ndarray],
    *,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    max_train: int | None,
) -> Plan:
    """The images of each split, from the labels of the source's splits (by name; "train" required).

    A source's own val/test images stay there, in order. Otherwise test, then val (fractions of the whole
    train pool) are carved off train, stratified by class when feasible and deterministic in `seed`;
    `max_train` then keeps that many training images (stratified too), leaving val and test unchanged.
    Carved splits are in the order scikit-learn's `train_test_split` gives.
    """
    train = labels["train"]
    plan: Plan = {name: (name, np.arange(len(y))) for name, y in labels.items()}
    rest = np.arange(len(train))
    for split, fraction in (("test", test_fraction), ("val", val_fraction)):
        if split not in labels:
            rest, taken = _take(rest, train, math.ceil(fraction * len(train)), seed)
            plan[split] = ("train", taken)
    if max_train is not None and max_train < len(rest):
        rest = _take(rest, train, max_train, seed)[1]
    plan["train"] = ("train", rest)
    return {split: plan[split] for split in SPLITS}


def _take(
    indices: np.ndarray, labels: np.ndarray, count: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Splits `count` of `indices` off (stratified by their labels when feasible); returns (rest, taken)."""
    if count <= 0:
        return indices, indices[:0]
    if count >= len(indices):
        raise ValueError(
            f"Cannot carve {count} images off the {len(indices)} left for training; lower val_fraction/test_fraction."
        )
    y = labels[indices]
    rest, taken = train_test_split(
        indices, test_size=count, random_state=seed, stratify=_stratify(y, count)
    )
    return rest, taken


def _stratify(y: np.ndarray, count: int) -> np.ndarray | None:
    """`y` when scikit-learn can stratify a split of `count` images off it, else None."""
    counts = np.unique(y, return_counts=True)[1]
    feasible = counts.min() >= 2 and len(counts) <= count <= len(y) - len(counts)
    return y if feasible else None
