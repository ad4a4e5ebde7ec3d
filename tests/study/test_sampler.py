"""The study's sampler by name, and the seed of each worker's sampler."""

import dataclasses
import importlib.util

import optuna
import pytest

from xsearch.model.space import SearchSpace
from xsearch.study import sampler
from xsearch.study.record import TrialAttr
from xsearch.study.sampler import grid_points, make_sampler, sampler_seed, space_size
from xsearch.study.setup import prepare_study


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("tpe", optuna.samplers.TPESampler),
        ("nsga2", optuna.samplers.NSGAIISampler),
        ("gp", optuna.samplers.GPSampler),
        ("random", optuna.samplers.RandomSampler),
        ("grid", optuna.samplers.RandomSampler),
    ],
)  # a grid study's points are queued
def test_each_sampler_name_makes_that_sampler(tiny_spec, name, kind):
    space = SearchSpace.from_toml(tiny_spec.space)
    # Optuna's GP sampler runs on PyTorch
    if name == "gp" and importlib.util.find_spec("torch") is None:
        with pytest.raises(ValueError, match="sampler 'gp' needs PyTorch, which is not installed"):
            dataclasses.replace(tiny_spec, sampler=name)
        return
    assert isinstance(make_sampler(dataclasses.replace(tiny_spec, sampler=name), space), kind)


def _space(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text(
        "[axes]\nmiddle_repeats = { low = 0, high = 2, step = 1 }\nwidth = { low = 0.125, high = 0.25, step = 0.125 }\n"
        'depth_multiplier = [1]\nsegments = [1, "depthwise"]\nintermediate_activation = ["none"]\nresidual = [true]\n'
    )
    return path


def test_the_grid_points_are_every_design_once_in_a_seeded_order(tmp_path):
    space = SearchSpace.from_toml(_space(tmp_path))
    points = grid_points(space, seed=0)
    designs = [space.decode(point) for point in points]
    assert len(designs) == len(set(designs)) == 12
    assert {d.width for d in designs} == {0.125, 0.25}
    assert all(space.contains(design) for design in designs)
    assert all(point == space.encode(space.decode(point)) for point in points)
    assert grid_points(space, seed=0) == points
    assert grid_points(space, seed=1) != points


def test_a_grid_study_queues_every_point_once_after_its_seeds_and_caps_its_trials(
    tmp_path, tiny_spec
):
    spec = dataclasses.replace(
        tiny_spec, sampler="grid", space=str(_space(tmp_path)), seed_trials=("regular",), trials=50
    )
    study, resolved, space, _ = prepare_study(spec, tmp_path / "run", probe_batch_size=False)
    assert resolved.trials == 12
    assert len(study.trials) == 12  # the seed is a grid point: queued once
    asked = [study.ask() for _ in range(12)]  # what the workers take, in order
    designs = [space.sample(trial) for trial in asked]
    assert asked[0].user_attrs == {TrialAttr.SEED_TRIAL: True}
    assert designs[0].segments == 1
    assert set(designs) == {space.decode(point) for point in grid_points(space, spec.seed)}


def test_a_worker_seed_follows_the_study_and_with_shared_workers_the_process(monkeypatch):
    # one worker: reproducible
    assert sampler_seed(0, 4, shared=False) == sampler_seed(0, 4, shared=False)
    assert (
        len({sampler_seed(0, 4, False), sampler_seed(1, 4, False), sampler_seed(0, 5, False)}) == 3
    )
    seeds = []
    for pid in (1001, 1002, 1001):
        monkeypatch.setattr(
            sampler,
            "worker_identity",
            lambda pid=pid: {TrialAttr.WORKER_HOST: "gpu-box", TrialAttr.WORKER_PID: pid},
        )
        seeds.append(sampler_seed(0, 4, shared=True))
    assert seeds[0] != seeds[1]
    assert seeds[0] == seeds[2]
    assert seeds[0] != sampler_seed(0, 4, shared=False)


@pytest.mark.parametrize("name", ["tiny", "quickstart", "xception-bench", "xception-full"])
def test_the_space_size_counts_every_design(name):
    space = SearchSpace.from_toml(name)
    size = space_size(space)
    assert size == (len(grid_points(space, 0)) if size < 100_000 else size)
    assert space_size(SearchSpace.from_toml("xception-bench")) == 120


def test_any_study_asks_for_no_more_trials_than_its_space_has_designs(tmp_path, tiny_spec):
    spec = dataclasses.replace(tiny_spec, sampler="tpe", space=str(_space(tmp_path)), trials=50)
    assert prepare_study(spec, tmp_path / "run", probe_batch_size=False)[1].trials == 12
