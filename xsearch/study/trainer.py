"""Where a trial's design is costed and trained: the `Trainer` seam and its Keras implementation.

`xsearch.study.objective.StudyObjective` runs the search logic of a trial (sampling, repeats,
constraints, stopping rules, records) and asks a `Trainer` for the two things that need a model:
the design's costs, and its training. `KerasTrainer` builds and trains the model; the replay
benchmark (`benchmarks/search_efficiency.py`) answers from a table of trained designs instead.
"""

from __future__ import annotations

import gc
import math
import os
from pathlib import Path
from typing import Any, Protocol

import keras
import optuna
from optuna.artifacts import FileSystemArtifactStore

from xsearch.data import Dataset
from xsearch.deploy.latency_targets import TargetSettings, measure_targets
from xsearch.model.builder import build_model
from xsearch.model.config import XceptionConfig
from xsearch.model.costs import model_costs
from xsearch.model.device import resolve_precision, runtime_info
from xsearch.model.device_latency import measure_latency
from xsearch.model.weights import inherit_weights, inherited_layers, input_normalization
from xsearch.study.artifacts import keep_trial_model
from xsearch.study.fit import TrainResult, train_and_evaluate, with_normalization
from xsearch.study.keras_callbacks import Checkpoint, checkpoint_path, trial_checkpoint_files
from xsearch.study.record import TrialAttr, target_latency_attr
from xsearch.study.retries import retried_from
from xsearch.study.spec import LatencySpec, StudySpec


class Trainer(Protocol):
    """Costs and trains the designs of one study's trials, one trial at a time."""

    def trial_record(self) -> dict[str, Any]:
        """What every trial records about the data and the runtime (`TrialAttr` keys)."""

    def cost(self, config: XceptionConfig, seed: int) -> dict[str, Any]:
        """The design's costs before training: params, MACs, FLOPs, latency (`TrialAttr` keys)."""

    def train(
        self, trial: optuna.Trial, record: dict[str, Any], callbacks: list[keras.callbacks.Callback]
    ) -> TrainResult:
        """Train the design last costed, calling ``callbacks`` as Keras' `fit` does; add to ``record``
        what the training started from (e.g. ``resumed_from_epoch``)."""

    def release(self) -> None:
        """Free what the trial held."""


def target_settings(spec: StudySpec) -> TargetSettings:
    """How the study's `[latency]` targets time a design (the remote token read from its environment variable)."""
    latency = spec.latency or LatencySpec()
    return TargetSettings(
        batch_size=spec.latency_batch,
        threads=latency.threads,
        repeats=latency.repeats,
        remote_url=latency.remote_url,
        remote_format=latency.remote_format,
        remote_token=os.environ.get(latency.remote_token_env),
    )


