"""Study files (`studies/*.toml`): what to search, on which data, with which budget and objectives.

Values are layered "command line > study file > defaults": `load_study_spec` reads a file over the
defaults of these dataclasses, and `StudySpec.override` applies the command line.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

import optuna

from xsearch.common.resources import load_toml, resolve, unknown_keys_error
from xsearch.deploy.latency_targets import TARGETS, TRAIN_DEVICE
from xsearch.deploy.runtimes import REMOTE_FORMATS
from xsearch.model.config import MIN_INPUT_SIZE, XceptionConfig
from xsearch.study.record import StudyAttr, TrialAttr, target_latency_attr


@dataclasses.dataclass(frozen=True)
class ObjectiveSpec:
    """A study objective: the trial attribute it reads (``metric``) and its direction."""

    metric: str
    direction: Literal["maximize", "minimize"]


OBJECTIVES = {
    "accuracy": ObjectiveSpec(TrialAttr.VAL_ACCURACY, "maximize"),
    "params": ObjectiveSpec(TrialAttr.PARAMS, "minimize"),
    "latency": ObjectiveSpec(TrialAttr.LATENCY_MS, "minimize"),
    "flops": ObjectiveSpec(TrialAttr.FLOPS, "minimize"),
    "throughput": ObjectiveSpec(TrialAttr.THROUGHPUT, "maximize"),
}
CONSTRAINTS = {
    "max_params": TrialAttr.PARAMS,
    "max_flops": TrialAttr.FLOPS,
    "max_latency_ms": TrialAttr.LATENCY_MS,
}
TARGET_OBJECTIVE, TARGET_CONSTRAINT = (
    "latency@",
    "max_latency_ms@",
)  # + a `[latency]` target: "latency@litert-cpu"


def objective_spec(name: str) -> ObjectiveSpec:
    """The objective of that name: one of `OBJECTIVES`, or ``latency@TARGET`` (minimised latency on a target)."""
    if name.startswith(TARGET_OBJECTIVE):
        return ObjectiveSpec(target_latency_attr(name.removeprefix(TARGET_OBJECTIVE)), "minimize")
    return OBJECTIVES[name]


def constraint_metric(key: str) -> str:
    """The attr a constraint bounds: one of `CONSTRAINTS`, or ``max_latency_ms@TARGET``."""
    if key.startswith(TARGET_CONSTRAINT):
        return target_latency_attr(key.removeprefix(TARGET_CONSTRAINT))
    return CONSTRAINTS[key]


def _target_of(name: str, prefix: str) -> str | None:
    return name.removeprefix(prefix) if name.startswith(prefix) else None


SAMPLERS = ("tpe", "nsga2", "gp", "random", "grid")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("cosine", "constant")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
MAX_EPOCHS = 10_000
MAX_IMAGE_SIZE = 1024  # 299 in the paper; a side beyond this is a typo, and its data cache would not fit in memory


def doc_field(
    default: Any = None,
    doc: str = "",
    *,
    valid: Any = None,
    factory: Callable[[], Any] | None = None,
    in_file: bool = True,
) -> Any:
    """A field of a study file's table with its documentation, which the docs' study-file reference renders
    (`docs/hooks.py`): ``doc``, one line; ``valid``, the valid values (a tuple of them, a sentence, or
    ``"module:NAME"`` for a tuple defined elsewhere); ``in_file=False`` for a field that is not a key of the file."""
    metadata = {"doc": doc, "valid": valid, "in_file": in_file}
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _check_choices(key: str, values: tuple[str, ...], valid: Any) -> None:
    for value in values:
        if value not in valid:
            raise ValueError(f"{key}: unknown value {value!r}; valid: {', '.join(valid)}.")


def _check_range(key: str, value: Any, low: int, high: int, high_name: str = "") -> None:
    """An integer in [low, high]; ``high_name`` says where the upper bound comes from."""
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        bound = f"{high_name} = {high}" if high_name else str(high)
        raise ValueError(f"{key} must be an integer in [{low}, {bound}]; received {value!r}.")


def _check_positive(key: str, value: Any, integer: bool = False, alternative: str = "") -> None:
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not 0 < value < math.inf:
        kind = "an integer" if integer else "a number"
        raise ValueError(
            f"{key} must be {kind} > 0{' or ' + alternative if alternative else ''}; received {value!r}."
        )


def _check_epochs_before_end(key: str, value: Any, epochs: int, why: str = "") -> None:
    """An epoch count that the training must outlast (with ``why``): an integer in [1, training.epochs - 1]."""
    if not (isinstance(value, int) and 1 <= value < epochs):
        raise ValueError(
            f"{key} must be an integer in [1, training.epochs - 1 = {epochs - 1}]{why}; received {value!r}."
        )


@dataclasses.dataclass(frozen=True)
class DataSpec:
    """The data set the designs train on: decoded once into a uint8 cache, split by the seed (`xsearch.data`)."""

    source: str = doc_field(
        "digits",
        "Where the images come from: `tfds:<name>` is a TensorFlow Datasets name.",
        valid="xsearch.data.loader:SOURCES",
    )
    image_size: int = doc_field(
        32,
        "Side of the square images every source is resized to (299 in the paper).",
        valid=f"an integer in [{MIN_INPUT_SIZE}, {MAX_IMAGE_SIZE}]",
    )
    data_dir: str | None = doc_field(
        None,
        "The folder of the `folder`, `arrays`, `imagenet-npz`, `fashion-mnist`, `mnist` and "
        "`tfds` sources (`--data-dir`).",
        valid="a path (`~` is expanded)",
    )
    val_fraction: float = doc_field(
        0.1,
        "Share of the training images carved off for validation, when the source has no "
        "validation split.",
        valid="in (0, 0.9)",
    )
    test_fraction: float = doc_field(
        0.1,
        "Share of the training images carved off for testing, when the source has no test split.",
        valid="in [0, 0.9)",
    )
    max_train: int | None = doc_field(
        None,
        "Keep this many training images (stratified); not set: all of them.",
        valid="an integer > 0",
    )
    split_seed: int | None = doc_field(
        None,
        "Seed of the splits and of the `max_train` subsample, when they must not change "
        "with `seed`; not set: the study's `seed`.",
        valid="an integer in [0, 2**32 - 1]",
    )
    max_bad_fraction: float = doc_field(
        0.05,
        "Unreadable image files are left out with a warning; more than this share of the "
        "files is an error (`xsearch.data.load_dataset`).",
        valid="in [0, 1)",
    )
    layout: str = doc_field("NHWC", "The `arrays` source's image layout.", valid=("NHWC", "NCHW"))

    def __post_init__(self) -> None:
        _check_range("data.image_size", self.image_size, MIN_INPUT_SIZE, MAX_IMAGE_SIZE)
        if self.max_train is not None:
            _check_positive("data.max_train", self.max_train, integer=True)
        if self.split_seed is not None:
            _check_range("data.split_seed", self.split_seed, 0, 2**32 - 1)
        if not 0 < self.val_fraction < 0.9:  # every trial is scored on the validation split
            raise ValueError(
                f"data.val_fraction must be in (0, 0.9); received {self.val_fraction!r}."
            )
        if not 0 <= self.test_fraction < 0.9:
            raise ValueError(
                f"data.test_fraction must be in [0, 0.9); received {self.test_fraction!r}."
            )


@dataclasses.dataclass(frozen=True)
class TrainingSpec:
    """How every design trains: the same recipe for each, so that their accuracies compare."""

    epochs: int = doc_field(
        10,
        "Epochs each design trains (fewer when a stopping rule stops it).",
        valid=f"an integer in [1, {MAX_EPOCHS}]",
    )
    batch_size: int | str = doc_field(
        64,
        'Training batch; `"auto"`: the fastest batch that fits, probed once per study '
        "on the first worker's device (`xsearch.study.batch_size`, `--batch-size`).",
        valid='an integer > 0, or "auto"',
    )
    optimizer: str = doc_field("adam", "The Keras optimizer.", valid=OPTIMIZERS)
    learning_rate: float = doc_field(
        1e-3,
        "The peak learning rate, used as given (scale it with the batch yourself).",
        valid="a number > 0",
    )
    weight_decay: float = doc_field(
        0.0,
        "Weight decay of the optimizer (Keras' decoupled weight decay; 0: none).",
        valid="a number >= 0",
    )
    schedule: str = doc_field(
        "cosine",
        "The learning-rate schedule over the epochs (over each phase with `[transfer]`).",
        valid=SCHEDULES,
    )
    warmup_epochs: int = doc_field(
        0,
        "Epochs of linear warm-up before the schedule.",
        valid="an integer in [0, training.epochs]",
    )
    augment: bool = doc_field(True, "Random flip and crop of the training images.")
    bn_momentum: float = doc_field(
        0.9,
        "BatchNormalization's momentum: Keras' 0.99 lags the weights in trainings of a few "
        "hundred steps (validation accuracy can stay at chance), so set it to suit the steps.",
        valid="in (0, 1)",
    )

    def __post_init__(self) -> None:
        _check_choices("training.optimizer", (self.optimizer,), OPTIMIZERS)
        _check_choices("training.schedule", (self.schedule,), SCHEDULES)
        _check_range("training.epochs", self.epochs, 1, MAX_EPOCHS)
        _check_range(
            "training.warmup_epochs", self.warmup_epochs, 0, self.epochs, "training.epochs"
        )
        if self.batch_size != "auto":
            _check_positive(
                "training.batch_size", self.batch_size, integer=True, alternative="'auto'"
            )
        _check_positive("training.learning_rate", self.learning_rate)
        if not (isinstance(self.weight_decay, (int, float)) and 0 <= self.weight_decay < math.inf):
            raise ValueError(
                f"training.weight_decay must be a number >= 0; received {self.weight_decay!r}."
            )
        if not 0 < self.bn_momentum < 1:
            raise ValueError(
                f"training.bn_momentum must be in (0, 1); received {self.bn_momentum!r}."
            )


@dataclasses.dataclass(frozen=True)
class EarlyStopSpec:
    """Stop a trial that an already trained design beats on every objective (`xsearch.study.early_stop`)."""

    after_epochs: int = doc_field(
        3, "The first check, after this epoch.", valid="an integer in [1, training.epochs - 1]"
    )
    margin: float = doc_field(
        0.02,
        "Accuracy (a fraction) by which a design that costs no more must lead, both after the "
        "same epoch and at its end.",
        valid="in (0, 1)",
    )

    def __post_init__(
        self,
    ) -> None:  # after_epochs is bounded by training.epochs: checked by StudySpec
        if not 0 < self.margin < 1:
            raise ValueError(
                f"early_stop.margin must be in (0, 1) (accuracy, as a fraction); received {self.margin!r}."
            )


@dataclasses.dataclass(frozen=True)
class AshaSpec:
    """Asynchronous successive halving over epochs, promoting by Pareto rank (`xsearch.study.asha`)."""

    min_epochs: int = doc_field(
        1,
        "The first rung: rungs at `min_epochs`, `min_epochs * reduction_factor`, ... epochs.",
        valid="an integer in [1, training.epochs - 1]",
    )
    reduction_factor: int = doc_field(
        2,
        "Only the top `1 / reduction_factor` at a rung continue; 2 (keep half) was the best "
        "of those replayed (benchmarks/RESULTS.md).",
        valid="an integer >= 2",
    )
    continue_stopped: bool = doc_field(
        True,
        "A stopped design that the sampler proposes again, or that is promoted on a "
        "repeat, continues from its checkpoint.",
    )

    def __post_init__(
        self,
    ) -> None:  # min_epochs is bounded by training.epochs: checked by StudySpec
        if not (isinstance(self.reduction_factor, int) and self.reduction_factor >= 2):
            raise ValueError(
                f"asha.reduction_factor must be an integer >= 2; received {self.reduction_factor!r}."
            )


@dataclasses.dataclass(frozen=True)
class TransferSpec:
    """Transfer learning from ``weights``: the inherited layers frozen first, then all fine-tuned
    (`xsearch.study.fit`)."""

    frozen_epochs: int = doc_field(
        2,
        "Epochs in which only the layers that inherited nothing train (the head, and layers "
        "whose shapes did not match).",
        valid="an integer in [1, training.epochs - 1]",
    )
    fine_tune_learning_rate: float = doc_field(
        1e-4, "Every layer trains at this rate after the frozen epochs.", valid="a number > 0"
    )

    def __post_init__(
        self,
    ) -> None:  # frozen_epochs is bounded by training.epochs: checked by StudySpec
        _check_positive("transfer.fine_tune_learning_rate", self.fine_tune_learning_rate)


@dataclasses.dataclass(frozen=True)
class LatencySpec:
    """Where latency is measured besides the training device (`xsearch.deploy.latency_targets`), and how."""

    targets: tuple[str, ...] = doc_field(
        (),
        "Targets timed on every trial and recorded, besides those the objectives and "
        "constraints name (which are scored).",
        valid=TARGETS,
    )
    threads: int = doc_field(
        1,
        "CPU threads of the `cpu`, `litert-cpu` and `onnxruntime-cpu` targets (and asked of a remote "
        "server).",
        valid="an integer > 0",
    )
    repeats: int = doc_field(
        30, "Timed calls per target, after 10 warm-up calls.", valid="an integer > 0"
    )
    remote_url: str | None = doc_field(
        None,
        "The `xsearch latency-server` of the `remote` target (required by it).",
        valid="an http:// or https:// URL",
    )
    remote_format: str = doc_field("tflite", "What the remote target runs.", valid=REMOTE_FORMATS)
    remote_token_env: str = doc_field(
        "XSEARCH_LATENCY_TOKEN",
        "The environment variable holding the server's token (never the token itself).",
        valid="a variable name",
    )

    def __post_init__(
        self,
    ) -> None:  # the targets that objectives and constraints name: checked by StudySpec
        if not isinstance(self.targets, (tuple, list)):
            raise ValueError(
                f"latency.targets must be a list of targets; received {self.targets!r}."
            )
        for target in self.targets:
            if target not in TARGETS:
                raise ValueError(
                    f"latency.targets: unknown latency target {target!r}; valid targets: {', '.join(TARGETS)}."
                )
        _check_positive("latency.threads", self.threads, integer=True)
        _check_positive("latency.repeats", self.repeats, integer=True)
        _check_choices("latency.remote_format", (self.remote_format,), REMOTE_FORMATS)
        if self.remote_url is not None and not (
            isinstance(self.remote_url, str) and self.remote_url.startswith(("http://", "https://"))
        ):
            raise ValueError(
                f"latency.remote_url must be an http:// or https:// URL; received {self.remote_url!r}."
            )


TRACKING_SCHEMES = (
    "http://",
    "https://",
    "file:",
    "sqlite:///",
    "postgresql://",
    "mysql://",
    "mssql://",
    "databricks",
)
"""The MLflow tracking URIs that ``[tracking] mlflow_uri`` accepts (a server, a local folder, a database)."""


@dataclasses.dataclass(frozen=True)
class TrackingSpec:
    """Where a study's trials are also logged for the user's own tools (`xsearch.study.tracking`); changes no result,
    so it is not part of the set-up digest."""

    tensorboard: bool = doc_field(
        False,
        "Log every trial for TensorBoard in `<run folder>/tensorboard/trial-<n>/`: Keras' "
        "scalars and the HParams session (`--tensorboard`).",
    )
    mlflow_uri: str | None = doc_field(
        None,
        "An MLflow tracking URI: one parent run per study, one nested run per trial (`--mlflow`).",
        valid=tuple(scheme + "..." for scheme in TRACKING_SCHEMES),
    )
    mlflow_experiment: str | None = doc_field(
        None, 'The MLflow experiment; not set: "xsearch".', valid="a non-empty string"
    )

    def __post_init__(self) -> None:
        """The tracking URI's form (whether its package is installed is checked when a study starts:
        `xsearch.study.tracking`)."""
        uri = self.mlflow_uri
        if uri is not None and not (isinstance(uri, str) and uri.startswith(TRACKING_SCHEMES)):
            raise ValueError(
                f"tracking.mlflow_uri must be an MLflow tracking URI starting with {', '.join(TRACKING_SCHEMES)} "
                f'(e.g. "http://127.0.0.1:5000"); received {uri!r}.'
            )
        experiment = self.mlflow_experiment
        if experiment is not None and not (isinstance(experiment, str) and experiment.strip()):
            raise ValueError(
                f"tracking.mlflow_experiment must be a non-empty string; received {experiment!r}."
            )
        if not isinstance(self.tensorboard, bool):
            raise ValueError(
                f"tracking.tensorboard must be true or false; received {self.tensorboard!r}."
            )

    @property
    def enabled(self) -> bool:
        return self.tensorboard or self.mlflow_uri is not None


@dataclasses.dataclass(frozen=True)
class StudySpec:
    """A study file: what to search, on which data, with which budget and objectives."""

    name: str = doc_field(
        "study",
        "The study's name: the file's name without `.toml` (the run folder is `runs/<name>`).",
        in_file=False,
    )
    description: str = doc_field("", "One line, shown by `xsearch studies`.")
    space: str = doc_field(
        "xception-small",
        "The search space: the name of a shipped space (`search_spaces/`) or the path of "
        "a space's `.toml` file.",
        valid="a shipped space name or a .toml path",
    )
    data: DataSpec = doc_field(DataSpec(), "The data set.")
    training: TrainingSpec = doc_field(TrainingSpec(), "How every design trains.")
    objectives: tuple[str, ...] = doc_field(
        ("accuracy", "params", "latency"),
        "What the study optimises: accuracy and "
        "throughput are maximised, the costs minimised; `latency@TARGET` is the latency on "
        "a `[latency]` target.",
        valid=(*OBJECTIVES, *(TARGET_OBJECTIVE + target for target in TARGETS)),
    )
    constraints: dict[str, float] = doc_field(
        doc="Hard bounds, checked before training: a design over one is infeasible and "
        "is not trained. A table of key = positive number.",
        valid=(*CONSTRAINTS, *(TARGET_CONSTRAINT + target for target in TARGETS)),
        factory=dict,
    )
    sampler: str = doc_field(
        "tpe",
        "The Optuna sampler: `tpe` suits small budgets, `gp` needs PyTorch, `grid` trains each "
        "design of the space exactly once, in a seeded order.",
        valid=SAMPLERS,
    )
    seed_trials: tuple[Any, ...] = doc_field(
        ("paper", "regular", "segments-4"),
        "Designs enqueued first, projected into the "
        "space and scaled down until the constraints hold.",
        valid='"paper", "regular" (the paper with regular convs), "segments-K", or a '
        "table of axis values over the paper point",
    )
    trials: int = doc_field(
        20,
        "The number of trials the study should reach, however many workers share it (`--trials`).",
        valid="an integer > 0",
    )
    timeout: float | None = doc_field(
        None,
        "Seconds after which no trial starts (`--timeout`); not set: no limit.",
        valid="a number > 0",
    )
    seed: int = doc_field(
        0,
        "Seed of the sampler, the splits and the trainings (`--seed`).",
        valid="an integer in [0, 2**32 - 1]",
    )
    latency_batch: int = doc_field(
        1, "The batch at which latency is measured.", valid="an integer > 0"
    )
    max_failures: int | None = doc_field(
        None,
        "Stop a worker after this many consecutive failures of one kind on its machine "
        "(`--max-failures`); not set: never.",
        valid="an integer > 0",
    )
    heartbeat_interval: int = doc_field(
        30,
        "Seconds between a worker's heartbeats on a database storage; a trial is stale "
        "after 3 intervals, then failed and retried.",
        valid="an integer > 0",
    )
    weights: str | None = doc_field(
        None,
        "Start every design from these Xception weights, layer by layer where the shapes "
        "match (`--weights`).",
        valid='"imagenet" or a .h5 / .weights.h5 path',
    )
    precision: str = doc_field(
        "auto",
        "Training precision; `auto`: mixed_bfloat16 on a GPU, float32 on a CPU (`--precision`).",
        valid=PRECISIONS,
    )
    early_stop: EarlyStopSpec | None = doc_field(None, "Stop dominated trials early.")
    asha: AshaSpec | None = doc_field(None, "Successive halving on the front (MO-ASHA).")
    transfer: TransferSpec | None = doc_field(None, "Frozen base, then fine-tune; needs `weights`.")
    latency: LatencySpec | None = doc_field(None, "Latency targets besides the training device.")
    tracking: TrackingSpec | None = doc_field(None, "Log the trials to TensorBoard and MLflow.")

    def __post_init__(self) -> None:
        if not isinstance(self.space, str) or not self.space:
            raise ValueError(
                f'space must be the name of a search space (e.g. "xception-small") or the path of its .toml '
                f"file; received {self.space!r}."
            )
        if (
            isinstance(self.seed, bool)
            or not isinstance(self.seed, int)
            or not 0 <= self.seed < 2**32
        ):
            raise ValueError(f"seed must be an integer in [0, 2**32 - 1]; received {self.seed!r}.")
        for key in ("description", "weights"):
            if not isinstance(getattr(self, key), str) and getattr(self, key) is not None:
                raise ValueError(f"{key} must be a string; received {getattr(self, key)!r}.")
        _check_choices(
            "objectives",
            tuple(o for o in self.objectives if _target_of(o, TARGET_OBJECTIVE) is None),
            [*OBJECTIVES, *(TARGET_OBJECTIVE + t for t in TARGETS)],
        )
        if len(set(self.objectives)) != len(self.objectives) or not self.objectives:
            raise ValueError(
                f"objectives must be a non-empty list without repeats; received {list(self.objectives)}."
            )
        _check_choices(
            "constraints",
            tuple(k for k in self.constraints if _target_of(k, TARGET_CONSTRAINT) is None),
            [*CONSTRAINTS, *(TARGET_CONSTRAINT + t for t in TARGETS)],
        )
        self._check_latency_targets()
        for key, bound in self.constraints.items():
            if isinstance(bound, bool) or not isinstance(bound, (int, float)) or bound <= 0:
                raise ValueError(
                    f"constraints.{key} must be a positive number; received {bound!r}."
                )
        _check_choices("sampler", (self.sampler,), SAMPLERS)
        if self.sampler == "gp" and importlib.util.find_spec("torch") is None:
            raise ValueError(
                "sampler 'gp' needs PyTorch, which is not installed (pip install torch); "
                f"or choose another sampler: {', '.join(s for s in SAMPLERS if s != 'gp')}."
            )
        _check_choices("precision", (self.precision,), PRECISIONS)
        _check_positive("trials", self.trials, integer=True)
        _check_positive("latency_batch", self.latency_batch, integer=True)
        _check_positive("heartbeat_interval", self.heartbeat_interval, integer=True)
        if self.max_failures is not None:
            _check_positive("max_failures", self.max_failures, integer=True)
        for seed in self.seed_trials:
            seed_config(seed)
        if self.timeout is not None:
            _check_positive("timeout", self.timeout)
        # the sections check their own keys; these need the training's epochs
        epochs = self.training.epochs
        if self.early_stop is not None:
            _check_epochs_before_end(
                "early_stop.after_epochs", self.early_stop.after_epochs, epochs
            )
            self._check_stopping_objectives("early_stop")
        if self.asha is not None:
            _check_epochs_before_end("asha.min_epochs", self.asha.min_epochs, epochs)
            self._check_stopping_objectives("asha")
        if self.transfer is not None:
            _check_epochs_before_end(
                "transfer.frozen_epochs",
                self.transfer.frozen_epochs,
                epochs,
                " (some epochs must fine-tune)",
            )

    @property
    def scored_latency_targets(self) -> tuple[str, ...]:
        """The targets besides the training device that an objective or a constraint names: a design that cannot be
        timed on one of them is infeasible."""
        named = [_target_of(o, TARGET_OBJECTIVE) for o in self.objectives]
        named += [_target_of(k, TARGET_CONSTRAINT) for k in self.constraints]
        return tuple(dict.fromkeys(t for t in named if t is not None and t != TRAIN_DEVICE))

    @property
    def latency_targets(self) -> tuple[str, ...]:
        """Every target measured besides the training device: the scored ones, then those ``[latency] targets``
        adds (recorded only)."""
        extra = [t for t in (self.latency or LatencySpec()).targets if t != TRAIN_DEVICE]
        return tuple(dict.fromkeys([*self.scored_latency_targets, *extra]))

    def _check_latency_targets(self) -> None:
        """The latency targets that the objectives and constraints name (`LatencySpec` checks its own), and the
        remote target's URL."""
        for source, prefix, names in (
            ("objectives", TARGET_OBJECTIVE, self.objectives),
            ("constraints", TARGET_CONSTRAINT, tuple(self.constraints)),
        ):
            for target in (t for t in (_target_of(n, prefix) for n in names) if t is not None):
                if target not in TARGETS:
                    raise ValueError(
                        f"{source}: unknown latency target {target!r} in {prefix + target!r}; "
                        f"valid targets: {', '.join(TARGETS)}."
                    )
        if "remote" in self.latency_targets and not (self.latency or LatencySpec()).remote_url:
            raise ValueError(
                "the latency target 'remote' needs [latency] remote_url, the URL of an `xsearch latency-server` "
                '(e.g. remote_url = "http://127.0.0.1:8765").'
            )

    def check_transfer_weights(self) -> None:
        """A ``[transfer]`` schedule needs ``weights`` to transfer (checked once the command line is applied)."""
        if self.transfer is not None and not self.weights:
            raise ValueError(
                "the study has a [transfer] schedule but no weights to transfer: set weights = "
                '"imagenet" or a .h5/.weights.h5 path in the study file (or --weights), '
                "or remove the [transfer] table."
            )

    def _check_stopping_objectives(self, section: str) -> None:
        if "accuracy" not in self.objectives or "throughput" in self.objectives:
            raise ValueError(
                f"{section} needs the accuracy objective and costs known before training "
                f"(params, flops, latency; throughput is measured while training); "
                f"objectives are {list(self.objectives)}."
            )

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-ready values (`from_dict` reads them back); without ``latency`` when there is no
        ``[latency]`` table, so that the specs and digests of studies without one stay as they were; the same
        for ``tracking`` (whose URI is recorded without its password)."""
        values = json.loads(json.dumps(dataclasses.asdict(self)))
        for section in ("latency", "tracking"):
            if getattr(self, section) is None:
                del values[section]
        if values.get("tracking", {}).get("mlflow_uri"):
            values["tracking"]["mlflow_uri"] = re.sub(
                r"(://[^:/@]+):[^@]*@", r"\1:***@", values["tracking"]["mlflow_uri"]
            )
        return values

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "study spec") -> StudySpec:
        """A spec from `to_dict`'s values, checked as a study file is; errors name ``source``."""
        values = dict(data)
        name = str(values.pop("name", "study"))
        for rule in ("early_stop", "asha", "transfer", "latency", "tracking"):
            if values.get(rule) is None:
                values.pop(rule, None)
        try:
            return _from_mapping(values, source, name)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{source}: {error}") from None

    @property
    def objective_list(self) -> list[ObjectiveSpec]:
        return [objective_spec(name) for name in self.objectives]

    def override(self, **values: Any) -> StudySpec:
        """A copy with command-line values (``None`` = not given) on top; an error names the flag.

        ``data_dir`` goes to data, ``batch_size`` (an integer or ``"auto"``) to training, and ``tensorboard``,
        ``mlflow_uri`` to tracking (a ``tensorboard`` of False leaves the study file's setting).
        """
        spec = self
        for key, value in values.items():
            if value is None:
                continue
            try:
                if key == "data_dir":
                    spec = dataclasses.replace(
                        spec, data=dataclasses.replace(spec.data, data_dir=str(value))
                    )
                elif key in ("tensorboard", "mlflow_uri"):
                    if value is False:
                        continue
                    tracking = dataclasses.replace(spec.tracking or TrackingSpec(), **{key: value})
                    spec = dataclasses.replace(spec, tracking=tracking)
                elif key == "batch_size":
                    batch = int(value) if str(value).isdigit() else value
                    spec = dataclasses.replace(
                        spec, training=dataclasses.replace(spec.training, batch_size=batch)
                    )
                else:
                    spec = dataclasses.replace(spec, **{key: value})
            except ValueError as error:
                flag = {"mlflow_uri": "mlflow"}.get(key, key)
                raise ValueError(f"--{flag.replace('_', '-')} {value}: {error}") from None
        return spec


