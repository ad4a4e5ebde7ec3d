"""The trial record: every attribute xsearch keeps on a trial or a study, with its type.

Optuna stores them as user attrs (JSON values). `TrialAttr` and `StudyAttr` name the keys,
`TrialRecord` and `StudyRecord` give their types, and `FailureReason` the reasons a trial fails;
no other module spells a key. The predicates below answer the questions several layers ask of a
trial (is it a repeat, was it stopped early, is it feasible).
"""

from __future__ import annotations

import math
from enum import StrEnum
from typing import Any, Final, TypedDict

from optuna.trial import FrozenTrial, TrialState


class FailureReason(StrEnum):
    """Why a trial failed or was left out, recorded as ``failure_reason``."""

    NAN = "nan"  # the training loss became NaN/inf
    OOM = "oom"  # out of memory (host or device); the design is marked infeasible
    ERROR = "error"  # any other exception while building, costing or training
    CONSTRAINT = "constraint"  # a hard constraint failed before training: not trained
    INTERRUPTED = "interrupted"  # Ctrl-C or its worker died: retried with the same parameters
    CRASH = "crash"  # killed its worker on every retry


class TrialAttr:
    """The keys of a trial's user attrs (see `TrialRecord` for their types and meaning)."""

    CONFIG: Final = "config"
    SEED: Final = "seed"
    DATASET: Final = "dataset"
    IMAGE_SIZE: Final = "image_size"
    BATCH_SIZE: Final = "batch_size"
    NUM_CLASSES: Final = "num_classes"
    NORM_MEAN: Final = "norm_mean"
    NORM_STD: Final = "norm_std"
    SETUP_DIGEST: Final = "setup_digest"
    BACKEND: Final = "backend"
    BACKEND_VERSION: Final = "backend_version"
    KERAS_VERSION: Final = "keras_version"
    DEVICE: Final = "device"
    PRECISION: Final = "precision"
    PARAMS: Final = "params"
    TRAINABLE_PARAMS: Final = "trainable_params"
    MACS: Final = "macs"
    FLOPS: Final = "flops"
    WEIGHTS_SOURCE: Final = "weights_source"
    PARAMS_INHERITED: Final = "params_inherited"
    LAYERS_INHERITED: Final = "layers_inherited"
    FROZEN_PARAMS: Final = "frozen_params"
    FROZEN_EPOCHS: Final = "frozen_epochs"
    LATENCY_MS: Final = "latency_ms"
    LATENCY_P90_MS: Final = "latency_p90_ms"
    LATENCY_BATCH: Final = "latency_batch"
    LATENCY_CV: Final = "latency_cv"
    LATENCY_OVERHEAD_MS: Final = "latency_overhead_ms"
    LATENCY_TARGETS: Final = "latency_targets"
    FEASIBLE: Final = "feasible"
    FAILURE_REASON: Final = "failure_reason"
    ERROR: Final = "error"
    CURVES: Final = "curves"
    VAL_ACCURACY: Final = "val_accuracy"
    VAL_TOP5: Final = "val_top5"
    TEST_ACCURACY: Final = "test_accuracy"
    TEST_TOP5: Final = "test_top5"
    THROUGHPUT: Final = "throughput"
    COMPILE_TIME_S: Final = "compile_time_s"
    TRAIN_TIME_S: Final = "train_time_s"
    EPOCHS: Final = "epochs"
    EPOCH_TIMES_S: Final = "epoch_times_s"
    WALL_TIME_S: Final = "wall_time_s"
    EPOCHS_DONE: Final = "epochs_done"
    EPOCH_LOGS: Final = "epoch_logs"
    RESUMED_FROM_EPOCH: Final = "resumed_from_epoch"
    CURVES_SO_FAR: Final = "curves_so_far"
    STOPPED_AT_EPOCH: Final = "stopped_at_epoch"
    STOPPED_BY: Final = "stopped_by"
    STOP_RULE: Final = "stop_rule"
    RUNG_ACCURACY: Final = "rung_accuracy"
    CONTINUES: Final = "continues"
    MODEL_ARTIFACT_ID: Final = "model_artifact_id"
    MODEL_SHA256: Final = "model_sha256"
    REPEAT_OF: Final = "repeat_of"
    WORKER_HOST: Final = "worker_host"
    WORKER_PID: Final = "worker_pid"
    SEED_TRIAL: Final = "seed_trial"
    RETRY_OF: Final = "retry_of"
    SURPLUS: Final = "surplus"


