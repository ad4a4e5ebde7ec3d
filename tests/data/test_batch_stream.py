"""`BatchStream`: batching, shuffling, augmentation, Keras use; and the input benchmark."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest

from xsearch.data import BatchStream
from xsearch.data.dataset import ChannelStats

ROOT = Path(__file__).resolve().parents[2]


def images(count=50, side=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (count, side, side, 3), dtype=np.uint8), np.arange(count) % 5


def epoch(stream):
    batches = [stream[i] for i in range(len(stream))]
    return np.concatenate([b[0] for b in batches]), np.concatenate([b[1] for b in batches])


def test_batches_shapes_dtypes_and_length():
    x, y = images()
    stream = BatchStream(x, y, 16)
    assert len(stream) == 4
    assert len(BatchStream(x, y, 16, drop_remainder=True)) == 3
    xb, yb = stream[0]
    assert xb.shape == (16, 16, 16, 3)
    assert xb.dtype == np.uint8
    assert yb.dtype == np.int32
    assert stream[3][0].shape == (2, 16, 16, 3)
    with pytest.raises(IndexError):
        stream[4]
    with pytest.raises(ValueError, match="y of shape"):
        BatchStream(x, y[:-1], 16)


def test_channel_stats_are_the_pixel_mean_and_std_whatever_the_blocks():
    x, _ = images(count=300)
    stats = ChannelStats()
    for block in (x[:7], x[7:200], x[200:]):
        stats.add(block)
    mean, std = stats.result()
    np.testing.assert_allclose(mean, x.reshape(-1, 3).mean(0), rtol=1e-5)
    np.testing.assert_allclose(std, x.reshape(-1, 3).std(0), rtol=1e-4)


def test_an_unshuffled_epoch_is_the_stored_images_and_labels_in_order():
    x, y = images()
    xs, ys = epoch(BatchStream(x, y, 16))
    np.testing.assert_array_equal(xs, x)
    np.testing.assert_array_equal(ys, y)


def test_shuffle_is_a_new_seeded_permutation_each_epoch():
    x, _y = images()
    stream = BatchStream(x, np.arange(50), 8, shuffle=True, seed=3)
    first = epoch(stream)[1]
    stream.on_epoch_end()
    second = epoch(stream)[1]
    assert sorted(first) == sorted(second) == list(range(50))
    assert not np.array_equal(first, second)
    again = BatchStream(x, np.arange(50), 8, shuffle=True, seed=3)
    np.testing.assert_array_equal(epoch(again)[1], first)
    np.testing.assert_array_equal(epoch(BatchStream(x, np.arange(50), 8))[1], np.arange(50))


def test_augmentation_is_a_flip_and_shift_of_each_image():
    x, y = images(count=20, side=16)
    plain = epoch(BatchStream(x, y, 8))[0]
    augmented = epoch(BatchStream(x, y, 8, augment=True, seed=1))[0]
    assert augmented.shape == plain.shape
    assert not np.array_equal(augmented, plain)
    padded = np.pad(plain, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="reflect")
    for original, out in zip(padded, augmented):
        candidates = [
            image[dy : dy + 16, dx : dx + 16]
            for image in (original, original[:, ::-1])
            for dy in range(5)
            for dx in range(5)
        ]
        assert any(np.array_equal(c, out) for c in candidates)


def test_augmentation_is_deterministic_per_seed_and_epoch():
    x, y = images()
    make = lambda seed: BatchStream(x, y, 10, augment=True, seed=seed)  # noqa: E731
    a, b, c = make(0), make(0), make(1)
    np.testing.assert_array_equal(a[2][0], b[2][0])
    assert not np.array_equal(a[2][0], c[2][0])
    a.on_epoch_end()
    assert not np.array_equal(a[2][0], b[2][0])


def test_keras_fits_from_stream_with_worker_threads():
    x, y = images(count=40, side=8)
    stream = BatchStream(x, y, 8, augment=True, shuffle=True, workers=2)
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Flatten(), keras.layers.Dense(5)]
    )
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(stream, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    assert stream.epoch >= 1


@pytest.mark.slow
def test_data_package_does_not_import_tensorflow_under_jax():
    code = "import sys, xsearch.data; assert 'tensorflow' not in sys.modules, 'tensorflow imported'"
    env = {**os.environ, "KERAS_BACKEND": "jax"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=ROOT, capture_output=True)


@pytest.mark.slow
def test_input_pipeline_benchmark(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "input_pipeline", ROOT / "benchmarks" / "input_pipeline.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    x, y = images(count=64, side=8)
    assert module.served_images_per_second(x, y, 16) > 0
    module.main(["--image-size", "8", "--batch-size", "128", "--json", str(tmp_path / "out.json")])
    report = json.loads((tmp_path / "out.json").read_text())
    assert report["num_images"] == 5000
    assert {r["augment"] for r in report["results"]} == {False, True}
