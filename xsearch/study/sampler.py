"""The study's Optuna sampler, and the seed each worker's sampler gets."""

from __future__ import annotations

import hashlib

import numpy as np
import optuna

from xsearch.model.space import Range, SearchSpace
from xsearch.study.record import TrialAttr
from xsearch.study.retries import worker_identity
from xsearch.study.spec import StudySpec


def make_sampler(spec: StudySpec, space: SearchSpace, seed: int | None = None) -> optuna.samplers.BaseSampler:
    """The study's sampler, seeded with ``seed`` (default: ``spec.seed``); each sampler reads the
    hard constraints the objective sets on its trials."""
    seed = spec.seed if seed is None else seed
    if spec.sampler == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(8, min(50, spec.trials // 4)))
    if spec.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=8)
    if spec.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.sampler == "grid":
        return optuna.samplers.GridSampler(_grid(space), seed=seed)
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True,
                                      n_startup_trials=min(10, max(4, spec.trials // 3)))


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


def _grid(space: SearchSpace) -> dict[str, list]:
    grid: dict[str, list] = {}
    for axis, spec in space.axes.items():
        if isinstance(spec, Range):
            count = int(round((spec.high - spec.low) / spec.step)) + 1
            grid[axis] = [spec.low + i * spec.step for i in range(count)]
        else:
            distribution = space.distributions()[axis]
            assert isinstance(distribution, optuna.distributions.CategoricalDistribution)
            grid[axis] = list(distribution.choices)
    return grid