def write_spec(study: optuna.Study, spec: StudySpec) -> None:
    """Record the spec the study runs with (`read_spec` reads it back)."""
    study.set_user_attr(StudyAttr.SPEC, json.dumps(spec.to_dict()))


def read_spec(study: optuna.Study) -> StudySpec:
    """The `StudySpec` recorded on the study; ValueError when the study was not made by ``xsearch run``."""
    text = study.user_attrs.get(StudyAttr.SPEC)
    if not isinstance(text, str):
        raise ValueError(
            f"study {study.study_name!r} has no {StudyAttr.SPEC!r} user attr: it was not made by "
            "xsearch run."
        )
    return StudySpec.from_dict(json.loads(text), source=f"study {study.study_name!r}")


def load_study_spec(name_or_path: str | Path) -> StudySpec:
    """Read a shipped study by name or a study file by path; errors name the file and key."""
    path = resolve("studies", name_or_path)
    data = load_toml(path)
    if "axes" in data and "space" not in data:
        raise ValueError(
            f"{path} is a search-space file ([axes]), not a study file; a study file names it: "
            f'space = "{path}" (a path, or the name of a shipped space), beside [data] and [training].'
        )
    try:
        return _from_mapping(data, str(path), path.stem)
    except (TypeError, ValueError) as error:
        message = str(error)
        raise ValueError(
            message if message.startswith(f"{path}:") else f"{path}: {message}"
        ) from None