class TrialRecord(TypedDict, total=False):
    """What a trial records, by `TrialAttr` key (every key optional: a trial records what it reached)."""

    config: str  # the design, `XceptionConfig.to_json`
    seed: int  # seed of its initialisation and data order
    dataset: str
    image_size: int
    batch_size: int
    num_classes: int
    # per-channel mean and std of the training split (the model's first layer)
    norm_mean: list[float]
    norm_std: list[float]
    setup_digest: str  # what its results depend on besides the design (`xsearch.study.repeats`)
    backend: str  # `xsearch.model.device.RuntimeInfo`
    backend_version: str
    keras_version: str
    device: str
    precision: str
    params: int  # `xsearch.model.costs.ModelCosts`, measured before training
    trainable_params: int
    macs: int
    flops: int
    weights_source: str  # initial weights (``--weights``) and what was inherited from them
    params_inherited: int
    layers_inherited: int
    frozen_params: (
        int  # with a ``[transfer]`` schedule: the inherited parameters frozen at first ...
    )
    frozen_epochs: (
        int  # ... and the epochs of the training (from its first) that ran with them frozen
    )
    latency_ms: float  # median and p90 of timed forward passes at ``latency_batch``
    latency_p90_ms: float
    latency_batch: int
    latency_cv: float  # their standard deviation over mean: the figure's noise
    latency_overhead_ms: (
        float  # the same call path on an identity model (`xsearch.model.device_latency`)
    )
    # per `[latency]` target: runtime, version, threads, batch, figures or error
    latency_targets: dict[str, dict[str, Any]]
    feasible: bool  # every hard constraint holds
    failure_reason: FailureReason
    error: str  # the exception that failed it, shortened
    # Keras history: loss, accuracy, val_loss, val_accuracy, ... per epoch
    curves: dict[str, list[float]]
    val_accuracy: float  # `xsearch.study.fit.TrainResult`
    val_top5: float
    test_accuracy: float
    test_top5: float
    throughput: float  # training images/s, compilation excluded
    compile_time_s: float
    train_time_s: float
    epochs: int
    # training seconds of each epoch run here (the first includes compilation)
    epoch_times_s: list[float]
    wall_time_s: float  # the whole trial: build, cost, train, save
    epochs_done: int  # written after every epoch: a retry continues from there
    # the last finished epoch: epoch, loss, accuracy (the progress display)
    epoch_logs: dict[str, float]
    resumed_from_epoch: (
        int  # a retry that continued from its predecessor's checkpoint (and lacks its curves)
    )
    # written after every epoch: the curves and ``epoch_times_s`` from epoch 1
    curves_so_far: dict[str, list[float]]
    stopped_at_epoch: (
        int  # stopped early after this epoch (`xsearch.study.early_stop`, `xsearch.study.asha`)
    )
    stopped_by: int  # ... because this trial dominated it (the ``dominated`` rule)
    stop_rule: str  # the rule that stopped it: ``dominated`` or ``asha``
    # validation accuracy at each successive-halving rung reached, by epoch
    rung_accuracy: dict[str, float]
    continues: int  # continued the training of this stopped trial (its design, seed and weights) from where it stopped
    model_artifact_id: str  # the kept trained model (`xsearch.study.artifacts`)
    model_sha256: str
    repeat_of: int  # repeated this trial's design: results copied, not trained
    worker_host: str
    worker_pid: int
    seed_trial: bool  # enqueued from the study's ``seed_trials``
    retry_of: int  # retries this failed trial with the same parameters
    surplus: bool  # started after the study had its trials: pruned unrun


