import keras
import pytest

from xsearch import XceptionConfig, build_model
from xsearch.model.costs import layer_macs, model_costs


def _one_layer(layer, shape=(8, 8, 4)):
    inputs = keras.Input(shape)
    return keras.Model(inputs, layer(inputs))


@pytest.mark.parametrize(
    ("layer", "expected_macs"),
    [
        (keras.layers.Conv2D(6, 3, padding="same"), 8 * 8 * 6 * (3 * 3 * 4)),  # regular: 13,824
        (keras.layers.Conv2D(6, 3, strides=2), 3 * 3 * 6 * (3 * 3 * 4)),  # valid, stride 2: 1,944
        (
            keras.layers.Conv2D(6, 3, padding="same", groups=2),
            8 * 8 * 6 * (3 * 3 * 2),
        ),  # grouped: 6,912
        (
            keras.layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2),
            8 * 8 * 8 * 9,
        ),  # 4,608
        (
            keras.layers.SeparableConv2D(6, 3, padding="same"),
            8 * 8 * 4 * 9 + 8 * 8 * 4 * 6,
        ),  # 3,840
        (
            keras.layers.SeparableConv2D(6, 3, strides=2, padding="same", depth_multiplier=2),
            4 * 4 * 8 * 9 + 4 * 4 * 8 * 6,
        ),  # 1,920
        (keras.layers.MaxPooling2D(), 0),
    ],
)
def test_hand_computed_layer_macs(layer, expected_macs):
    model = _one_layer(layer)
    assert layer_macs(model.layers[-1]) == expected_macs
    costs = model_costs(model)
    assert costs["macs"] == expected_macs
    assert costs["flops"] == 2 * expected_macs


def test_dense_macs_and_params():
    inputs = keras.Input((10,))
    model = keras.Model(inputs, keras.layers.Dense(5)(inputs))
    assert model_costs(model) == {"params": 55, "trainable_params": 55, "macs": 50, "flops": 100}


def test_paper_point_matches_published_figure():
    costs = model_costs(build_model(XceptionConfig.paper()))
    assert costs["params"] == 22_910_480
    assert costs["macs"] == 8_357_403_496  # the published ~8.4 G multiply-adds at 299x299
    assert costs["trainable_params"] == 22_855_952


def test_costs_follow_the_spectrum():
    macs = [
        model_costs(
            build_model(XceptionConfig(middle_repeats=1, width=0.5, segments=s), (64, 64, 3), 10)
        )["macs"]
        for s in (1, 2, 4, 8, "depthwise")
    ]
    assert macs == sorted(macs, reverse=True)
    assert macs[0] > 4 * macs[-1]
