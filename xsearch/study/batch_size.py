"""``batch_size = "auto"``: the batch that trains the study's largest design fastest on this device.

Chosen once per study, so that every trial trains at the same batch (comparable accuracies). The
probe trains the largest design of the space at batch 8, 16, 32, ... and stops at the first batch
that runs out of device memory, or that gains less than 10 % images/s over half its size (a
bigger batch would then cost generalisation and memory for no speed), or at the limit: 1024, and
at most an eighth of the training set (at least 8 steps an epoch). Every smaller design fits too.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

from xsearch.data import Dataset
from xsearch.model.builder import build_model
from xsearch.model.config import XceptionConfig
from xsearch.model.device import resolve_precision, runtime_info
from xsearch.model.space import Choice, Range, SearchSpace
from xsearch.study.failures import classify_failure
from xsearch.study.fit import compile_model, with_normalization
from xsearch.study.record import FailureReason
from xsearch.study.spec import StudySpec

AUTO = "auto"
FIRST_BATCH = 8
MAX_BATCH = 1024
MIN_STEPS_PER_EPOCH = 8
PLATEAU_GAIN = 1.10
TIMED_SECONDS = 1.0


@dataclasses.dataclass(frozen=True)
class BatchProbe:
    """The chosen batch, the images/s measured at each batch tried, and why the probe stopped."""

    batch_size: int
    images_per_second: dict[int, float]
    stopped_by: str  # "oom", "plateau" or "limit"


def batch_limit(train_images: int) -> int:
    """The largest power of two <= ``MAX_BATCH`` that leaves ``MIN_STEPS_PER_EPOCH`` steps an epoch."""
    limit = FIRST_BATCH
    while limit * 2 <= min(MAX_BATCH, train_images // MIN_STEPS_PER_EPOCH):
        limit *= 2
    return limit


def probe_batch_size(images_per_second: Callable[[int], float], limit: int) -> BatchProbe:
    """Double the batch from ``FIRST_BATCH`` while it fits and pays (see the module docstring)."""
    rates: dict[int, float] = {}
    batch, stopped_by = FIRST_BATCH, "limit"
    while batch <= limit:
        try:
            rates[batch] = images_per_second(batch)
        except Exception as error:
            if classify_failure(error) != FailureReason.OOM:
                raise
            if not rates:
                raise ValueError(
                    f"the space's largest design does not train at batch {FIRST_BATCH} on this device "
                    f"(out of memory): give training.batch_size, a smaller image size or a smaller space."
                ) from None
            stopped_by = "oom"
            break
        if batch > FIRST_BATCH and rates[batch] < PLATEAU_GAIN * rates[batch // 2]:
            stopped_by = "plateau"
            break
        batch *= 2
    chosen = max(rates) if stopped_by != "plateau" else batch // 2
    return BatchProbe(chosen, rates, stopped_by)


def largest_design(space: SearchSpace) -> XceptionConfig:
    """The design of ``space`` with the most activations and weights: the one that needs most memory."""

    def most(axis: str, order: Callable[[Any], float]) -> Any:
        spec = space.axes[axis]
        return spec.high if isinstance(spec, Range) else max(spec.values, key=order)

    values: dict[str, Any] = {
        axis: most(axis, float) for axis in ("middle_repeats", "width", "depth_multiplier")
    }
    segments = space.axes["segments"]
    assert isinstance(segments, Choice)
    values["segments"] = min(
        segments.values, key=lambda k: k if isinstance(k, int) else float("inf")
    )
    values["intermediate_activation"] = most("intermediate_activation", lambda name: name != "none")
    values["residual"] = most("residual", bool)
    return XceptionConfig(**values)


def training_rate(
    config: XceptionConfig, spec: StudySpec, dataset: Dataset
) -> Callable[[int], float]:
    """Images/s of training steps of ``config`` at a given batch, compile time excluded."""
    size = spec.data.image_size
    training = spec.training
    rng = np.random.default_rng(spec.seed)

    def rate(batch: int) -> float:
        keras.backend.clear_session()
        keras.config.set_dtype_policy(resolve_precision(spec.precision))
        core = build_model(
            config, (size, size, 3), dataset.num_classes, bn_momentum=training.bn_momentum
        )
        model = with_normalization(core, dataset.mean, dataset.std)
        compile_model(model, training, steps_per_epoch=100, num_classes=dataset.num_classes)
        # raw pixels, as a trial streams them
        x = rng.integers(0, 256, (batch, size, size, 3), dtype=np.uint8)
        y = rng.integers(0, dataset.num_classes, (batch,))
        for _ in range(2):  # compiles
            model.train_on_batch(x, y)
        steps, started = 0, time.perf_counter()
        while steps < 3 or time.perf_counter() - started < TIMED_SECONDS:
            model.train_on_batch(x, y)
            steps += 1
        result = steps * batch / (time.perf_counter() - started)
        print(f"xsearch: batch {batch}: {result:,.0f} images/s", file=sys.stderr)
        return result

    return rate


def find_batch_size(spec: StudySpec, space: SearchSpace, dataset: Dataset) -> BatchProbe:
    """Probe the batch for ``spec`` on this device (see the module docstring)."""
    config = largest_design(space)
    print(
        f"xsearch: choosing the batch size on {runtime_info()['device']} with the largest design "
        f"{config.to_json()}",
        file=sys.stderr,
    )
    try:
        return probe_batch_size(
            training_rate(config, spec, dataset), batch_limit(len(dataset.y_train))
        )
    finally:
        keras.backend.clear_session()
