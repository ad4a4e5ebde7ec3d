"""Multi-objective asynchronous successive halving (MO-ASHA, Schmucker et al. 2021) over training epochs.

Rungs are the epochs ``min_epochs * reduction_factor**k`` before the last. When a trial reaches a
rung, it is ranked against every other trial of the same set-up that reached that rung, on its
validation accuracy there and its costs (params, FLOPs, latency: known before training): first by
non-dominated sorting, then by crowding distance within a front, as NSGA-II ranks. It continues
when fewer than ``max(1, n // reduction_factor)`` of the ``n`` trials at the rung rank strictly
before it; otherwise it stops there. No trial waits for a rung to fill (the "stopping" variant of
ASHA): early trials are judged against fewer competitors. A stopped trial records the accuracy it
reached and is marked infeasible (`xsearch.study.objective`), so it never stands on the front.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from optuna.trial import FrozenTrial

from xsearch.study.optuna_private import pareto_mask
from xsearch.study.record import TrialAttr, is_repeat


def rungs(epochs: int, min_epochs: int, reduction_factor: int) -> list[int]:
    """The rung epochs below ``epochs``: ``min_epochs``, ``min_epochs * reduction_factor``, ..."""
    found, rung = [], min_epochs
    while rung < epochs:
        found.append(rung)
        rung *= reduction_factor
    return found


def rung_points(trials: Iterable[FrozenTrial], rung: int, costs: list[str], digest: str,
                exclude: int) -> list[list[float]]:
    """(accuracy at ``rung``, *costs) of each trial of set-up ``digest`` that reached the rung, but ``exclude``."""
    points = []
    for trial in trials:
        attrs = trial.user_attrs
        accuracy = (attrs.get(TrialAttr.RUNG_ACCURACY) or {}).get(str(rung))
        if (accuracy is None or trial.number == exclude or is_repeat(trial)
                or attrs.get(TrialAttr.SETUP_DIGEST) != digest or any(metric not in attrs for metric in costs)):
            continue
        points.append([float(accuracy), *(float(attrs[metric]) for metric in costs)])
    return points


def promoted(candidate: list[float], others: list[list[float]], reduction_factor: int) -> bool:
    """Whether ``candidate`` (accuracy, then costs) ranks in the top ``1 / reduction_factor`` of itself and ``others``."""
    points = np.array([candidate, *others], dtype=float)
    losses = points * np.array([-1.0] + [1.0] * (points.shape[1] - 1))  # accuracy maximised, costs minimised
    order = pareto_rank(losses)
    keep = max(1, len(points) // reduction_factor)
    ahead = np.sum((order[1:, 0] < order[0, 0]) | ((order[1:, 0] == order[0, 0]) & (order[1:, 1] > order[0, 1])))
    return bool(ahead < keep)


def pareto_rank(losses: np.ndarray) -> np.ndarray:
    """Per row of ``losses`` (every column minimised): its non-dominated front (0 = best) and crowding distance."""
    front = np.full(len(losses), -1)
    crowding = np.zeros(len(losses))
    remaining = np.arange(len(losses))
    level = 0
    while len(remaining):
        mask = pareto_mask(losses[remaining])
        members = remaining[mask]
        front[members] = level
        crowding[members] = crowding_distance(losses[members])
        remaining, level = remaining[~mask], level + 1
    return np.column_stack([front, crowding])


def crowding_distance(losses: np.ndarray) -> np.ndarray:
    """NSGA-II's crowding distance of each point of one front (the extremes of each objective: infinite)."""
    distance = np.zeros(len(losses))
    if len(losses) <= 2:
        return np.full(len(losses), np.inf)
    for column in losses.T:
        order = np.argsort(column, kind="stable")
        span = column[order[-1]] - column[order[0]]
        distance[order[[0, -1]]] = np.inf
        if span > 0:
            distance[order[1:-1]] += (column[order[2:]] - column[order[:-2]]) / span
    return distance

