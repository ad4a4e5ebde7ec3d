"""What the current Keras backend runs on: backend, its version, device and precision."""

from __future__ import annotations

import functools
import importlib
import platform
from typing import TypedDict

import keras


class RuntimeInfo(TypedDict):
    backend: str
    backend_version: str
    keras_version: str
    device: str
    precision: str


@functools.cache
def _device_name(backend: str) -> str:
    if backend == "jax":
        import jax

        device = jax.devices()[0]
        return f"{device.platform}:{getattr(device, 'device_kind', device.platform)}"
    if backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            details = tf.config.experimental.get_device_details(gpus[0])
            return f"gpu:{details.get('device_name', gpus[0].name)}"
    if backend == "torch":
        import torch

        if torch.cuda.is_available():
            return f"gpu:{torch.cuda.get_device_name(0)}"
    return f"cpu:{platform.processor() or platform.machine()}"


def runtime_info() -> RuntimeInfo:
    """Describe the backend and device that Keras computes on now."""
    backend = keras.backend.backend()
    module = importlib.import_module(backend)
    return RuntimeInfo(
        backend=backend,
        backend_version=str(getattr(module, "__version__", "unknown")),
        keras_version=keras.__version__,
        device=_device_name(backend),
        precision=keras.config.dtype_policy().name,
    )


def on_accelerator() -> bool:
    """True when the backend computes on a GPU or TPU."""
    return not runtime_info()["device"].startswith("cpu:")


def jit_compile_setting() -> bool | str:
    """`Model.compile(jit_compile=...)` for this backend and device.

    Measured on 2 CPU cores (TensorFlow 2.21): XLA made depthwise-separable variants 2-4x slower
    to train and doubled compile time, so TensorFlow on CPU runs without it; elsewhere Keras decides.
    """
    if keras.backend.backend() == "tensorflow" and not on_accelerator():
        return False
    return "auto"


def resolve_precision(requested: str) -> str:
    """Keras dtype policy for ``requested``; ``auto`` is ``mixed_bfloat16`` on an accelerator, else ``float32``."""
    if requested != "auto":
        return requested
    return "mixed_bfloat16" if on_accelerator() else "float32"