def target_records(measured: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The trial record of measured targets: their details, and each median (inf where it failed) under its own key."""
    record: dict[str, Any] = {TrialAttr.LATENCY_TARGETS: measured}
    for target, result in measured.items():
        record[target_latency_attr(target)] = float(result.get("median_ms", math.inf))
    return record


class KerasTrainer:
    """Builds each design as a Keras model, times it, and trains it on ``dataset``.

    Each epoch's weights are checkpointed in ``<out_dir>/checkpoints`` until the trial ends, so that
    a retry of a trial whose worker died continues from its last epoch (and removes that trial's checkpoints
    once it has trained); a trial that a stopping rule stopped keeps its checkpoint when the study continues
    stopped trials (``[asha] continue_stopped``), until a trial continuing it ends. With the study's
    ``weights``, each design inherits what matches (`xsearch.model.weights`), and with its ``[transfer]``
    schedule those layers are frozen first (a retry resumes in the phase of its checkpoint). With a
    ``store``, the trained model is kept as an Optuna artifact (`xsearch.study.artifacts`).
    """

    def __init__(
        self,
        spec: StudySpec,
        dataset: Dataset,
        out_dir: Path,
        store: FileSystemArtifactStore | None = None,
    ) -> None:
        self.spec, self.dataset, self.store = spec, dataset, store
        self.checkpoints = out_dir / "checkpoints"
        self.model: keras.Model | None = None
        # the layers of `model` that inherited weights
        self.inherited: list[keras.layers.Layer] = []
        self.mean, self.std = input_normalization(spec.weights, dataset.mean, dataset.std)
        self.target_settings = target_settings(spec)

    def trial_record(self) -> dict[str, Any]:
        return {
            TrialAttr.DATASET: self.dataset.name,
            TrialAttr.NUM_CLASSES: self.dataset.num_classes,
            TrialAttr.NORM_MEAN: self.mean,
            TrialAttr.NORM_STD: self.std,
            **runtime_info(),
            TrialAttr.PRECISION: resolve_precision(self.spec.precision),
        }  # what `cost` builds in

    def cost(self, config: XceptionConfig, seed: int) -> dict[str, Any]:
        keras.config.set_dtype_policy(resolve_precision(self.spec.precision))
        keras.utils.set_random_seed(seed)
        size = self.spec.data.image_size
        core = build_model(
            config,
            (size, size, 3),
            self.dataset.num_classes,
            bn_momentum=self.spec.training.bn_momentum,
        )
        record: dict[str, Any] = dict(model_costs(core))
        self.inherited = []
        if self.spec.weights:
            inherited = inherit_weights(core, self.spec.weights)
            self.inherited = inherited_layers(core, inherited)
            record.update(
                {
                    TrialAttr.WEIGHTS_SOURCE: self.spec.weights,
                    TrialAttr.PARAMS_INHERITED: inherited.params_inherited,
                    TrialAttr.LAYERS_INHERITED: inherited.layers_inherited,
                }
            )
        self.model = with_normalization(core, self.mean, self.std)
        latency = measure_latency(self.model, batch_size=self.spec.latency_batch)
        record.update(
            {
                TrialAttr.LATENCY_MS: latency["latency_ms"],
                TrialAttr.LATENCY_P90_MS: latency["latency_p90_ms"],
                TrialAttr.LATENCY_BATCH: latency["batch_size"],
                TrialAttr.LATENCY_CV: latency["latency_cv"],
                TrialAttr.LATENCY_OVERHEAD_MS: latency["overhead_ms"],
            }
        )
        if self.spec.latency_targets:
            record.update(
                target_records(
                    measure_targets(self.model, self.spec.latency_targets, self.target_settings)
                )
            )
        return record

    def train(
        self, trial: optuna.Trial, record: dict[str, Any], callbacks: list[keras.callbacks.Callback]
    ) -> TrainResult:
        model, self.model = self.model, None
        if model is None:
            raise RuntimeError("KerasTrainer.train called before cost: there is no model to train.")
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        trials = trial.study.get_trials(deepcopy=False)
        sources = [retried_from(trials[trial.number]), record.get(TrialAttr.CONTINUES)]
        initial_epoch = self._restore(trials, sources, model, record)
        result = train_and_evaluate(
            model,
            self.dataset,
            self.spec.training,
            record[TrialAttr.SEED],
            [Checkpoint(self.checkpoints, trial.number), *callbacks],
            initial_epoch=initial_epoch,
            transfer=self.spec.transfer,
            inherited=self.inherited,
        )
        if self.store is not None:
            keep_trial_model(trial.study, trial, model, self.store)
        rule = self.spec.asha
        if not (
            rule is not None
            and rule.continue_stopped
            and initial_epoch + result.epochs < self.spec.training.epochs
        ):
            self._remove_checkpoints(trial.number)
        for source in sources:  # what this trial continued: its checkpoints served
            if source is not None:
                self._remove_checkpoints(source)
        return result

    def release(self) -> None:
        self.model, self.inherited = None, []
        keras.backend.clear_session()
        gc.collect()

    def _remove_checkpoints(self, number: int) -> None:
        for path in trial_checkpoint_files(self.checkpoints, number):
            path.unlink(missing_ok=True)

    def _restore(
        self,
        trials: list[optuna.trial.FrozenTrial],
        sources: list[int | None],
        model: keras.Model,
        record: dict[str, Any],
    ) -> int:
        """Load the furthest checkpoint of ``sources``: the trial this one retries and the stopped trial it
        continues (``record``'s ``continues``); the epoch to continue from (0: none found). It is the epoch the
        source's ``epochs_done`` names, and the source's curves up to it go in ``record``'s ``curves_so_far``, for
        the curves to start from epoch 1."""
        found = [
            (int(trials[n].user_attrs.get(TrialAttr.EPOCHS_DONE, 0)), n)
            for n in sources
            if n is not None
        ]
        usable = [
            (done, n)
            for done, n in found
            if 0 < done < self.spec.training.epochs
            and checkpoint_path(self.checkpoints, n, done).exists()
        ]
        if not usable:
            return 0
        epochs_done, source = max(usable)
        model.load_weights(str(checkpoint_path(self.checkpoints, source, epochs_done)))
        record[TrialAttr.RESUMED_FROM_EPOCH] = epochs_done
        so_far = trials[source].user_attrs.get(TrialAttr.CURVES_SO_FAR) or {}
        if so_far and all(len(values) >= epochs_done for values in so_far.values()):
            record[TrialAttr.CURVES_SO_FAR] = {
                key: values[:epochs_done] for key, values in so_far.items()
            }
        return epochs_done
