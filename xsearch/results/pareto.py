"""The Pareto front of a multi-objective study, a table of its trials, and picks from the front.

Computation only (no drawing: see `xsearch.results.run_reports`). The front is Optuna's own
`Study.best_trials`: the non-dominated COMPLETE trials that satisfy every constraint
(a trial is feasible when all its constraint values are <= 0), less the trials that repeat an
earlier trial's design (`xsearch.study.repeats`): the earlier trial stands for it.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import optuna
import pandas as pd
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial

from xsearch.study.record import TrialAttr, is_feasible, is_repeat

PICKS = ("accuracy", "params", "latency", "knee")
_PICK_METRICS = {
    "accuracy": TrialAttr.VAL_ACCURACY,
    "params": TrialAttr.PARAMS,
}  # and latency: `latency_metric`
_TAIL_COLUMNS = (
    "constraints",
    TrialAttr.FEASIBLE,
    "pareto",
    "datetime_start",
    "datetime_complete",
    "duration_s",
)


def objective_names(study: optuna.Study) -> list[str]:
    """The study's metric names, or ``values_0``, ``values_1``, ... when none were set."""
    return study.metric_names or [f"values_{i}" for i in range(len(study.directions))]


def latency_metric(study: optuna.Study) -> str:
    """The latency the study optimises: its first ``latency_ms`` objective (``latency_ms@TARGET`` for a `[latency]`
    target), else the training device's ``latency_ms``."""
    return next(
        (name for name in objective_names(study) if name.startswith(TrialAttr.LATENCY_MS)),
        TrialAttr.LATENCY_MS,
    )


def pareto_front(study: optuna.Study) -> list[FrozenTrial]:
    """`Study.best_trials` less repeats, sorted by the first objective, best first (ties by trial number)."""
    sign = _sign(study.directions[0])
    front = [t for t in study.best_trials if not is_repeat(t)]
    return sorted(front, key=lambda t: (sign * t.values[0], t.number))


def trials_frame(study: optuna.Study) -> pd.DataFrame:
    """One row per trial (all states), with the columns listed below, in this order.

    ``number``, ``state``; one column per objective, named by metric name (the trial's value, else
    the user attr of that name, else NaN); ``param_<axis>`` per parameter; every other user attr
    under its own name (``config`` and ``curves`` stay JSON strings); ``constraints`` (a JSON list,
    or "" when the trial has none); ``feasible`` (COMPLETE and all constraints <= 0; it supersedes a
    user attr of that name); ``pareto`` (on `pareto_front`); ``datetime_start``,
    ``datetime_complete`` and ``duration_s``.
    """
    names = objective_names(study)
    front = {t.number for t in pareto_front(study)}
    trials = study.get_trials(deepcopy=False)
    rows = [_row(t, names, t.number in front) for t in trials]
    params = sorted({f"param_{p}" for t in trials for p in t.params})
    reserved = {"number", "state", *names, *params, *_TAIL_COLUMNS}
    attrs = [a for a in dict.fromkeys(a for t in trials for a in t.user_attrs) if a not in reserved]
    frame = pd.DataFrame(rows, columns=["number", "state", *names, *params, *attrs, *_TAIL_COLUMNS])
    return frame.astype({"number": int, TrialAttr.FEASIBLE: bool, "pareto": bool})


def knee_trial(study: optuna.Study) -> FrozenTrial | None:
    """The front trial closest to the ideal point, or None when the front is empty.

    Each objective is turned into a loss (maximised ones negated) and min-max normalised over the
    front, so that the ideal point (best value of every objective) is the origin and each
    objective weighs the same; the knee is the trial at the smallest Euclidean distance from it
    (ties: the earlier trial in `pareto_front` order).
    """
    front = pareto_front(study)
    return _knee(front, study.directions) if front else None


def pick_trial(study: optuna.Study, pick: str) -> FrozenTrial:
    """One trial of the front, by ``pick``: "accuracy", "params", "latency" or "knee".

    "accuracy", "params" and "latency" take the front trial with the best ``val_accuracy``,
    ``params`` or ``latency_ms`` objective (ties: lower trial number). When ``params`` or
    ``latency_ms`` is not an objective of the study, the pick is the feasible COMPLETE trial with
    the smallest user attr of that name instead. Raises ValueError for an unknown pick, when the
    study has no feasible COMPLETE trial, or when the metric is neither an objective nor (for
    params and latency) a user attr of any feasible trial.
    """
    if pick not in PICKS:
        raise ValueError(f"unknown pick {pick!r}; choose one of {', '.join(PICKS)}.")
    front = pareto_front(study)
    if not front:
        raise ValueError(f"cannot pick {pick!r}: the study has no completed feasible trial yet.")
    if pick == "knee":
        return _knee(front, study.directions)
    metric = latency_metric(study) if pick == "latency" else _PICK_METRICS[pick]
    names = objective_names(study)
    if metric in names:
        index = names.index(metric)
        sign = _sign(study.directions[index])
        return min(front, key=lambda t: (sign * t.values[index], t.number))
    if pick == "accuracy":
        raise ValueError(
            f"cannot pick 'accuracy': 'val_accuracy' is not an objective ({', '.join(names)})."
        )
    candidates = [
        t
        for t in study.get_trials(deepcopy=False)
        if is_feasible(t) and _finite(t.user_attrs.get(metric))
    ]
    if not candidates:
        raise ValueError(
            f"cannot pick {pick!r}: {metric!r} is neither an objective nor recorded on a feasible trial."
        )
    return min(candidates, key=lambda t: (float(t.user_attrs[metric]), t.number))


def _knee(front: list[FrozenTrial], directions: list[StudyDirection]) -> FrozenTrial:
    """The `knee_trial` of a non-empty front."""
    signs = np.array([_sign(d) for d in directions])
    losses = np.array([t.values for t in front], dtype=float) * signs
    low, span = losses.min(axis=0), np.ptp(losses, axis=0)
    normalised = (losses - low) / np.where(span > 0, span, 1.0)
    return front[int(np.argmin(np.linalg.norm(normalised, axis=1)))]


def _row(trial: FrozenTrial, names: list[str], on_front: bool) -> dict[str, Any]:
    """The `trials_frame` row of one trial."""
    values = trial.values or [None] * len(names)
    row: dict[str, Any] = dict(trial.user_attrs)
    row.update(number=trial.number, state=trial.state.name)
    row.update(
        {n: _float(v if v is not None else trial.user_attrs.get(n)) for n, v in zip(names, values)}
    )
    row.update({f"param_{p}": v for p, v in trial.params.items()})
    constraints = list(trial.constraints.values())
    row.update(
        constraints=json.dumps(constraints) if constraints else "",
        feasible=is_feasible(trial),
        pareto=on_front,
        datetime_start=trial.datetime_start,
        datetime_complete=trial.datetime_complete,
        duration_s=trial.duration.total_seconds() if trial.duration is not None else math.nan,
    )
    return row


def _sign(direction: StudyDirection) -> float:
    """+1 for a minimised objective, -1 for a maximised one: ``sign * value`` is a loss."""
    return -1.0 if direction == StudyDirection.MAXIMIZE else 1.0


def _float(value: Any) -> float:
    """``value`` as a float, NaN when it is missing or not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


def _finite(value: Any) -> bool:
    """Whether ``value`` is a finite number."""
    return math.isfinite(_float(value))
