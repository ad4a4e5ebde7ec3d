"""`measure_step_time` and `describe --step-batch`: a design's training step beside its depthwise twin."""

import pytest

from xsearch.model.config import XceptionConfig
from xsearch.model.describe import describe
from xsearch.model.step_time import measure_step_time


def test_a_grouped_design_is_timed_beside_its_depthwise_twin():
    step = measure_step_time(
        XceptionConfig(middle_repeats=0, width=0.125, segments=4), 16, 3, batch_size=4, repeats=2
    )
    assert step["step_ms"] > 0
    assert step["depthwise_step_ms"] > 0
    assert step["step_ms"] != step["depthwise_step_ms"]
    assert step["batch_size"] == 4
    assert step["device"].startswith("cpu")


def test_describe_states_the_ratio_for_a_grouped_design_only():
    grouped = describe(
        XceptionConfig(middle_repeats=0, width=0.125, segments=2),
        16,
        3,
        summary=False,
        step_batch=4,
    )
    last = grouped.splitlines()[-1]
    assert last.startswith("training step: ")
    assert "at batch 4 on cpu" in last
    assert "its depthwise twin" in last
    assert last.endswith("x as long a step")
    depthwise = describe(
        XceptionConfig(middle_repeats=0, width=0.125), 16, 3, summary=False, step_batch=4
    )
    assert "twin" not in depthwise.splitlines()[-1]


def test_a_bad_step_batch_is_refused_before_any_model_is_built():
    with pytest.raises(ValueError, match=r"--step-batch must be an integer >= 1; received 0"):
        describe(XceptionConfig(), 299, 1000, step_batch=0)
