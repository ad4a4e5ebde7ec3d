"""Latency probe: a compiled forward pass on the current device, timed directly, with its call overhead and noise.

`predict_on_batch` goes through Keras' data adapters and callbacks on every call, which at small sizes costs
more than the model and hides how designs differ. The probe compiles the forward pass once for the backend
(`tf.function`, `jax.jit`, or eager PyTorch under ``no_grad``) and times calls that end when the outputs are on
the host. The same path timed on an identity model of the same input is the fixed overhead, reported apart.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypedDict

import keras
import numpy as np

from xsearch.common.timing import time_calls
from xsearch.model.device import runtime_info


class Latency(TypedDict):
    latency_ms: float
    latency_p90_ms: float
    latency_cv: float  # standard deviation over mean of the timed calls
    overhead_ms: float  # the same call path on an identity model: what no design can go below
    batch_size: int
    repeats: int
    backend: str
    device: str
    precision: str


def compiled_forward(model: keras.Model) -> Callable[[np.ndarray], np.ndarray]:
    """``model``'s inference forward pass compiled for the current backend; returns host numpy arrays."""
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        forward = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        return lambda batch: forward(tf.constant(batch)).numpy()
    if backend == "jax":
        import jax

        state = (
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
        )
        jitted = jax.jit(
            lambda trainable, other, x: model.stateless_call(trainable, other, x, training=False)[0]
        )
        return lambda batch: np.asarray(jitted(*state, batch))
    if backend == "torch":
        import torch

        def forward_torch(batch: np.ndarray) -> np.ndarray:
            with torch.no_grad():
                return keras.ops.convert_to_numpy(
                    model(keras.ops.convert_to_tensor(batch), training=False)
                )

        return forward_torch
    return lambda batch: keras.ops.convert_to_numpy(model(batch, training=False))


def measure_latency(
    model: keras.Model, batch_size: int = 1, warmup: int = 5, repeats: int = 30
) -> Latency:
    """Time ``model``'s compiled forward pass on a random batch of ``batch_size``.

    The first ``warmup`` calls (compilation included) are discarded; the figure is the median of ``repeats`` timed
    calls, with their p90 and coefficient of variation, and the median of the same path on an identity model.
    """
    if batch_size < 1 or warmup < 0 or repeats < 1:
        raise ValueError(
            f"batch_size and repeats must be >= 1 and warmup >= 0; received "
            f"batch_size={batch_size}, warmup={warmup}, repeats={repeats}."
        )
    batch = random_batch(model, batch_size)
    forward = compiled_forward(model)
    stats = time_calls(lambda: forward(batch), warmup, repeats)
    identity = compiled_forward(_identity_like(model))
    overhead = time_calls(lambda: identity(batch), warmup, repeats)
    info = runtime_info()
    return Latency(
        latency_ms=stats.median_ms,
        latency_p90_ms=stats.p90_ms,
        latency_cv=stats.cv,
        overhead_ms=overhead.median_ms,
        batch_size=batch_size,
        repeats=repeats,
        backend=info["backend"],
        device=info["device"],
        precision=info["precision"],
    )


def random_batch(model: keras.Model, batch_size: int) -> np.ndarray:
    """A seeded batch of 0-255 pixels at ``model``'s input shape."""
    shape = (batch_size, *model.input_shape[1:])
    return np.random.default_rng(0).uniform(0, 255, shape).astype(np.float32)


def _identity_like(model: keras.Model) -> keras.Model:
    inputs = keras.Input(model.input_shape[1:])
    identity: Any = keras.layers.Identity()(inputs)
    return keras.Model(inputs, identity)
