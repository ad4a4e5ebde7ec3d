"""Training-step time of a design on this machine, beside its depthwise twin.

MACs do not predict how fast a design trains: grouped convolutions (2-16 segments) cut MACs yet are the slow
case on a CPU, where TensorFlow runs them as a loop over groups. The probe times one optimizer step of the
design and of the same design with depthwise convolutions, at the same batch, so a user planning a study sees
the ratio on their own machine before paying for it.
"""

from __future__ import annotations

import dataclasses
from typing import TypedDict

import keras
import numpy as np

from xsearch.common.timing import time_calls
from xsearch.model.builder import build_model
from xsearch.model.config import XceptionConfig
from xsearch.model.device import runtime_info


class StepTime(TypedDict):
    step_ms: float  # median of the timed training steps of the design
    depthwise_step_ms: (
        float  # the same for its depthwise twin (equal to step_ms for a depthwise design)
    )
    batch_size: int
    repeats: int
    device: str
    backend: str


def measure_step_time(
    config: XceptionConfig,
    image_size: int,
    num_classes: int,
    batch_size: int,
    warmup: int = 2,
    repeats: int = 5,
) -> StepTime:
    """Median milliseconds of one Adam training step of ``config`` and of its depthwise twin on random data."""
    if batch_size < 1:
        raise ValueError(f"--step-batch must be an integer >= 1; received {batch_size!r}.")
    step_ms = _median_step_ms(config, image_size, num_classes, batch_size, warmup, repeats)
    twin = dataclasses.replace(config, segments="depthwise")
    twin_ms = (
        step_ms
        if twin == config
        else _median_step_ms(twin, image_size, num_classes, batch_size, warmup, repeats)
    )
    info = runtime_info()
    return StepTime(
        step_ms=step_ms,
        depthwise_step_ms=twin_ms,
        batch_size=batch_size,
        repeats=repeats,
        device=info["device"],
        backend=info["backend"],
    )


def _median_step_ms(
    config: XceptionConfig,
    image_size: int,
    num_classes: int,
    batch_size: int,
    warmup: int,
    repeats: int,
) -> float:
    model = build_model(config, (image_size, image_size, 3), num_classes)
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    images = rng.uniform(0, 255, (batch_size, image_size, image_size, 3)).astype(np.float32)
    labels = rng.integers(0, num_classes, batch_size)
    return time_calls(lambda: model.train_on_batch(images, labels), warmup, repeats).median_ms
