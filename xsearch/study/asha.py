"""Multi-objective asynchronous successive halving (MO-ASHA, Schmucker et al. 2021) over training epochs.

Rungs are the epochs ``min_epochs * reduction_factor**k`` before the last. When a trial reaches a
rung, it is ranked against every other trial of the same set-up that reached that rung, on its
validation accuracy there and its costs (params, FLOPs, latency: known before training): first by
non-dominated sorting, then by crowding distance within a front, as NSGA-II ranks. It continues
when fewer than ``max(1, n // reduction_factor)`` of the ``n`` trials at the rung rank strictly
before it; otherwise it stops there. No trial waits for a rung to fill (the "stopping" variant of
ASHA): early trials are judged against fewer competitors. A stopped trial records the accuracy it
reached and is marked infeasible (`xsearch.study.objective`), so it never stands on the front.

With ``continue_stopped``, a stopped design is not given up: when the sampler proposes it again, the
new trial continues its training from where it stopped, and when the sampler proposes a design that
is already fully trained (it is running out of new designs), `next_promotion` picks the stopped
trial to continue next, which is queued as the next trial: ASHA's promotion of paused trials, with
the sampler's repeats as the signal to promote rather than to sample.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
from optuna.trial import FrozenTrial, TrialState

from xsearch.study.optuna_private import pareto_mask
from xsearch.study.record import TrialAttr, is_repeat
from xsearch.study.spec import AshaSpec

RULE_NAME = "asha"


def rungs(epochs: int, min_epochs: int, reduction_factor: int) -> list[int]:
    """The rung epochs below ``epochs``: ``min_epochs``, ``min_epochs * reduction_factor``, ..."""
    found, rung = [], min_epochs
    while rung < epochs:
        found.append(rung)
        rung *= reduction_factor
    return found


def rung_points(
    trials: Iterable[FrozenTrial], rung: int, costs: list[str], digest: str, exclude: int
) -> list[list[float]]:
    """(accuracy at ``rung``, *costs) of each trial of set-up ``digest`` that reached the rung, but ``exclude``."""
    points = []
    for trial in trials:
        attrs = trial.user_attrs
        accuracy = (attrs.get(TrialAttr.RUNG_ACCURACY) or {}).get(str(rung))
        if (
            accuracy is None
            or trial.number == exclude
            or is_repeat(trial)
            or attrs.get(TrialAttr.SETUP_DIGEST) != digest
            or any(metric not in attrs for metric in costs)
        ):
            continue
        points.append([float(accuracy), *(float(attrs[metric]) for metric in costs)])
    return points


def promoted(candidate: list[float], others: list[list[float]], reduction_factor: int) -> bool:
    """Whether ``candidate`` (accuracy, then costs) ranks in the top ``1 / reduction_factor`` of
    itself and ``others``."""
    _front, _crowding, ahead = _standing(candidate, others)
    return ahead < max(1, (len(others) + 1) // reduction_factor)


def next_promotion(trials: list[FrozenTrial], costs: list[str], digest: str) -> FrozenTrial | None:
    """The stopped trial to continue next, if any: of the trials of set-up ``digest`` that this rule stopped,
    that no other trial continues (running, finished or queued), the one that ranks best at the rung
    where it stopped (lowest non-dominated front among the trials that reached that rung, then the
    higher rung, then the larger crowding distance)."""
    continued = {
        int(t.user_attrs[TrialAttr.CONTINUES])
        for t in trials
        if TrialAttr.CONTINUES in t.user_attrs and t.state != TrialState.FAIL
    }
    queued = [t.params for t in trials if t.state == TrialState.WAITING]
    best: tuple[tuple[float, ...], FrozenTrial] | None = None
    for trial in trials:
        attrs = trial.user_attrs
        if (
            trial.state != TrialState.COMPLETE
            or is_repeat(trial)
            or attrs.get(TrialAttr.STOP_RULE) != RULE_NAME
            or trial.number in continued
            or trial.params in queued
            or attrs.get(TrialAttr.SETUP_DIGEST) != digest
        ):
            continue
        rung = int(attrs[TrialAttr.STOPPED_AT_EPOCH])
        accuracy = (attrs.get(TrialAttr.RUNG_ACCURACY) or {}).get(str(rung))
        if accuracy is None or any(metric not in attrs for metric in costs):
            continue
        point = [float(accuracy), *(float(attrs[metric]) for metric in costs)]
        front, crowding, _ = _standing(
            point, rung_points(trials, rung, costs, digest, trial.number)
        )
        key = (front, -rung, -crowding)
        if best is None or key < best[0]:
            best = (key, trial)
    return None if best is None else best[1]


def continuable(twin: FrozenTrial, trials: list[FrozenTrial], rule: AshaSpec | None) -> bool:
    """Whether a new trial of ``twin``'s design continues it: ``rule`` continues stopped trials, this rule
    stopped ``twin``, and no other trial is continuing it now or has continued it."""
    if (
        rule is None
        or not rule.continue_stopped
        or twin.user_attrs.get(TrialAttr.STOP_RULE) != RULE_NAME
    ):
        return False
    return not any(
        t.user_attrs.get(TrialAttr.CONTINUES) == twin.number
        and t.state != TrialState.FAIL
        and not is_repeat(t)
        for t in trials
    )


def _standing(candidate: list[float], others: list[list[float]]) -> tuple[float, float, int]:
    """``candidate``'s non-dominated front and crowding distance among itself and ``others`` (accuracy
    maximised, costs minimised), and how many of ``others`` rank strictly before it."""
    points = np.array([candidate, *others], dtype=float)
    losses = points * np.array([-1.0] + [1.0] * (points.shape[1] - 1))
    order = pareto_rank(losses)
    ahead = np.sum(
        (order[1:, 0] < order[0, 0])
        | ((order[1:, 0] == order[0, 0]) & (order[1:, 1] > order[0, 1]))
    )
    return float(order[0, 0]), float(order[0, 1]), int(ahead)


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
