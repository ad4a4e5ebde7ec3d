"""Seed trials: the paper point (projected into the space and scaled down to fit the constraints)
and anchors such as a regular conv (`regular`) or `segments-4`, enqueued before any sampled trial."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, cast

from xsearch.model.builder import build_model
from xsearch.model.config import XceptionConfig
from xsearch.model.costs import model_costs
from xsearch.model.space import Choice, Range, SearchSpace
from xsearch.study.spec import CONSTRAINTS, StudySpec, seed_config

_SHRINK_ORDER = ("middle_repeats", "width", "depth_multiplier")


def seed_configs(spec: StudySpec, space: SearchSpace, num_classes: int) -> list[XceptionConfig]:
    """The study's seed trials as configs inside ``space``, without duplicates."""
    configs: list[XceptionConfig] = []
    for seed in spec.seed_trials:
        config = fit_constraints(project(seed_config(seed), space), space, spec, num_classes)
        if config is not None and config not in configs:
            configs.append(config)
    return configs


def project(config: XceptionConfig, space: SearchSpace) -> XceptionConfig:
    """The config in ``space`` nearest to ``config``, axis by axis."""
    values = config.to_dict()
    return XceptionConfig(**{axis: _nearest(values[axis], spec) for axis, spec in space.axes.items()})


def fit_constraints(
    config: XceptionConfig, space: SearchSpace, spec: StudySpec, num_classes: int
) -> XceptionConfig | None:
    """Shrink repeats, then width, then depth multiplier one step at a time until the parameter and
    FLOP constraints hold; ``None`` when even the smallest such design does not fit."""
    limits = {key: spec.constraints[key] for key in ("max_params", "max_flops") if key in spec.constraints}
    size = spec.data.image_size
    while True:
        costs = cast(Mapping[str, int], model_costs(build_model(config, (size, size, 3), num_classes)))
        if all(costs[CONSTRAINTS[key]] <= bound for key, bound in limits.items()):
            return config
        for axis in _SHRINK_ORDER:
            smaller = _step_down(getattr(config, axis), space.axes[axis])
            if smaller is not None:
                config = dataclasses.replace(config, **{axis: smaller})
                break
        else:
            return None


def _nearest(value: Any, spec: Range | Choice) -> Any:
    if isinstance(spec, Choice):
        if value in spec.values:
            return value
        numbers = [v for v in spec.values if isinstance(v, (int, float)) and not isinstance(v, bool)]
        if isinstance(value, (int, float)) and numbers:
            return min(numbers, key=lambda v: abs(v - value))
        return spec.values[0]
    steps = round((min(max(value, spec.low), spec.high) - spec.low) / spec.step)
    snapped = spec.low + steps * spec.step
    return int(snapped) if isinstance(spec.low, int) and isinstance(spec.step, int) else round(snapped, 6)


def _step_down(value: Any, spec: Range | Choice) -> Any:
    if isinstance(spec, Range):
        lower = value - spec.step
        return None if lower < spec.low - 1e-9 else _nearest(lower, spec)
    smaller = [v for v in spec.values if isinstance(v, (int, float)) and v < value]
    return max(smaller) if smaller else None
