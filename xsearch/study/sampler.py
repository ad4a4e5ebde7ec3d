"""The study's Optuna sampler, the seed each worker's sampler gets, and the points of a grid study.

A grid study (``sampler = "grid"``) trains every point of its space exactly once: the creator
enqueues all points (`grid_points`), and workers take them from the queue, as they take retries.
Optuna's `GridSampler` assigns grid points by trial number, so retries, seed trials and pruned
trials, which use numbers too, left points untrained and trained others twice.
"""

from __future__ import annotations

import hashlib
import itertools
import math
from typing import Any

import numpy as np
import optuna

from xsearch.model.space import Range, SearchSpace
from xsearch.study.record import TrialAttr
from xsearch.study.retries import worker_identity
from xsearch.study.spec import StudySpec


def make_sampler(
    spec: StudySpec, space: SearchSpace, seed: int | None = None
) -> optuna.samplers.BaseSampler:
    """The study's sampler, seeded with ``seed`` (default: ``spec.seed``); each sampler reads the
    hard constraints the objective sets on its trials."""
    seed = spec.seed if seed is None else seed
    if spec.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(
            seed=seed, population_size=max(8, min(50, spec.trials // 4))
        )
    if spec.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=8)
    if spec.sampler in (
        "random",
        "grid",
    ):  # a grid study's trials come from its queue (`grid_points`)
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.TPESampler(
        seed=seed,
        multivariate=True,
        constant_liar=True,
        n_startup_trials=min(10, max(4, spec.trials // 3)),
    )


def sampler_seed(seed: int, trials_so_far: int, shared: bool) -> int:
    """The seed of this process's sampler: from ``--seed`` and the number of trials the study had
    when this process opened it, so that a resumed run or a restarted worker does not replay the
    proposals of the process before it. Where other workers share the study (``shared``: several
    workers, or a database other machines may use), this worker's host and process id go in too:
    samplers with one seed would propose the same designs in lockstep. One worker on the default
    journal storage is reproducible: the same ``--seed`` proposes the same designs.
    """
    entropy = [seed, trials_so_far]
    if shared:
        identity = worker_identity()
        host = hashlib.sha256(str(identity[TrialAttr.WORKER_HOST]).encode()).digest()
        entropy += [int.from_bytes(host[:8], "big"), int(identity[TrialAttr.WORKER_PID])]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0])


def grid_points(space: SearchSpace, seed: int) -> list[dict[str, Any]]:
    """Every point of ``space`` as trial parameters, in an order shuffled by ``seed`` (a study stopped
    early has then trained a uniform sample of its space)."""
    axes = list(space.axes)
    values = [_axis_values(space, axis) for axis in axes]
    points = [dict(zip(axes, combination)) for combination in itertools.product(*values)]
    order = np.random.default_rng(seed).permutation(len(points))
    return [points[index] for index in order]


def space_size(space: SearchSpace) -> int:
    """The number of designs in ``space`` (every axis is discrete)."""
    return math.prod(len(_axis_values(space, axis)) for axis in space.axes)


def _axis_values(space: SearchSpace, axis: str) -> list[Any]:
    spec = space.axes[axis]
    if isinstance(spec, Range):
        count = round((spec.high - spec.low) / spec.step) + 1
        return [type(spec.low)(round(spec.low + i * spec.step, 10)) for i in range(count)]
    distribution = space.distributions()[axis]
    assert isinstance(distribution, optuna.distributions.CategoricalDistribution)
    return list(distribution.choices)
