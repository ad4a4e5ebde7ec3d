"""The Optuna plugin in users' own studies: the ready objective, and `suggest_config` in their own."""

import json

import numpy as np
import optuna
import pytest

import xsearch
from xsearch.optuna import directions, make_objective, suggest_config

TINY_SPACE = """
[axes]
middle_repeats = [0]
width = [0.125]
segments = [1, "depthwise"]
residual = [true, false]
"""


@pytest.fixture
def space_file(tmp_path):
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SPACE)
    return path


@pytest.mark.slow
def test_make_objective_in_a_users_study(digits, space_file):
    objective = make_objective(digits.x_train, digits.y_train, digits.x_val, digits.y_val, space=space_file, epochs=1,
                               batch_size=64)
    study = optuna.create_study(directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(0))
    study.optimize(objective, n_trials=2)

    assert len(study.trials) == 2
    for trial in study.trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        accuracy, params = trial.values
        assert 0.0 <= accuracy <= 1.0 and params == trial.user_attrs["params"] > 0
        assert trial.user_attrs["val_accuracy"] == accuracy and trial.user_attrs["macs"] > 0
        config = xsearch.XceptionConfig(**json.loads(trial.user_attrs["config"]))
        assert config.width == 0.125 and config.segments in (1, "depthwise")


def test_suggest_config_in_a_users_own_objective(space_file):
    def objective(trial: optuna.Trial) -> float:
        config = suggest_config(trial, space_file)
        learning_rate = trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
        model = xsearch.build_model(config, (16, 16, 3), 10)
        return model.count_params() * learning_rate

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(0))
    study.optimize(objective, n_trials=2)
    assert set(study.best_trial.params) == set(xsearch.SearchSpace.from_toml(space_file).axes) | {"learning_rate"}


def test_directions_and_unknown_objectives():
    assert directions(["accuracy", "params", "latency"]) == ["maximize", "minimize", "minimize"]
    x, y = np.zeros((2, 16, 16, 3)), np.zeros(2)
    with pytest.raises(ValueError, match="objectives must be"):
        make_objective(x, y, x, y, objectives=("speed",))


@pytest.mark.slow
def test_make_objective_does_not_train_a_design_twice(digits, tmp_path):
    one_design = tmp_path / "one.toml"
    one_design.write_text('[axes]\nmiddle_repeats = [0]\nwidth = [0.125]\nsegments = ["depthwise"]\n')
    study = optuna.create_study(directions=["maximize", "minimize"])
    objective = make_objective(digits.x_train, digits.y_train, digits.x_val, digits.y_val, space=one_design, epochs=1,
                               batch_size=64)
    study.optimize(objective, n_trials=3)

    first, *repeats = study.trials
    assert "repeat_of" not in first.user_attrs
    for repeat in repeats:
        assert repeat.user_attrs["repeat_of"] == 0 and repeat.values == first.values
        assert repeat.user_attrs["macs"] == first.user_attrs["macs"]
        assert repeat.duration < 0.2 * first.duration  # nothing built or trained
