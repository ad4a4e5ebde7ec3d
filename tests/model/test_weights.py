"""Weight inheritance from a Keras Xception: the paper point takes all of it, variants what matches."""

import keras
import numpy as np
import pytest

from xsearch import XceptionConfig, build_model
from xsearch.model.weights import IMAGENET_FILES, inherit_weights, input_normalization
from xsearch.study.fit import with_normalization

SIZE = (71, 71, 3)  # the smallest input keras.applications.Xception accepts


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """A randomly initialised Keras Xception with 10 classes, and its weights file."""
    keras.utils.set_random_seed(1)
    model = keras.applications.Xception(weights=None, input_shape=SIZE, classes=10)
    path = tmp_path_factory.mktemp("weights") / "x.weights.h5"
    model.save_weights(path)
    return model, path


@pytest.mark.slow
def test_the_paper_point_inherits_everything_and_computes_the_same(reference):
    keras_model, path = reference
    ours = build_model(XceptionConfig.paper(), SIZE, 10)
    x = np.random.default_rng(0).uniform(-1, 1, (2, *SIZE)).astype("float32")
    before = _difference(ours, keras_model, x)

    report = inherit_weights(ours, str(path))
    print(report.summary())
    assert (report.layers_inherited, report.weights_inherited) == (
        report.layers_total,
        len(keras_model.weights),
    )
    assert report.params_inherited == report.params_total == keras_model.count_params()
    after = _difference(ours, keras_model, x)
    print(
        f"largest relative difference of the pooled features: {before:.3g} before, {after:.3g} after"
    )
    assert before > 0.1
    assert after == 0.0
    np.testing.assert_array_equal(ours.predict_on_batch(x), keras_model.predict_on_batch(x))


def _difference(ours, theirs, x):
    """Largest difference of the pooled features (what the head sees), relative to their scale."""
    a, b = (
        keras.Model(m.inputs, m.get_layer("avg_pool").output).predict_on_batch(x)
        for m in (ours, theirs)
    )
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.slow
def test_a_variant_with_fewer_middle_modules_and_another_head_inherits_the_rest(reference):
    keras_model, path = reference
    core = build_model(XceptionConfig(middle_repeats=4), SIZE, 5)
    wrapped = with_normalization(core, np.zeros(3), np.ones(3))
    report = inherit_weights(wrapped, str(path))  # finds the core inside
    print(report.summary(), report)
    head = core.get_layer("predictions").count_params()
    assert report.layers_inherited == report.layers_total - 1  # all but the 5-class head
    assert report.params_inherited == report.params_total - head
    middle = sum(
        keras_model.get_layer(f"block{n}_sepconv{k}{bn}").count_params()
        for n in range(9, 13)
        for k in (1, 2, 3)
        for bn in ("", "_bn")
    )
    keras_head = keras_model.get_layer("predictions").count_params()
    assert report.params_inherited == keras_model.count_params() - middle - keras_head
    # the exit flow (our block9/block10 are Keras' block13/block14) and its unnamed shortcut conv inherit
    shortcuts = [
        layer
        for layer in keras_model.layers
        if type(layer) is keras.layers.Conv2D and "block" not in layer.name
    ]
    for ours, theirs in (
        ("block10_sepconv2", keras_model.get_layer("block14_sepconv2")),
        ("block9_shortcut", shortcuts[-1]),
    ):
        np.testing.assert_array_equal(
            core.get_layer(ours).get_weights()[0], theirs.get_weights()[0]
        )


def test_imagenet_offline_without_a_cached_file_names_the_path(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras-home"))

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(keras.utils, "get_file", offline)
    model = build_model(XceptionConfig(middle_repeats=0, width=0.125), (16, 16, 3), 10)
    expected = tmp_path / "keras-home" / "models" / IMAGENET_FILES[True]
    with pytest.raises(
        FileNotFoundError, match=f"{expected}.*keras.applications.Xception\\(weights='imagenet'\\)"
    ):
        inherit_weights(model, "imagenet")


def test_a_missing_or_foreign_weights_file_is_refused(tmp_path):
    model = build_model(XceptionConfig(middle_repeats=0, width=0.125), (16, 16, 3), 10)
    with pytest.raises(FileNotFoundError, match=r"nowhere.weights.h5"):
        inherit_weights(model, str(tmp_path / "nowhere.weights.h5"))
    with pytest.raises(ValueError, match=r"model\.keras: weights must be a \.h5"):
        inherit_weights(model, str(tmp_path / "model.keras"))


def test_imagenet_weights_get_the_preprocessing_they_were_trained_with_other_weights_the_data_sets():
    mean, std = np.array([10.0, 20.0, 30.0]), np.array([1.0, 2.0, 3.0])
    assert input_normalization("imagenet", mean, std) == (
        [127.5] * 3,
        [127.5] * 3,
    )  # pixels to [-1, 1]
    assert input_normalization("pretrained.weights.h5", mean, std) == (
        [10.0, 20.0, 30.0],
        [1.0, 2.0, 3.0],
    )
    assert input_normalization(None, mean, std) == ([10.0, 20.0, 30.0], [1.0, 2.0, 3.0])
