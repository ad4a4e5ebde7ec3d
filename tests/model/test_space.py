import json
import re
from pathlib import Path

import keras_tuner
import optuna
import pytest

from xsearch import XceptionConfig
from xsearch.model.space import SearchSpace

SNAPSHOT = Path(__file__).parent / "snapshots" / "xception-full.json"


def _snapshot(space: SearchSpace) -> dict:
    return {name: repr(dist) for name, dist in space.distributions().items()}


def test_default_space_snapshot():
    """The default space's encoding is part of every stored study: changing it must be deliberate."""
    assert _snapshot(SearchSpace.default()) == json.loads(SNAPSHOT.read_text())


def test_shipped_spaces_load_and_contain_their_samples():
    for name in ("xception-full", "xception-small"):
        space = SearchSpace.from_toml(name)
        study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
        for _ in range(20):
            trial = study.ask()
            config = space.sample(trial)
            assert space.contains(config)
            assert set(trial.params) == set(space.axes)  # fixed length: every axis, every trial
            study.tell(trial, 0.0)


def test_paper_point_is_in_the_full_space():
    assert SearchSpace.default().contains(XceptionConfig.paper())


def test_optuna_and_keras_tuner_give_the_same_config_for_the_same_values():
    space = SearchSpace.from_toml("xception-small")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(15):
        trial = study.ask()
        from_optuna = space.sample(trial)
        hp = keras_tuner.HyperParameters()
        space.sample_keras_tuner(hp)  # declares the hyperparameters
        for name, value in trial.params.items():
            hp.values[name] = value
        assert space.sample_keras_tuner(hp) == from_optuna
        assert space.decode(trial.params) == from_optuna
        study.tell(trial, 0.0)


def test_encode_enqueues_a_config_exactly():
    space = SearchSpace.default()
    study = optuna.create_study()
    wanted = XceptionConfig(
        middle_repeats=4, width=0.5, segments=4, intermediate_activation="relu", residual=False
    )
    study.enqueue_trial(space.encode(wanted))
    assert space.sample(study.ask()) == wanted


def test_ask_tell_with_fixed_distributions():
    space = SearchSpace.default()
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    trial = study.ask(space.distributions())
    assert space.contains(space.decode(trial.params))


def test_axes_missing_from_a_file_stay_at_the_paper_point(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text('[axes]\nsegments = [1, 4, "depthwise"]\n')
    space = SearchSpace.from_toml(path)
    assert space.axes["middle_repeats"].values == (8,)
    assert space.axes["segments"].values == (1, 4, "depthwise")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[axes]\nwidht = [1.0]\n", "unknown key 'widht'. Did you mean 'width'?"),
        ("[axes]\nsegments = [0, 4]\n", "segments must be an integer >= 1"),
        ("[axes]\nwidth = { low = 1.0, high = 0.5, step = 0.25 }\n", "needs low <= high"),
        ("[axes]\nwidth = { low = 0.25, high = 0.5 }\n", "needs a 'step'"),
        ("[axes]\nsegments = { low = 1, high = 4 }\n", "a range is only valid for"),
        ("[axes]\nintermediate_activation = []\n", "list of choices is empty"),
        ("[axes\n", "malformed TOML"),
        ("colour = 1\n", "unknown key 'colour'"),
    ],
)
def test_bad_space_files_are_refused_with_file_and_key(tmp_path, text, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(message)) as info:
        SearchSpace.from_toml(path)
    assert str(path) in str(info.value)


def test_unknown_space_name_lists_known_ones():
    with pytest.raises(
        KeyError, match=r"Did you mean 'xception-small'.*Known: .*xception-full, xception-small"
    ):
        SearchSpace.from_toml("xception-smal")
