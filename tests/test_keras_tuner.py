"""The KerasTuner plugin: two-trial searches on digits with each of KerasTuner's tuners."""

from pathlib import Path

import keras_tuner
import pytest

import xsearch
from xsearch.keras_tuner import XceptionHyperModel

TINY_SPACE = """
[axes]
middle_repeats = [0]
width = [0.125]
segments = [1, "depthwise"]
intermediate_activation = ["none", "relu"]
residual = [true, false]
"""


def _tuner(kind: str, hypermodel: XceptionHyperModel, directory: Path) -> keras_tuner.Tuner:
    common = {"objective": "val_accuracy", "directory": directory, "project_name": kind, "seed": 0}
    if kind == "random":
        return keras_tuner.RandomSearch(hypermodel, max_trials=2, **common)
    if kind == "bayesian":
        return keras_tuner.BayesianOptimization(
            hypermodel, max_trials=2, num_initial_points=1, **common
        )
    return keras_tuner.Hyperband(
        hypermodel, max_epochs=2, factor=2, hyperband_iterations=1, **common
    )


# get_best_models: no optimizer state
@pytest.mark.filterwarnings("ignore:Skipping variable loading for optimizer")
@pytest.mark.parametrize("kind", ["random", "bayesian", "hyperband"])
@pytest.mark.slow
def test_tuner_searches_the_space(kind, digits, tmp_path):
    space_file = tmp_path / "tiny.toml"
    space_file.write_text(TINY_SPACE)
    space = xsearch.SearchSpace.from_toml(space_file)
    tuner = _tuner(
        kind, XceptionHyperModel((16, 16, 3), digits.num_classes, space=space_file), tmp_path
    )
    tuner.search(
        digits.x_train,
        digits.y_train,
        validation_data=(digits.x_val, digits.y_val),
        epochs=1,
        batch_size=64,
        verbose=0,
    )

    trials = tuner.oracle.get_best_trials(num_trials=10)
    assert len(trials) >= 2  # Hyperband runs 3: two designs, then the better one for a second epoch
    for trial in trials:
        values = {
            k: v for k, v in trial.hyperparameters.values.items() if not k.startswith("tuner/")
        }
        assert space.contains(space.decode(values))
    best = tuner.get_best_models(1)[0]
    assert best.predict(digits.x_val[:5], verbose=0).shape == (5, digits.num_classes)


def test_hypermodel_takes_a_space_name():
    hypermodel = XceptionHyperModel((16, 16, 3), 10)
    model = hypermodel.build(keras_tuner.HyperParameters())
    assert model.output_shape == (None, 10)
    assert model.optimizer is not None
