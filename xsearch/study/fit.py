"""Trains and evaluates one model on a `Dataset` within a `TrainingSpec` budget."""

from __future__ import annotations

import dataclasses
import math
import statistics
import time
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np

from xsearch.data import BatchStream, Dataset
from xsearch.model.device import jit_compile_setting
from xsearch.study.failures import TrialFailure
from xsearch.study.record import FailureReason
from xsearch.study.spec import TrainingSpec, TransferSpec


@dataclasses.dataclass
class TrainResult:
    curves: dict[str, list[float]]
    val_accuracy: float
    val_top5: float | None
    test_accuracy: float | None
    test_top5: float | None
    throughput: float
    compile_time_s: float
    train_time_s: float
    epochs: int
    # training time of each epoch (the first of each phase includes compilation), validation excluded
    epoch_times_s: list[float]
    frozen_params: int | None = (
        None  # with a transfer schedule: the parameters of the frozen layers ...
    )
    frozen_epochs: int | None = (
        None  # ... and the epochs of the training (from its first) that ran with them frozen
    )


@dataclasses.dataclass(frozen=True)
class _Phase:
    """Epochs ``[start, end)`` of a training, compiled once with ``spec`` (its ``epochs`` = the phase's)."""

    start: int
    end: int
    spec: TrainingSpec
    frozen: bool


def _phases(spec: TrainingSpec, transfer: TransferSpec | None) -> list[_Phase]:
    """One phase, or with ``transfer`` two: the frozen epochs at the spec's rate (and warm-up), then the
    rest at the fine-tune rate. Each phase has its own schedule: a cosine decays over the phase."""
    if transfer is None:
        return [_Phase(0, spec.epochs, spec, frozen=False)]
    cut = transfer.frozen_epochs
    fine_tune = dataclasses.replace(
        spec,
        epochs=spec.epochs - cut,
        learning_rate=transfer.fine_tune_learning_rate,
        warmup_epochs=0,
    )
    return [
        _Phase(0, cut, dataclasses.replace(spec, epochs=cut), frozen=True),
        _Phase(cut, spec.epochs, fine_tune, frozen=False),
    ]


def with_normalization(core: keras.Model, mean: Any, std: Any) -> keras.Model:
    """``core`` behind a per-channel `Normalization` layer, so the model takes raw 0-255 pixels."""
    inputs = keras.Input(core.input_shape[1:], name="pixels")
    mean, std = np.asarray(mean, np.float32), np.asarray(std, np.float32)
    normalize = keras.layers.Normalization(mean=mean, variance=np.square(std), name="normalize")
    return keras.Model(inputs, core(normalize(inputs)), name=f"{core.name}_classifier")


def compile_model(
    model: keras.Model, spec: TrainingSpec, steps_per_epoch: int, num_classes: int
) -> None:
    """Compile with the spec's optimizer, learning-rate schedule, loss and metrics."""
    total_steps = max(1, spec.epochs * steps_per_epoch)
    learning_rate: Any = spec.learning_rate
    if spec.schedule == "cosine":
        warmup = min(spec.warmup_epochs * steps_per_epoch, total_steps - 1)
        learning_rate = keras.optimizers.schedules.CosineDecay(
            0.0 if warmup else spec.learning_rate,
            total_steps - warmup,
            warmup_target=spec.learning_rate if warmup else None,
            warmup_steps=warmup,
        )
    if spec.optimizer == "sgd":
        optimizer = keras.optimizers.SGD(
            learning_rate, momentum=0.9, nesterov=True, weight_decay=spec.weight_decay or None
        )
    elif spec.optimizer == "adamw":
        optimizer = keras.optimizers.AdamW(learning_rate, weight_decay=spec.weight_decay)
    else:
        optimizer = keras.optimizers.Adam(learning_rate, weight_decay=spec.weight_decay or None)
    metrics: list[Any] = ["accuracy"]
    if num_classes > 5:
        metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(5, name="top5"))
    model.compile(
        optimizer,
        keras.losses.SparseCategoricalCrossentropy(),
        metrics=metrics,
        jit_compile=jit_compile_setting(),
    )


