"""Repeated timings of one call: `time_calls` times them, and `timing_stats` is the one summary of them that every
latency figure of xsearch uses (the training device's probe, the deployment runtimes, a training step)."""

from __future__ import annotations

import dataclasses
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np


@dataclasses.dataclass(frozen=True)
class TimingStats:
    """Repeated timings of one call, in milliseconds: median, p90, and their spread."""

    median_ms: float
    p90_ms: float
    cv: float  # standard deviation over mean: the measurement's noise
    repeats: int

    def to_dict(self) -> dict[str, float | int]:
        return dataclasses.asdict(self)


def timing_stats(timings_ms: Sequence[float]) -> TimingStats:
    """Summarise timed calls (at least one)."""
    if not timings_ms:
        raise ValueError("timing_stats needs at least one timing.")
    mean = statistics.fmean(timings_ms)
    spread = statistics.stdev(timings_ms) if len(timings_ms) > 1 else 0.0
    return TimingStats(
        median_ms=statistics.median(timings_ms),
        p90_ms=float(np.percentile(timings_ms, 90)),
        cv=spread / mean if mean > 0 else 0.0,
        repeats=len(timings_ms),
    )


def time_calls(call: Callable[[], object], warmup: int, repeats: int) -> TimingStats:
    """Call ``call`` ``warmup`` times untimed (at least once: compilation), then time ``repeats`` calls."""
    if warmup < 0 or repeats < 1:
        raise ValueError(
            f"warmup must be >= 0 and repeats >= 1; received warmup={warmup}, repeats={repeats}."
        )
    for _ in range(max(warmup, 1)):
        call()
    timings = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        timings.append((time.perf_counter() - start) * 1000.0)
    return timing_stats(timings)
