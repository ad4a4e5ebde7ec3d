import keras
import numpy as np
import pytest

from xsearch import MIN_INPUT_SIZE, XceptionConfig, build_model


def _reference(**kwargs):
    return keras.applications.Xception(weights=None, **kwargs)


def test_paper_point_parameter_counts():
    assert build_model(XceptionConfig.paper()).count_params() == 22_910_480
    assert build_model(XceptionConfig.paper(), include_top=False).count_params() == 20_861_480


@pytest.mark.parametrize(
    ("input_shape", "num_classes", "include_top"),
    [((71, 71, 3), 10, True), ((96, 80, 3), 7, True), ((150, 150, 3), 1000, False)],
)
@pytest.mark.slow
def test_paper_point_is_keras_xception_weight_for_weight(input_shape, num_classes, include_top):
    ours = build_model(XceptionConfig.paper(), input_shape, num_classes, include_top)
    reference = _reference(input_shape=input_shape, classes=num_classes, include_top=include_top)
    assert ours.count_params() == reference.count_params()
    ours.set_weights(reference.get_weights())
    batch = np.random.default_rng(0).normal(size=(2, *input_shape)).astype("float32")
    difference = np.abs(ours.predict_on_batch(batch) - reference.predict_on_batch(batch)).max()
    assert difference <= 1e-5


def test_layers_are_builtin_keras_and_named_like_keras():
    model = build_model(
        XceptionConfig(middle_repeats=2, segments=4, intermediate_activation="relu"), (64, 64, 3), 5
    )
    for layer in model.layers:
        assert type(layer).__module__.startswith("keras.src.layers"), type(layer)
    names = {layer.name for layer in model.layers}
    assert {
        "block1_conv1",
        "block2_sepconv1_spatial",
        "block2_sepconv1_mid_act",
        "block2_sepconv1_pointwise",
        "block6_sepconv3_bn",
        "block7_sepconv2_spatial",
        "block8_sepconv2_pointwise",
        "predictions",
    } <= names


def _separable_params(model, prefix):
    """Weights of the spatial+pointwise convs of one separable conv (BN excluded)."""
    return sum(
        layer.count_params()
        for layer in model.layers
        if layer.name == prefix
        or (layer.name.startswith(prefix + "_") and not layer.name.endswith(("_bn", "_act")))
    )


@pytest.mark.parametrize(
    "width",
    [0.25, pytest.param(0.5, marks=pytest.mark.slow), pytest.param(1.0, marks=pytest.mark.slow)],
)
# fast: 0.25 x 1
@pytest.mark.parametrize("depth_multiplier", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_spectrum_parameter_count_of_each_separable_conv(width, depth_multiplier):
    """From 1 segment (regular conv) to depthwise: spatial = 9*C*dm*C/k, pointwise = C*dm*F."""
    for segments in (1, 2, 4, 8, 16, "depthwise"):
        config = XceptionConfig(
            middle_repeats=1, width=width, depth_multiplier=depth_multiplier, segments=segments
        )
        model = build_model(config, (32, 32, 3), 10)
        layers = {layer.name: layer for layer in model.layers}
        checked = 0
        for name in [n for n in layers if n.endswith("_bn") and "sepconv" in n]:
            prefix = name.removesuffix("_bn")
            first = (
                layers.get(prefix)
                or layers.get(prefix + "_spatial")
                or layers.get(prefix + "_depthwise")
            )
            c_in = first.input.shape[-1]
            filters = layers[name].output.shape[-1]
            groups = c_in if segments == "depthwise" else segments
            expected = (
                9 * c_in * depth_multiplier * (c_in // groups) + c_in * depth_multiplier * filters
            )
            assert _separable_params(model, prefix) == expected, (segments, prefix)
            checked += 1
        assert checked == 2 + 2 + 2 + 3 + 2 + 2  # entry 3x2, middle 1x3, exit 2+2


def test_segments_one_is_a_regular_conv_and_depthwise_a_separable_conv():
    regular = build_model(XceptionConfig(middle_repeats=0, width=0.25, segments=1), (32, 32, 3), 10)
    spatial = regular.get_layer("block3_sepconv1_spatial")
    assert isinstance(spatial, keras.layers.Conv2D)
    assert spatial.groups == 1
    assert spatial.kernel_size == (3, 3)
    assert spatial.filters == spatial.input.shape[-1]
    assert regular.get_layer("block3_sepconv1_pointwise").kernel_size == (1, 1)
    separable = build_model(XceptionConfig(middle_repeats=0, width=0.25), (32, 32, 3), 10)
    assert isinstance(separable.get_layer("block3_sepconv1"), keras.layers.SeparableConv2D)
    with_act = build_model(
        XceptionConfig(middle_repeats=0, width=0.25, intermediate_activation="elu"), (32, 32, 3), 10
    )
    assert isinstance(with_act.get_layer("block3_sepconv1_depthwise"), keras.layers.DepthwiseConv2D)
    assert with_act.get_layer("block3_sepconv1_mid_act").get_config()["activation"] == "elu"


def test_residual_off_removes_shortcuts_and_adds():
    on = build_model(XceptionConfig(middle_repeats=2, width=0.25), (32, 32, 3), 10)
    off = build_model(XceptionConfig(middle_repeats=2, width=0.25, residual=False), (32, 32, 3), 10)
    assert sum(isinstance(layer, keras.layers.Add) for layer in on.layers) == 4 + 2
    assert not any(isinstance(layer, keras.layers.Add) for layer in off.layers)
    assert not any("shortcut" in layer.name for layer in off.layers)
    shortcut_params = sum(layer.count_params() for layer in on.layers if "shortcut" in layer.name)
    assert on.count_params() - off.count_params() == shortcut_params > 0


@pytest.mark.parametrize("size", [MIN_INPUT_SIZE, 32, 64])
def test_small_inputs_build_and_run(size):
    model = build_model(XceptionConfig(middle_repeats=1, width=0.25), (size, size, 3), 10)
    assert model.predict_on_batch(np.zeros((2, size, size, 3), "float32")).shape == (2, 10)


def test_too_small_input_and_bad_classes_are_refused():
    with pytest.raises(ValueError, match=f"at least {MIN_INPUT_SIZE}x{MIN_INPUT_SIZE}"):
        build_model(XceptionConfig.paper(), (MIN_INPUT_SIZE - 1, 32, 3))
    with pytest.raises(
        ValueError, match="num_classes must be an integer >= 1; received num_classes=0"
    ):
        build_model(XceptionConfig.paper(), (32, 32, 3), 0)


@pytest.mark.slow
def test_training_step_on_default_backend():
    model = build_model(
        XceptionConfig(middle_repeats=1, width=0.25, segments=2, intermediate_activation="relu"),
        (32, 32, 3),
        4,
        bn_momentum=0.9,
    )
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    history = model.fit(
        np.random.rand(8, 32, 32, 3).astype("float32"), np.arange(8) % 4, epochs=1, verbose=0
    )
    assert np.isfinite(history.history["loss"][0])
    assert model.get_layer("block2_sepconv1_bn").momentum == 0.9