class _StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Ends training after an epoch whose loss is NaN/inf.

    Checked per epoch, not per batch like `keras.callbacks.TerminateOnNaN`: a per-batch hook makes
    Keras fetch the logs from the device after every step, which slows short steps measurably.
    """

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if not math.isfinite(float((logs or {}).get("loss", 0.0))):
            self.model.stop_training = True


class EpochTimer(keras.callbacks.Callback):
    """Training time of each epoch, up to the start of its validation pass."""

    def __init__(self) -> None:
        super().__init__()
        self.durations: list[float] = []  # over every `fit` of a training (its phases)
        self._start: float | None = None

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_test_begin(self, logs: dict | None = None) -> None:
        self._stop()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._start is not None:
            self.durations.append(time.perf_counter() - self._start)
            self._start = None


def train_and_evaluate(
    model: keras.Model,
    dataset: Dataset,
    spec: TrainingSpec,
    seed: int,
    callbacks: list[keras.callbacks.Callback] = (),  # type: ignore[assignment]
    workers: int = 2,
    initial_epoch: int = 0,
    transfer: TransferSpec | None = None,
    inherited: Sequence[keras.layers.Layer] = (),
) -> TrainResult:
    """Fit ``model`` (raw-pixel input) on the train split, validating after each epoch, then test it.

    Training batches are all full (each epoch reshuffles, so the images left over differ), so the
    training step is compiled once, not a second time for a smaller last batch.
    Throughput counts epochs after the first (which includes compilation; with ``transfer``, the first of
    each phase); their extra time is reported as ``compile_time_s``. A NaN/inf loss raises
    `TrialFailure(FailureReason.NAN)`.
    ``initial_epoch`` > 0 continues a training whose weights were restored from a checkpoint, from the
    same point of the learning-rate schedule (the optimizer's moments start afresh).

    With ``transfer``, the ``inherited`` layers are frozen (``trainable = False``; BatchNormalization
    then runs in inference mode) for the first ``transfer.frozen_epochs``, and everything trains at
    ``transfer.fine_tune_learning_rate`` after them (`_phases`; the model is compiled again, and the
    first epoch of each phase carries a compilation). Callbacks see one training: epochs numbered on,
    and a callback that stops the training stops it for good. A continued training resumes in the
    phase of ``initial_epoch``.
    """
    if not isinstance(spec.batch_size, int):
        raise ValueError(
            f"training.batch_size {spec.batch_size!r} must be resolved to an integer before training."
        )
    batch_size = spec.batch_size
    train_batch = min(batch_size, len(dataset.y_train))
    train = BatchStream(
        dataset.x_train,
        dataset.y_train,
        train_batch,
        augment=spec.augment,
        shuffle=True,
        seed=seed,
        workers=workers,
        drop_remainder=True,
    )
    val = BatchStream(dataset.x_val, dataset.y_val, batch_size, workers=workers)
    timer = EpochTimer()
    curves: dict[str, list[float]] = {}
    # the epochs (indices into timer.durations) that compiled a training step
    compiled: list[int] = []
    started = time.perf_counter()
    for phase in _phases(spec, transfer):
        if initial_epoch >= phase.end:
            continue
        for layer in inherited:
            layer.trainable = not phase.frozen
        compile_model(model, phase.spec, len(train), dataset.num_classes)
        _build_training_state(model, *train[0])
        first = max(initial_epoch, phase.start)
        # a continued training continues its schedule
        model.optimizer.iterations.assign((first - phase.start) * len(train))
        compiled.append(len(timer.durations))
        history = model.fit(
            train,
            validation_data=val,
            epochs=phase.end,
            initial_epoch=first,
            verbose=0,
            callbacks=[_StopOnNonFiniteLoss(), timer, *callbacks],
        )
        for key, values in history.history.items():
            curves.setdefault(key, []).extend(float(v) for v in values)
        if model.stop_training:  # a stopping rule, or a NaN/inf loss
            break
    train_time = time.perf_counter() - started
    losses = curves.get("loss", [])
    if not losses or not all(math.isfinite(v) for v in losses):
        raise TrialFailure(
            FailureReason.NAN, f"the training loss became NaN/inf at epoch {len(losses)}"
        )
    compile_time, throughput = _speed(timer.durations, len(train) * train_batch, compiled)
    test_scores: dict[str, float] = {}
    if len(dataset.y_test):
        test = BatchStream(dataset.x_test, dataset.y_test, batch_size, workers=workers)
        test_scores = model.evaluate(test, verbose=0, return_dict=True)
    return TrainResult(
        curves=curves,
        val_accuracy=curves["val_accuracy"][-1],
        val_top5=curves["val_top5"][-1] if "val_top5" in curves else None,
        test_accuracy=_maybe(test_scores.get("accuracy")),
        test_top5=_maybe(test_scores.get("top5")),
        throughput=throughput,
        compile_time_s=compile_time,
        train_time_s=train_time,
        epochs=len(losses),
        epoch_times_s=timer.durations,
        frozen_params=None
        if transfer is None
        else sum(layer.count_params() for layer in inherited),
        frozen_epochs=None
        if transfer is None
        else min(transfer.frozen_epochs, initial_epoch + len(losses)),
    )


def _build_training_state(model: keras.Model, x: np.ndarray, y: np.ndarray) -> None:
    """Create the optimizer's and the compiled metrics' variables before `fit` traces its step.

    Keras on TensorFlow otherwise creates them during the first trace of the training step, and
    tf.function then traces the whole step a second time. Measured on 2 CPU cores for a tiny design
    (16x16 digits, 2 epochs): compile time 5.6 s -> 3.3 s, the whole training 7.8 s -> 5.8 s.
    `fit` resets the metrics, so the one label used here leaves no trace in the results.
    """
    model.optimizer.build(model.trainable_variables)
    predictions = keras.ops.zeros((1, *model.output_shape[1:]), dtype=model.outputs[0].dtype)
    model.compute_metrics(x[:1], y[:1], predictions, sample_weight=None)


def _speed(
    durations: list[float], images_per_epoch: int, compiled: Sequence[int] = (0,)
) -> tuple[float, float]:
    """(compile time, training images/s) from epoch durations; the ``compiled`` epochs carry a compilation."""
    steady_epochs = [d for i, d in enumerate(durations) if i not in compiled]
    if not steady_epochs:
        return 0.0, images_per_epoch / statistics.median(durations)
    steady = statistics.median(steady_epochs)
    return sum(
        max(0.0, durations[i] - steady) for i in compiled if i < len(durations)
    ), images_per_epoch / steady


def _maybe(value: Any) -> float | None:
    return None if value is None else float(value)