def _from_mapping(data: dict[str, Any], source: str, name: str) -> StudySpec:
    top = {field.name for field in dataclasses.fields(StudySpec)} - {"name"}
    values: dict[str, Any] = {"name": name}
    for key, value in data.items():
        if key not in top:
            raise unknown_keys_error(source, key, sorted(top))
        values[key] = value
    for key, kind in (
        ("data", DataSpec),
        ("training", TrainingSpec),
        ("early_stop", EarlyStopSpec),
        ("asha", AshaSpec),
        ("transfer", TransferSpec),
        ("latency", LatencySpec),
        ("tracking", TrackingSpec),
    ):
        if key in values:
            values[key] = _section(kind, key, values[key], source)
    for key in ("objectives", "seed_trials"):
        if key in values:
            if not isinstance(values[key], list):
                raise ValueError(
                    f"{key} must be a list, e.g. {key} = {json.dumps(list(getattr(StudySpec, key)))}; "
                    f"received {values[key]!r}."
                )
            values[key] = tuple(values[key])
    if "constraints" in values and not isinstance(values["constraints"], dict):
        raise ValueError(
            f"constraints must be a table, e.g. constraints = {{ max_params = 5e6 }} (keys: "
            f"{', '.join(CONSTRAINTS)}); received {values['constraints']!r}."
        )
    return StudySpec(**values)