class StudyAttr:
    """The keys of a study's user attrs (see `StudyRecord`)."""

    SPEC: Final = "xsearch_spec"
    BATCH_SIZE: Final = "batch_size"
    BATCH_SIZE_PROBE: Final = "batch_size_probe"
    PRUNED_MODELS: Final = "pruned_models"
    EXPORTS: Final = "exports"
    DATA: Final = "data"
    LATENCY_REMEASURED: Final = "latency_remeasured"


class StudyRecord(TypedDict, total=False):
    """What a study records, by `StudyAttr` key."""

    xsearch_spec: str  # the `StudySpec` it was created with, as JSON (`read_spec`)
    batch_size: int  # the probed batch of a ``batch_size = "auto"`` study
    batch_size_probe: dict[str, Any]  # the probe's device, stop reason and images/s per batch
    pruned_models: list[int]  # trials whose kept model was deleted
    exports: list[dict[str, Any]]  # one entry per `xsearch export`
    # what it trains on (`xsearch.data.Dataset.summary`): images per split and class, files left out
    data: dict[str, Any]
    # per front trial number: its latencies timed again at the end of the run
    latency_remeasured: dict[str, dict[str, float]]


ATTEMPT_ATTRS: Final = frozenset(
    {
        TrialAttr.WORKER_HOST,
        TrialAttr.WORKER_PID,
        TrialAttr.SEED_TRIAL,
        TrialAttr.RETRY_OF,
        TrialAttr.SURPLUS,
        TrialAttr.EPOCHS_DONE,
        TrialAttr.EPOCH_LOGS,
        TrialAttr.RESUMED_FROM_EPOCH,
        TrialAttr.CURVES_SO_FAR,
        TrialAttr.WALL_TIME_S,
        TrialAttr.MODEL_ARTIFACT_ID,
        TrialAttr.MODEL_SHA256,
        TrialAttr.REPEAT_OF,
        TrialAttr.CONTINUES,
    }
)
"""Attrs that describe one attempt (who ran it, what it kept), not the design's results."""


def target_latency_attr(target: str) -> str:
    """The attr holding the median latency on a `[latency]` target, e.g. ``latency_ms@litert-cpu``
    (``latency_ms`` itself for ``train-device``, the device that trains the trial)."""
    return TrialAttr.LATENCY_MS if target == "train-device" else f"{TrialAttr.LATENCY_MS}@{target}"


def repeat_of(trial: FrozenTrial) -> int | None:
    """The number of the trial whose design (and results) this one repeats, if any."""
    number = trial.user_attrs.get(TrialAttr.REPEAT_OF)
    return None if number is None else int(number)


def is_repeat(trial: FrozenTrial) -> bool:
    """Whether the trial reused an earlier trial's results instead of training."""
    return repeat_of(trial) is not None


def is_stopped(trial: FrozenTrial) -> bool:
    """Whether the trial was stopped early (its accuracy is that of a partial training)."""
    return trial.user_attrs.get(TrialAttr.STOPPED_AT_EPOCH) is not None


def is_feasible(trial: FrozenTrial) -> bool:
    """Whether the trial is COMPLETE and all its constraint values (if any) are <= 0."""
    return trial.state == TrialState.COMPLETE and all(c <= 0 for c in trial.constraints.values())


def failure_reason(trial: FrozenTrial) -> str | None:
    """The trial's `FailureReason` value, or None."""
    reason = trial.user_attrs.get(TrialAttr.FAILURE_REASON)
    return None if reason is None else str(reason)


def epoch_series(attrs: dict[str, Any], values: list[float] | None) -> list[float]:
    """Per-epoch ``values`` of a trial (a curve, its epoch times) indexed from epoch 1: NaN for the epochs before
    ``resumed_from_epoch``, which a retry whose predecessor left no curves did not record."""
    return [math.nan] * int(attrs.get(TrialAttr.RESUMED_FROM_EPOCH) or 0) + [
        float(v) for v in values or []
    ]
