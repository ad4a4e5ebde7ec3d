"""Seed trials: the paper point and the anchors, projected into the space and shrunk to fit the constraints."""

import dataclasses

import pytest

from tests.helpers import TINY_DATA
from xsearch.model.builder import build_model
from xsearch.model.config import XceptionConfig
from xsearch.model.costs import model_costs
from xsearch.model.space import SearchSpace
from xsearch.study.seeds import (
    check_constraints_reachable,
    fit_constraints,
    project,
    seed_configs,
    smallest_design,
)
from xsearch.study.spec import DataSpec, StudySpec

SPACE = (
    "[axes]\nmiddle_repeats = { low = 0, high = 1, step = 1 }\nwidth = [0.125, 0.25]\ndepth_multiplier = [1, 2]\n"
    'segments = [1, 4, "depthwise"]\nintermediate_activation = ["none"]\nresidual = [true]\n'
)


@pytest.fixture
def space(tmp_path):
    path = tmp_path / "space.toml"
    path.write_text(SPACE)
    return SearchSpace.from_toml(path)


def _params(config):
    return model_costs(build_model(config, (16, 16, 3), 10))["params"]


def test_the_paper_point_is_projected_axis_by_axis_to_the_nearest_design(space):
    projected = project(XceptionConfig.paper(), space)
    assert projected == XceptionConfig(
        middle_repeats=1, width=0.25, depth_multiplier=1, segments="depthwise"
    )
    assert project(
        XceptionConfig(segments=8, intermediate_activation="elu", residual=False),
        space,
        # 8 -> the nearest number; a missing choice -> the first
    ) == XceptionConfig(middle_repeats=1, width=0.25, segments=4)


def test_seed_configs_name_the_anchors_and_drop_duplicates(space):
    spec = StudySpec(
        space="x",
        data=DataSpec(**TINY_DATA),
        seed_trials=("paper", "regular", "segments-8", {"middle_repeats": 0}, "paper"),
    )
    paper = XceptionConfig(middle_repeats=1, width=0.25, segments="depthwise")
    # segments-8 projects onto 4 segments; the second paper is dropped
    assert seed_configs(spec, space, 10) == [
        paper,
        dataclasses.replace(paper, segments=1),
        dataclasses.replace(paper, segments=4),
        dataclasses.replace(paper, middle_repeats=0),
    ]
    with pytest.raises(
        ValueError,
        match="seed_trials: unknown seed 'huge'; valid: 'paper', 'regular', 'segments-K'",
    ):
        seed_configs(dataclasses.replace(spec, seed_trials=("huge",)), space, 10)


def test_constraints_shrink_repeats_then_width_then_drop_the_seed(space):
    paper = project(XceptionConfig.paper(), space)
    no_repeat = dataclasses.replace(paper, middle_repeats=0)
    narrow = dataclasses.replace(paper, middle_repeats=0, width=0.125)
    spec = StudySpec(
        space="x", data=DataSpec(**TINY_DATA), constraints={"max_params": _params(no_repeat)}
    )
    assert fit_constraints(paper, space, spec, 10) == no_repeat
    spec = dataclasses.replace(spec, constraints={"max_params": _params(narrow)})
    assert fit_constraints(paper, space, spec, 10) == narrow  # no repeats left: then the width
    spec = dataclasses.replace(spec, constraints={"max_params": 10})
    assert fit_constraints(paper, space, spec, 10) is None
    assert seed_configs(dataclasses.replace(spec, seed_trials=("paper",)), space, 10) == []


def test_no_design_meeting_the_constraints_is_refused_with_the_smallest_designs_cost(
    space, tmp_path
):
    smallest = smallest_design(space)
    assert smallest == XceptionConfig(
        middle_repeats=0, width=0.125, depth_multiplier=1, segments="depthwise"
    )
    designs = [
        XceptionConfig(middle_repeats=r, width=w, depth_multiplier=d, segments=s)
        for r in (0, 1)
        for w in (0.125, 0.25)
        for d in (1, 2)
        for s in (1, 4, "depthwise")
    ]
    assert _params(smallest) == min(map(_params, designs))
    spec = StudySpec(
        space=str(tmp_path / "space.toml"),
        data=DataSpec(**TINY_DATA),
        constraints={"max_params": _params(smallest)},
    )
    check_constraints_reachable(spec, space, 10)  # the smallest design meets it exactly
    spec = dataclasses.replace(
        spec, constraints={"max_params": _params(smallest) - 1, "max_latency_ms": 0.001}
    )
    with pytest.raises(
        ValueError,
        match=rf"constraints.max_params = {_params(smallest) - 1}: no design of space .* meets it: "
        rf"the smallest, .* has {_params(smallest):,} params at 16x16 with 10 classes",
    ):
        check_constraints_reachable(spec, space, 10)
