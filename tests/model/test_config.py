import math
import re

import pytest

from xsearch import XceptionConfig


def test_paper_point():
    config = XceptionConfig.paper()
    assert (config.middle_repeats, config.width, config.depth_multiplier) == (8, 1.0, 1)
    assert (config.segments, config.intermediate_activation, config.residual) == (
        "depthwise",
        "none",
        True,
    )


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        (
            "middle_repeats",
            -1,
            "middle_repeats must be an integer >= 0; received middle_repeats=-1",
        ),
        ("middle_repeats", 2.5, "received middle_repeats=2.5"),
        ("width", 0, "width must be a number in (0, 4]; received width=0"),
        ("width", "wide", "received width='wide'"),
        ("depth_multiplier", 0, "depth_multiplier must be an integer >= 1"),
        ("segments", 0, 'segments must be an integer >= 1 or "depthwise"; received segments=0'),
        ("segments", "pointwise", "received segments='pointwise'"),
        (
            "intermediate_activation",
            "gelu",
            "one of 'none', 'relu', 'elu'; received intermediate_activation='gelu'",
        ),
        ("residual", "yes", "residual must be true or false; received residual='yes'"),
    ],
)
def test_invalid_values_name_field_value_and_valid_range(field, value, expected):
    with pytest.raises(ValueError, match=re.escape(expected)):
        XceptionConfig(**{field: value})


def test_json_round_trip():
    config = XceptionConfig(3, 0.5, 2, 4, "elu", False)
    assert XceptionConfig.from_json(config.to_json()) == config
    assert XceptionConfig.from_json(XceptionConfig.paper().to_json()) == XceptionConfig.paper()


def test_json_errors_name_the_source():
    with pytest.raises(
        ValueError, match=r"my.json: unknown key\(s\) wdth; valid keys are middle_repeats"
    ):
        XceptionConfig.from_json('{"wdth": 1.0}', source="my.json")
    with pytest.raises(ValueError, match=r"my.json: not valid JSON"):
        XceptionConfig.from_json("{", source="my.json")


def test_paper_point_keeps_paper_channels():
    config = XceptionConfig.paper()
    for base in (32, 64, 128, 256, 728, 1024, 1536, 2048):
        assert config.channels(base) == base


@pytest.mark.parametrize("width", [0.125, 0.25, 0.3, 0.5, 0.75, 1.0, 1.3, 2.0])
@pytest.mark.parametrize("segments", [1, 2, 3, 4, 8, 16, 32, 64, "depthwise"])
def test_channel_rounding_keeps_every_grouped_conv_valid(width, segments):
    config = XceptionConfig(width=width, segments=segments)
    groups = 1 if segments == "depthwise" else segments
    for base in (32, 64, 128, 256, 728, 1024, 1536, 2048):
        channels = config.channels(base)
        assert channels % groups == 0
        assert channels >= groups
        if width != 1.0 or base % groups:
            quantum = math.lcm(8, groups)
            assert channels % 8 == 0
            assert abs(channels - base * width) <= quantum / 2 or channels == quantum


def test_channel_rounding_rule_examples():
    # 728 not divisible by 3: lcm 24
    assert XceptionConfig(width=1.0, segments=3).channels(728) == 720
    assert XceptionConfig(width=1.0, segments=8).channels(728) == 728  # divisible: kept
    assert XceptionConfig(width=0.5).channels(728) == 368  # nearest multiple of 8 to 364
    assert XceptionConfig(width=0.1).channels(32) == 8  # never below the quantum
