"""Deployment runtimes: a Keras model converted by Keras' own exporters, loaded in its runtime, and timed there.

Formats: ``savedmodel`` (TensorFlow SavedModel, `Model.export(format="tf_saved_model")`), ``tflite``
(LiteRT flatbuffer, `format="litert"`, run by `ai_edge_litert`'s interpreter with XNNPACK) and ``onnx``
(`format="onnx"`, run by ONNX Runtime's CPU provider). A file's timing is summarised by
`xsearch.common.timing.timing_stats`, as every latency figure of xsearch is.
"""

from __future__ import annotations

import importlib.metadata
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Final

import numpy as np

from xsearch.common.timing import TimingStats, time_calls

if TYPE_CHECKING:  # keras only where a model is converted: a latency server runs the files with numpy and the runtime
    import keras

FORMATS: Final = ("savedmodel", "tflite", "onnx")
REMOTE_FORMATS: Final = (
    "tflite",
    "onnx",
)  # single files, which a latency server takes (a SavedModel is a folder)
SUFFIXES: Final = {
    "savedmodel": "",
    "tflite": ".tflite",
    "onnx": ".onnx",
}  # a SavedModel is a folder
_EXPORT_FORMAT: Final = {"savedmodel": "tf_saved_model", "tflite": "litert", "onnx": "onnx"}
_RUNTIME_PACKAGE: Final = {
    "savedmodel": "tensorflow",
    "tflite": "ai-edge-litert",
    "onnx": "onnxruntime",
}

Predict = Callable[[np.ndarray], np.ndarray]


def runtime_version(fmt: str) -> str:
    """The installed version of the runtime that runs ``fmt`` files."""
    _check_format(fmt)
    package = _RUNTIME_PACKAGE[fmt]
    for name in (package, "tensorflow-cpu") if fmt == "savedmodel" else (package,):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "not installed"


def for_runtimes(model: keras.Model) -> keras.Model:
    """``model`` (pixels -> `Normalization` -> core) with the normalization as a `Rescaling` of the same values.

    A `Normalization` layer built from constants holds them as captured tensors, which the ONNX exporter turns into
    extra graph inputs; `Rescaling` computes the same ``(x - mean) / std`` from constants in the graph. Other models are
    returned as they are. The core is shared, not copied.
    """
    import keras

    layers = model.layers
    if len(layers) != 3 or not isinstance(layers[1], keras.layers.Normalization):
        return model
    normalize = layers[1]
    mean = np.asarray(keras.ops.convert_to_numpy(normalize.mean), np.float64).reshape(-1)
    std = np.maximum(
        np.sqrt(np.asarray(keras.ops.convert_to_numpy(normalize.variance), np.float64).reshape(-1)),
        keras.config.epsilon(),
    )
    inputs = keras.Input(model.input_shape[1:], name="pixels")
    rescale = keras.layers.Rescaling(
        scale=(1.0 / std).tolist(), offset=(-mean / std).tolist(), name="normalize"
    )
    rebuilt = keras.Model(inputs, layers[2](rescale(inputs)), name=model.name)
    # the exporters take only models that were called
    rebuilt(np.zeros((1, *model.input_shape[1:]), np.float32))
    return rebuilt


def convert(model: keras.Model, fmt: str, path: Path) -> float:
    """Write ``model`` to ``path`` in ``fmt`` with Keras' exporter; returns the seconds it took.

    Raises `ConversionError` (with the exporter's reason) when the exporter fails or its runtime is missing.
    """
    _check_format(fmt)
    start = time.perf_counter()
    try:
        for_runtimes(model).export(str(path), format=_EXPORT_FORMAT[fmt], verbose=False)
    except (ImportError, ModuleNotFoundError) as error:
        raise ConversionError(
            f"{fmt}: its exporter needs a package that is not installed ({error}); "
            f"pip install 'xsearch[runtimes]'"
        ) from error
    except Exception as error:  # an exporter's failure is the design's, recorded as a reason
        raise ConversionError(f"{fmt}: {type(error).__name__}: {error}"[:500]) from error
    return time.perf_counter() - start


class ConversionError(RuntimeError):
    """A model that its exporter could not write in the requested format."""


def load_predict(path: Path, fmt: str, threads: int, batch_size: int) -> Predict:
    """A function running the model file at ``path`` in ``fmt``'s runtime on the CPU with ``threads`` threads,
    for inputs of ``batch_size`` images."""
    _check_format(fmt)
    if threads < 1:
        raise ValueError(f"threads must be >= 1; received {threads}.")
    if fmt == "onnx":
        return _onnx_predict(path, threads)
    if fmt == "tflite":
        return _litert_predict(path, threads, batch_size)
    return _savedmodel_predict(path, threads)


def time_model_file(
    path: Path, fmt: str, threads: int, batch_size: int, warmup: int = 10, repeats: int = 50
) -> TimingStats:
    """Latency of the model file at ``path`` in its runtime, on a random batch of ``batch_size`` images."""
    predict = load_predict(path, fmt, threads, batch_size)
    batch = _random_batch(predict_input_shape(path, fmt), batch_size)
    return time_calls(lambda: predict(batch), warmup, repeats)


def predict_input_shape(path: Path, fmt: str) -> tuple[int, ...]:
    """The per-image input shape of a model file (height, width, channels)."""
    if fmt == "onnx":
        import onnxruntime

        shape = (
            onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            .get_inputs()[0]
            .shape
        )
    elif fmt == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        shape = list(Interpreter(model_path=str(path)).get_input_details()[0]["shape"])
    else:
        import tensorflow as tf

        (spec,) = (
            tf.saved_model.load(str(path))
            .signatures["serving_default"]
            .structured_input_signature[1]
            .values()
        )
        shape = spec.shape.as_list()
    return tuple(int(d) for d in shape[1:])


def _random_batch(image_shape: tuple[int, ...], batch_size: int) -> np.ndarray:
    return np.random.default_rng(0).uniform(0, 255, (batch_size, *image_shape)).astype(np.float32)


def _onnx_predict(path: Path, threads: int) -> Predict:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda batch: session.run(None, {name: batch})[0]


def _litert_predict(path: Path, threads: int, batch_size: int) -> Predict:
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=threads)
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    interpreter.resize_tensor_input(source["index"], [batch_size, *source["shape"][1:]])
    interpreter.allocate_tensors()

    def predict(batch: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(source["index"], batch)
        interpreter.invoke()
        return interpreter.get_tensor(target["index"])

    return predict


def _savedmodel_predict(path: Path, threads: int) -> Predict:
    import tensorflow as tf

    try:  # TensorFlow takes its thread counts once per process, before its first op (in a timing child process)
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # already initialised here: it keeps the counts it has
    serve = tf.saved_model.load(str(path)).signatures["serving_default"]
    return lambda batch: next(iter(serve(tf.constant(batch)).values())).numpy()


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise ValueError(f"unknown runtime format {fmt!r}; valid formats: {', '.join(FORMATS)}.")