def _section(kind: type, key: str, table: Any, source: str) -> Any:
    if not isinstance(table, dict):
        raise ValueError(f"[{key}] must be a table.")
    fields = {field.name: field for field in dataclasses.fields(kind)}
    for name, value in table.items():
        if name not in fields:
            raise unknown_keys_error(f"{source} [{key}]", name, sorted(fields))
        default = fields[name].default
        if (key, name) == ("training", "batch_size") and isinstance(value, str):
            continue  # "auto", checked with the others by TrainingSpec
        if isinstance(default, tuple) and isinstance(value, list):
            table = {**table, name: tuple(value)}
            continue
        if (
            default is not None
            and type(value) is not type(default)
            and not (
                isinstance(default, float)
                and isinstance(value, int)
                and not isinstance(value, bool)
            )
        ):
            kind_name = {
                int: "an integer",
                float: "a number",
                bool: "true or false",
                str: "a string",
                tuple: "a list",
            }
            raise ValueError(
                f"{key}.{name} must be {kind_name[type(default)]}; received {value!r}."
            )
    return kind(**table)


def seed_config(seed: Any) -> XceptionConfig:
    """A seed trial of ``seed_trials``, before it is projected into the space (`xsearch.study.seeds`):
    ``"paper"``, ``"regular"`` (the paper with regular convs), ``"segments-K"``, or a table of axis
    values over the paper point."""
    paper = XceptionConfig.paper()
    if isinstance(seed, dict):
        source = f"seed_trials: table {seed!r}"
        try:
            return XceptionConfig.from_dict({**paper.to_dict(), **seed}, source=source)
        except ValueError as error:
            raise ValueError(
                str(error) if str(error).startswith(source) else f"{source}: {error}"
            ) from None
    if seed == "paper":
        return paper
    if seed == "regular":
        return dataclasses.replace(paper, segments=1)
    if (
        isinstance(seed, str)
        and seed.startswith("segments-")
        and seed.removeprefix("segments-").isdigit()
    ):
        segments = int(seed.removeprefix("segments-"))
        if segments >= 1:
            return dataclasses.replace(paper, segments=segments)
    raise ValueError(
        f"seed_trials: unknown seed {seed!r}; valid: 'paper', 'regular', 'segments-K' (K >= 1) "
        f"or a table of axis values such as {{ middle_repeats = 2, width = 0.5 }} "
        f"(axes: {', '.join(paper.to_dict())})."
    )
