"""Turns a source's `RawData` into a `Dataset`: carves missing val/test splits off train and subsamples train."""

from __future__ import annotations

import math

import numpy as np
from sklearn.model_selection import train_test_split

from xsearch.data.dataset import Dataset, RawData, Split, channel_stats


def make_dataset(
    raw: RawData,
    *,
    name: str,
    seed: int,
    val_fraction: float,
    test_fraction: float,
    max_train: int | None,
) -> Dataset:
    """Carves test then val (fractions of the whole train pool) off train when the source lacks them.

    Splits are stratified by class when feasible and deterministic in `seed`; `max_train` then keeps
    that many training images (stratified too), leaving val and test unchanged.
    """
    train = raw.train
    pool = len(train[1])
    test = raw.test
    if test is None:
        train, test = _take(train, math.ceil(test_fraction * pool), seed)
    val = raw.val
    if val is None:
        train, val = _take(train, math.ceil(val_fraction * pool), seed)
    if max_train is not None and max_train < len(train[1]):
        _, train = _take(train, max_train, seed)
    mean, std = channel_stats(train[0])
    return Dataset(
        name=name,
        x_train=train[0],
        y_train=train[1],
        x_val=val[0],
        y_val=val[1],
        x_test=test[0],
        y_test=test[1],
        num_classes=len(raw.class_names),
        class_names=list(raw.class_names),
        mean=mean,
        std=std,
    )


def _take(split: Split, count: int, seed: int) -> tuple[Split, Split]:
    """Splits `count` images off `split` (stratified when feasible); returns (rest, taken)."""
    x, y = split
    if count <= 0:
        return split, (x[:0], y[:0])
    if count >= len(y):
        raise ValueError(
            f"Cannot carve {count} images off the {len(y)} left for training; "
            "lower val_fraction/test_fraction."
        )
    rest, taken = train_test_split(
        np.arange(len(y)), test_size=count, random_state=seed, stratify=_stratify(y, count)
    )
    return (x[rest], y[rest]), (x[taken], y[taken])


def _stratify(y: np.ndarray, count: int) -> np.ndarray | None:
    """`y` when scikit-learn can stratify a split of `count` images off it, else None."""
    counts = np.unique(y, return_counts=True)[1]
    feasible = counts.min() >= 2 and len(counts) <= count <= len(y) - len(counts)
    return y if feasible else None
