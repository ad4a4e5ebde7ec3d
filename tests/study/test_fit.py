"""Training one design: one compilation of the training step, full batches, honest figures."""

from typing import ClassVar

import keras
import numpy as np
import pytest

from xsearch.data import Dataset
from xsearch.model.builder import build_model
from xsearch.model.space import SearchSpace
from xsearch.study.fit import train_and_evaluate, with_normalization
from xsearch.study.spec import TrainingSpec

SPEC = TrainingSpec(epochs=2, batch_size=32, learning_rate=3e-3, augment=False)
DESIGN = {
    "middle_repeats": 0,
    "width": 0.125,
    "depth_multiplier": 1,
    "segments": "8",
    "intermediate_activation": "none",
    "residual": True,
}


class _CountingModel(keras.Model):
    """A functional model that records the batch size of each trace of its training step."""

    traced_batches: ClassVar[list] = []

    def train_step(self, *state_and_data):  # JAX passes the state first
        self.traced_batches.append(state_and_data[-1][0].shape[0])
        return super().train_step(*state_and_data)


def _dataset(train: int, classes: int = 10) -> Dataset:
    rng = np.random.default_rng(0)
    images = lambda n: rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8)  # noqa: E731
    labels = lambda n: rng.integers(0, classes, n)  # noqa: E731
    return Dataset(
        name="random",
        x_train=images(train),
        y_train=labels(train),
        x_val=images(50),
        y_val=labels(50),
        x_test=images(20),
        y_test=labels(20),
        num_classes=classes,
        mean=np.full(3, 127.5),
        std=np.full(3, 64.0),
        class_names=[str(c) for c in range(classes)],
    )


def _counting_model() -> _CountingModel:
    core = build_model(SearchSpace.from_toml("tiny").decode(DESIGN), (16, 16, 3), 10)
    plain = with_normalization(core, np.full(3, 127.5), np.full(3, 64.0))
    model = _CountingModel(plain.inputs, plain.outputs, name="counting")
    model.traced_batches = []
    return model


@pytest.mark.slow
def test_the_training_step_is_traced_once_with_full_batches_only():
    model = _counting_model()
    result = train_and_evaluate(model, _dataset(train=180), SPEC, seed=0, workers=1)
    assert result.epochs == 2
    assert 0.0 <= result.val_accuracy <= 1.0
    assert result.test_accuracy is not None
    # The Python step runs only when the backend traces it: once, not again for the variables
    # (TensorFlow) or for a last batch of 20 images (JAX compiles each batch shape).
    assert len(model.traced_batches) == 1
    assert model.traced_batches[0] in (None, 32)


@pytest.mark.slow
def test_a_training_set_smaller_than_the_batch_is_one_batch():
    model = _counting_model()
    result = train_and_evaluate(model, _dataset(train=20), SPEC, seed=0, workers=1)
    assert result.epochs == 2
    assert len(model.traced_batches) == 1
    assert model.traced_batches[0] in (None, 20)


def test_the_model_takes_the_streams_uint8_pixels_and_normalises_them_itself():
    core = build_model(SearchSpace.from_toml("tiny").decode(DESIGN), (16, 16, 3), 10)
    model = with_normalization(core, np.full(3, 127.5), np.full(3, 64.0))
    pixels = _dataset(train=8).x_train
    expected = core.predict_on_batch((pixels.astype(np.float32) - 127.5) / 64.0)
    np.testing.assert_allclose(model.predict_on_batch(pixels), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        model.predict_on_batch(pixels.astype(np.float32)), expected, rtol=1e-5, atol=1e-6
    )


@pytest.mark.slow
def test_a_continued_training_continues_the_learning_rate_schedule():
    spec = TrainingSpec(
        epochs=3,
        batch_size=32,
        learning_rate=3e-3,
        schedule="cosine",
        warmup_epochs=0,
        augment=False,
    )
    model = _counting_model()
    result = train_and_evaluate(model, _dataset(train=64), spec, seed=0, workers=1, initial_epoch=2)
    assert result.epochs == 1
    assert int(model.optimizer.iterations) == 3 * 2  # 2 steps a epoch, from step 4 on
    # at the end of the cosine, not its start
    assert float(model.optimizer.learning_rate) < 3e-3 * 0.1
