"""`xsearch.results.pareto`: the front (checked against brute force), the trials frame, the knee and picks."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import FrozenTrial, TrialState

from study_fakes import DIRECTIONS, DISTRIBUTIONS, METRICS
from tests.helpers import brute_force_front
from xsearch.results.pareto import (
    knee_trial,
    latency_metric,
    objective_names,
    pareto_front,
    pick_trial,
    trials_frame,
)
from xsearch.results.run_reports import front_table_text, pareto_figure

optuna.logging.set_verbosity(optuna.logging.WARNING)
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def make_study(metrics: list[str] = METRICS, directions: list[str] = DIRECTIONS) -> optuna.Study:
    """An in-memory study with named objectives."""
    study = optuna.create_study(directions=directions)
    study.set_metric_names(metrics)
    return study


def add(
    study: optuna.Study,
    values: list[float] | None,
    constraints: list[float] | None = None,
    state: TrialState = TrialState.COMPLETE,
    **attrs: Any,
) -> None:
    """Add a trial with random axes and user attrs mirroring its objectives (overridable by ``attrs``)."""
    rng = random.Random(len(study.trials))
    params = {name: rng.choice(_choices(dist)) for name, dist in DISTRIBUTIONS.items()}
    user_attrs: dict[str, Any] = {
        "config": json.dumps(dict(sorted(params.items()))),
        "curves": json.dumps({"loss": [1.0, 0.5], "val_accuracy": [0.4, 0.6]}),
        "test_accuracy": 0.5,
        "macs": 1_000_000,
        "device": "cpu",
        "feasible": constraints is None or all(c <= 0 for c in constraints),
    }
    user_attrs.update(dict(zip(objective_names(study), values or [])))
    user_attrs.update(attrs)
    study.add_trial(
        optuna.trial.create_trial(
            state=state,
            values=values,
            params=params,
            distributions=DISTRIBUTIONS,
            user_attrs=user_attrs,
            system_attrs={"constraints": constraints} if constraints is not None else None,
        )
    )


def _choices(dist: Any) -> list[Any]:
    if isinstance(dist, CategoricalDistribution):
        return list(dist.choices)
    if isinstance(dist, IntDistribution):
        return list(range(dist.low, dist.high + 1))
    return [0.25, 0.5, 0.75, 1.0]


def random_study(n: int = 60, seed: int = 0) -> optuna.Study:
    """``n`` trials on a coarse grid (many ties), some infeasible, some failed, one running."""
    rng = random.Random(seed)
    study = make_study()
    for _ in range(n):
        values = [
            rng.choice([0.5, 0.6, 0.7, 0.8, 0.9]),
            rng.choice([1e5, 2e5, 5e5, 1e6]),
            rng.choice([1.0, 2.0, 3.0]),
        ]
        constraints = [rng.choice([-1.0, 0.0, 0.5]), -2.0]
        add(study, values, constraints=constraints)
    add(study, None, state=TrialState.FAIL, failure_reason="oom", params=3e6)
    add(study, None, state=TrialState.RUNNING)
    add(study, [0.99, 1.0, 0.1], constraints=[1.0, 0.0], failure_reason="constraint")
    return study


@pytest.mark.parametrize("seed", range(5))
def test_front_matches_brute_force_and_excludes_infeasible(seed: int) -> None:
    study = random_study(seed=seed)
    front = pareto_front(study)
    assert {t.number for t in front} == brute_force_front(study)
    assert all(all(c <= 0 for c in t.constraints.values()) for t in front)
    assert study.trials[-1].number not in {t.number for t in front}  # infeasible but dominating
    accuracies = [t.values[0] for t in front]
    assert accuracies == sorted(accuracies, reverse=True)


@pytest.mark.filterwarnings("ignore:`constraints_func` has been deprecated:FutureWarning")
@pytest.mark.parametrize("style", ["constraints_func", "set_constraint"])
def test_front_honours_constraints_of_optimize(style: str) -> None:
    def objective(trial: optuna.Trial) -> tuple[float, float]:
        x = trial.suggest_float("x", 0, 1)
        if style == "set_constraint":
            trial.set_constraint("x_at_most_half", x - 0.5)
        return x, 1 - x

    constraints_func = (lambda t: [t.params["x"] - 0.5]) if style == "constraints_func" else None
    sampler = optuna.samplers.NSGAIISampler(seed=0, constraints_func=constraints_func)
    study = optuna.create_study(directions=["maximize", "maximize"], sampler=sampler)
    study.optimize(objective, n_trials=30)
    front = pareto_front(study)
    assert front
    assert all(t.params["x"] <= 0.5 for t in front)
    assert {t.number for t in front} == brute_force_front(study)
    frame = trials_frame(study)
    assert list(frame.columns[:4]) == ["number", "state", "values_0", "values_1"]
    assert (frame["feasible"] == (frame["param_x"] <= 0.5)).all()
    assert all(
        json.loads(c) == [pytest.approx(x - 0.5)]
        for c, x in zip(frame["constraints"], frame["param_x"])
    )


def test_trials_frame_columns_and_flags() -> None:
    study = random_study()
    frame = trials_frame(study)
    assert list(frame["number"]) == [t.number for t in study.trials]
    assert list(frame.columns[:5]) == ["number", "state", *METRICS]
    assert list(frame.columns[-6:]) == [
        "constraints",
        "feasible",
        "pareto",
        "datetime_start",
        "datetime_complete",
        "duration_s",
    ]
    attrs = {a for t in study.trials for a in t.user_attrs}
    assert attrs <= set(frame.columns)
    assert {f"param_{axis}" for axis in DISTRIBUTIONS} <= set(frame.columns)
    assert set(frame.loc[frame["pareto"], "number"]) == brute_force_front(study)
    feasible = {
        t.number
        for t in study.trials
        if t.state == TrialState.COMPLETE and max(t.constraints.values()) <= 0
    }
    assert set(frame.loc[frame["feasible"], "number"]) == feasible
    failed = frame[frame["state"] == "FAIL"].iloc[0]
    assert failed["failure_reason"] == "oom"
    assert failed["params"] == 3e6
    assert math.isnan(failed["val_accuracy"])
    assert not failed["feasible"]
    assert not failed["pareto"]
    assert failed["constraints"] == ""
    complete = frame[frame["state"] == "COMPLETE"]
    assert (complete["duration_s"] >= 0).all()
    assert complete["datetime_complete"].notna().all()
    assert json.loads(frame["config"].iloc[0])["width"] in (0.25, 0.5, 0.75, 1.0)
    assert json.loads(frame["curves"].iloc[0])["loss"] == [1.0, 0.5]


def test_empty_study() -> None:
    study = make_study()
    frame = trials_frame(study)
    assert frame.empty
    assert {"number", "state", "pareto", *METRICS} <= set(frame.columns)
    assert pareto_front(study) == []
    assert knee_trial(study) is None
    with pytest.raises(ValueError, match="no completed feasible trial"):
        pick_trial(study, "knee")


def test_objective_names_default() -> None:
    study = optuna.create_study(directions=["minimize", "maximize"])
    assert objective_names(study) == ["values_0", "values_1"]
    assert objective_names(make_study()) == METRICS


def numbers(trials: list[FrozenTrial]) -> list[int]:
    return [t.number for t in trials]


def test_knee_2d() -> None:
    study = make_study(["val_accuracy", "params"], ["maximize", "minimize"])
    for values in ([0.90, 100.0], [0.50, 10.0], [0.85, 20.0], [0.80, 50.0]):
        add(study, values)
    # Trial 3 is dominated by trial 2; normalised front losses (0, 1), (1, 0), (0.125, 0.111): knee = 2.
    assert numbers(pareto_front(study)) == [0, 2, 1]
    assert knee_trial(study).number == 2
    assert pick_trial(study, "accuracy").number == 0
    assert pick_trial(study, "params").number == 1


def test_knee_and_picks_3d() -> None:
    study = make_study()
    add(study, [0.95, 4e6, 9.0])  # accurate
    add(study, [0.60, 1e5, 5.0])  # small
    add(study, [0.70, 2e6, 1.0])  # fast
    add(study, [0.90, 5e5, 3.0])  # balanced
    add(study, [0.80, 6e5, 4.0])  # dominated by the balanced one
    add(study, [0.99, 1e4, 0.5], constraints=[0.1])  # infeasible, dominates everything
    add(study, None, state=TrialState.FAIL, failure_reason="nan")
    assert numbers(pareto_front(study)) == [0, 3, 2, 1]
    assert pick_trial(study, "accuracy").number == 0
    assert pick_trial(study, "params").number == 1
    assert pick_trial(study, "latency").number == 2
    assert pick_trial(study, "knee").number == knee_trial(study).number == 3


def test_pick_falls_back_to_user_attrs() -> None:
    study = make_study(["val_accuracy", "params"], ["maximize", "minimize"])
    add(study, [0.9, 2e6], latency_ms=5.0)
    add(study, [0.8, 1e6], latency_ms=2.0)
    add(study, [0.7, 3e6], latency_ms=1.0)  # dominated but feasible: still the fastest
    add(study, [0.95, 1e5], constraints=[1.0], latency_ms=0.1)  # infeasible: never picked
    add(study, None, state=TrialState.FAIL, latency_ms=0.01)
    assert pick_trial(study, "latency").number == 2
    study = make_study(["params", "latency_ms"], ["minimize", "minimize"])
    add(study, [1e6, 2.0])
    with pytest.raises(ValueError, match="'val_accuracy' is not an objective"):
        pick_trial(study, "accuracy")
    with pytest.raises(ValueError, match="unknown pick"):
        pick_trial(study, "fastest")


def test_pick_without_metric_anywhere() -> None:
    study = make_study(["val_accuracy", "params"], ["maximize", "minimize"])
    add(study, [0.9, 2e6])
    with pytest.raises(ValueError, match="neither an objective nor recorded"):
        pick_trial(study, "latency")


def test_a_repeat_stays_off_the_front_where_its_trained_twin_stands() -> None:
    study = make_study()
    add(study, [0.9, 100.0, 1.0])
    add(study, [0.5, 10.0, 0.5])
    add(study, [0.9, 100.0, 1.0], repeat_of=0)  # equal values: non-dominated, yet the same design
    assert [t.number for t in pareto_front(study)] == [0, 1]
    assert list(trials_frame(study)["pareto"]) == [True, True, False]
    assert pick_trial(study, "accuracy").number == 0


def test_a_study_scored_on_a_latency_target_picks_and_shows_that_latency() -> None:
    study = make_study(["val_accuracy", "latency_ms@litert-cpu"], ["maximize", "minimize"])
    add(study, [0.9, 0.8], latency_ms=1.0)  # the fastest on the training device ...
    add(study, [0.8, 0.1], latency_ms=9.0)  # ... but this one on the target the study is scored on
    assert latency_metric(study) == "latency_ms@litert-cpu"
    assert pick_trial(study, "latency").number == 1
    table = front_table_text(study).splitlines()
    assert table[0].split()[:7] == [
        "trial",
        "val_acc",
        "test_acc",
        "params",
        "MACs",
        "lat_ms",
        "ms@litert-cpu",
    ]
    assert table[2].split()[6] == "0.1"
    figure = pareto_figure(study)
    assert figure.layout.annotations[1].text == "val_accuracy vs latency (ms@litert-cpu)"
    assert latency_metric(make_study()) == "latency_ms"
