"""The study's sampler by name, and the seed of each worker's sampler."""

import dataclasses

import optuna
import pytest

from xsearch.model.space import SearchSpace
from xsearch.study import sampler
from xsearch.study.record import TrialAttr
from xsearch.study.sampler import make_sampler, sampler_seed


@pytest.mark.parametrize("name, kind", [("tpe", optuna.samplers.TPESampler), ("nsga2", optuna.samplers.NSGAIISampler),
                                        ("gp", optuna.samplers.GPSampler), ("random", optuna.samplers.RandomSampler),
                                        ("grid", optuna.samplers.GridSampler)])
def test_each_sampler_name_makes_that_sampler(tiny_spec, name, kind):
    space = SearchSpace.from_toml(tiny_spec.space)
    assert isinstance(make_sampler(dataclasses.replace(tiny_spec, sampler=name), space), kind)


def test_the_grid_sampler_visits_every_design_once(tmp_path, tiny_spec):
    path = tmp_path / "space.toml"
    path.write_text('[axes]\nmiddle_repeats = { low = 0, high = 2, step = 1 }\nwidth = [0.125]\ndepth_multiplier = [1]\n'
                    'segments = [1, "depthwise"]\nintermediate_activation = ["none"]\nresidual = [true]\n')
    space = SearchSpace.from_toml(path)
    study = optuna.create_study(sampler=make_sampler(dataclasses.replace(tiny_spec, sampler="grid"), space))
    designs = []
    study.optimize(lambda trial: designs.append(space.sample(trial)) or 0.0, n_trials=10)  # stops when exhausted
    assert len(designs) == len(set(designs)) == 6 and {d.middle_repeats for d in designs} == {0, 1, 2}


def test_a_worker_seed_follows_the_study_and_with_shared_workers_the_process(monkeypatch):
    assert sampler_seed(0, 4, shared=False) == sampler_seed(0, 4, shared=False)  # one worker: reproducible
    assert len({sampler_seed(0, 4, False), sampler_seed(1, 4, False), sampler_seed(0, 5, False)}) == 3
    seeds = []
    for pid in (1001, 1002, 1001):
        monkeypatch.setattr(sampler, "worker_identity",
                            lambda pid=pid: {TrialAttr.WORKER_HOST: "gpu-box", TrialAttr.WORKER_PID: pid})
        seeds.append(sampler_seed(0, 4, shared=True))
    assert seeds[0] != seeds[1] and seeds[0] == seeds[2] and seeds[0] != sampler_seed(0, 4, shared=False)
