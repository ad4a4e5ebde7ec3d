"""The Optuna plugin in users' own studies: the ready objective, and `suggest_config` in their own."""

import json

import numpy as np
import optuna
import pytest

import xsearch
from xsearch.optuna import SuccessiveHalving, directions, make_objective, suggest_config

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
    objective = make_objective(
        digits.x_train,
        digits.y_train,
        digits.x_val,
        digits.y_val,
        space=space_file,
        epochs=1,
        batch_size=64,
    )
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(0)
    )
    study.optimize(objective, n_trials=2)

    assert len(study.trials) == 2
    for trial in study.trials:
        assert trial.state == optuna.trial.TrialState.COMPLETE
        accuracy, params = trial.values
        assert 0.0 <= accuracy <= 1.0
        assert params == trial.user_attrs["params"] > 0
        assert trial.user_attrs["val_accuracy"] == accuracy
        assert trial.user_attrs["macs"] > 0
        config = xsearch.XceptionConfig(**json.loads(trial.user_attrs["config"]))
        assert config.width == 0.125
        assert config.segments in (1, "depthwise")


def test_suggest_config_in_a_users_own_objective(space_file):
    def objective(trial: optuna.Trial) -> float:
        config = suggest_config(trial, space_file)
        learning_rate = trial.suggest_float("learning_rate", 1e-4, 1e-2, log=True)
        model = xsearch.build_model(config, (16, 16, 3), 10)
        return model.count_params() * learning_rate

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(0))
    study.optimize(objective, n_trials=2)
    assert set(study.best_trial.params) == set(xsearch.SearchSpace.from_toml(space_file).axes) | {
        "learning_rate"
    }


def test_directions_and_unknown_objectives():
    assert directions(["accuracy", "params", "latency"]) == ["maximize", "minimize", "minimize"]
    x, y = np.zeros((2, 16, 16, 3)), np.zeros(2)
    with pytest.raises(ValueError, match="objectives must be"):
        make_objective(x, y, x, y, objectives=("speed",))


@pytest.mark.slow
def test_make_objective_does_not_train_a_design_twice(digits, tmp_path):
    one_design = tmp_path / "one.toml"
    one_design.write_text(
        '[axes]\nmiddle_repeats = [0]\nwidth = [0.125]\nsegments = ["depthwise"]\n'
    )
    study = optuna.create_study(directions=["maximize", "minimize"])
    objective = make_objective(
        digits.x_train,
        digits.y_train,
        digits.x_val,
        digits.y_val,
        space=one_design,
        epochs=1,
        batch_size=64,
    )
    study.optimize(objective, n_trials=3)

    first, *repeats = study.trials
    assert "repeat_of" not in first.user_attrs
    for repeat in repeats:
        assert repeat.user_attrs["repeat_of"] == 0
        assert repeat.values == first.values
        assert repeat.user_attrs["macs"] == first.user_attrs["macs"]
        assert repeat.duration < 0.2 * first.duration  # nothing built or trained


def test_successive_halving_in_a_users_own_training_stops_a_trial_that_ranks_low():
    import keras
    from optuna.distributions import FloatDistribution

    study = optuna.create_study(directions=["maximize", "minimize"])
    for accuracy in (0.9, 0.8, 0.7):  # cheaper, and better at the rung (epoch 1)
        study.add_trial(
            optuna.trial.create_trial(
                params={"x": 0.0},
                distributions={"x": FloatDistribution(0, 1)},
                values=[accuracy, 100],
                user_attrs={"params": 100, "rung_accuracy": {"1": accuracy}, "setup_digest": ""},
            )
        )
    trial = study.ask()
    asha = SuccessiveHalving(trial, {"params": 500}, epochs=3)
    asha.set_model(keras.Sequential())
    asha.on_epoch_end(0, {"val_accuracy": 0.5})
    assert asha.stopped_at == 1
    assert asha.model.stop_training
    assert trial.user_attrs["stopped_at_epoch"] == 1
    assert trial.user_attrs["rung_accuracy"] == {"1": 0.5}
    trial.set_constraint("stopped", float(asha.stopped_at is not None))
    study.tell(trial, [0.5, 500])
    assert study.trials[-1] not in study.best_trials

    with pytest.raises(
        ValueError, match=r"min_epochs must be an integer in \[1, epochs - 1 = 2\]; received 3"
    ):
        SuccessiveHalving(study.ask(), {"params": 1}, epochs=3, min_epochs=3)
    with pytest.raises(ValueError, match="reduction_factor must be an integer >= 2; received 1"):
        SuccessiveHalving(study.ask(), {"params": 1}, epochs=3, reduction_factor=1)


@pytest.mark.slow
def test_make_objective_with_successive_halving_keeps_stopped_trials_off_the_front(
    digits, space_file
):
    objective = make_objective(
        digits.x_train,
        digits.y_train,
        digits.x_val,
        digits.y_val,
        space=space_file,
        epochs=2,
        batch_size=64,
        asha=True,
    )
    study = optuna.create_study(
        directions=["maximize", "minimize"], sampler=optuna.samplers.RandomSampler(0)
    )
    study.optimize(objective, n_trials=4)
    for trial in study.trials:
        stopped = "stopped_at_epoch" in trial.user_attrs
        assert trial.constraints == {"stopped": float(stopped)}
        assert "repeat_of" in trial.user_attrs or trial.user_attrs["rung_accuracy"].keys() == {"1"}
    assert all("stopped_at_epoch" not in trial.user_attrs for trial in study.best_trials)
    assert study.best_trials
