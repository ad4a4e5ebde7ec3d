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


def check_constraints_reachable(spec: StudySpec, space: SearchSpace, num_classes: int) -> None:
    """Raise ValueError when no design of ``space`` meets the study's parameter or FLOP constraint: its
    `smallest_design` breaks it (every trial would be infeasible). Latency is measured, so not checked here."""
    limits = {
        key: spec.constraints[key] for key in ("max_params", "max_flops") if key in spec.constraints
    }
    if not limits:
        return
    smallest = smallest_design(space)
    size = spec.data.image_size
    costs = cast(
        Mapping[str, int], model_costs(build_model(smallest, (size, size, 3), num_classes))
    )
    for key, bound in limits.items():
        cost = costs[CONSTRAINTS[key]]
        if cost > bound:
            raise ValueError(
                f"constraints.{key} = {bound:g}: no design of space {spec.space!r} meets it: "
                f"the smallest, {smallest.to_json()}, has {cost:,} {CONSTRAINTS[key]} "
                f"at {size}x{size} with {num_classes} classes; "
                f"raise {key} to at least {cost:,} or choose a smaller space or image size."
            )


def smallest_design(space: SearchSpace) -> XceptionConfig:
    """The design of ``space`` with the fewest parameters and FLOPs: fewest repeats, narrowest, lowest depth
    multiplier, depthwise convs (else the most segments) and no residual connections, where the space allows."""
    values: dict[str, Any] = {}
    for axis, spec in space.axes.items():
        if isinstance(spec, Range):
            values[axis] = _nearest(spec.low, spec)
        elif axis == "segments" and "depthwise" in spec.values:
            values[axis] = "depthwise"
        elif axis == "segments":
            values[axis] = max(spec.values)
        elif axis == "residual":
            values[axis] = False if False in spec.values else spec.values[0]
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec.values):
            values[axis] = min(spec.values)
        else:
            values[axis] = spec.values[0]
    return XceptionConfig(**values)


def project(config: XceptionConfig, space: SearchSpace) -> XceptionConfig:
    """The config in ``space`` nearest to ``config``, axis by axis."""
    values = config.to_dict()
    return XceptionConfig(
        **{axis: _nearest(values[axis], spec) for axis, spec in space.axes.items()}
    )


def fit_constraints(
    config: XceptionConfig, space: SearchSpace, spec: StudySpec, num_classes: int
) -> XceptionConfig | None:
    """Shrink repeats, then width, then depth multiplier one step at a time until the parameter and
    FLOP constraints hold; ``None`` when even the smallest such design does not fit."""
    limits = {
        key: spec.constraints[key] for key in ("max_params", "max_flops") if key in spec.constraints
    }
    size = spec.data.image_size
    while True:
        costs = cast(
            Mapping[str, int], model_costs(build_model(config, (size, size, 3), num_classes))
        )
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
        numbers = [
            v for v in spec.values if isinstance(v, (int, float)) and not isinstance(v, bool)
        ]
        if isinstance(value, (int, float)) and numbers:
            return min(numbers, key=lambda v: abs(v - value))
        return spec.values[0]
    steps = round((min(max(value, spec.low), spec.high) - spec.low) / spec.step)
    snapped = spec.low + steps * spec.step
    return (
        int(snapped)
        if isinstance(spec.low, int) and isinstance(spec.step, int)
        else round(snapped, 6)
    )


def _step_down(value: Any, spec: Range | Choice) -> Any:
    if isinstance(spec, Range):
        lower = value - spec.step
        return None if lower < spec.low - 1e-9 else _nearest(lower, spec)
    smaller = [v for v in spec.values if isinstance(v, (int, float)) and v < value]
    return max(smaller) if smaller else None
