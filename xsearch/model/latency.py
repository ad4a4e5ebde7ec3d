"""Latency probe: the median time of a compiled forward pass on the current device."""

from __future__ import annotations

import statistics
import time
from typing import TypedDict

import keras
import numpy as np

from xsearch.model.device import runtime_info


class Latency(TypedDict):
    latency_ms: float
    latency_p90_ms: float
    batch_size: int
    repeats: int
    backend: str
    device: str
    precision: str


def measure_latency(
    model: keras.Model, batch_size: int = 1, warmup: int = 5, repeats: int = 30
) -> Latency:
    """Time ``model``'s compiled predict step on a random batch.

    The first ``warmup`` calls (compilation included) are discarded; the figure is the median of
    ``repeats`` timed calls, each ending when the outputs are on the host.
    """
    if batch_size < 1 or warmup < 0 or repeats < 1:
        raise ValueError(
            f"batch_size and repeats must be >= 1 and warmup >= 0; received "
            f"batch_size={batch_size}, warmup={warmup}, repeats={repeats}."
        )
    shape = (batch_size, *model.input_shape[1:])
    batch = np.random.default_rng(0).random(shape, dtype=np.float32)
    for _ in range(max(warmup, 1)):
        model.predict_on_batch(batch)
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.predict_on_batch(batch)
        timings.append((time.perf_counter() - start) * 1000.0)
    info = runtime_info()
    return Latency(
        latency_ms=statistics.median(timings),
        latency_p90_ms=float(np.percentile(timings, 90)),
        batch_size=batch_size,
        repeats=repeats,
        backend=info["backend"],
        device=info["device"],
        precision=info["precision"],
    )
