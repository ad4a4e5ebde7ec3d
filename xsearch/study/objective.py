"""One Optuna trial: sample a design, cost it, skip it when infeasible, else train and record it."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import keras
import optuna
from optuna.artifacts import FileSystemArtifactStore

from xsearch.data import Dataset
from xsearch.model.builder import build_model
from xsearch.model.config import XceptionConfig
from xsearch.model.costs import model_costs
from xsearch.model.device import resolve_precision, runtime_info
from xsearch.model.latency import measure_latency
from xsearch.model.space import SearchSpace
from xsearch.model.weights import inherit_weights
from xsearch.study.artifacts import keep_trial_model
from xsearch.study.callbacks import StopDominated
from xsearch.study.early_stop import cost_metrics
from xsearch.study.failures import TrialFailure, classify_failure
from xsearch.study.record import FailureReason, TrialAttr
from xsearch.study.repeats import repeated_results, setup_digest, trained_twin
from xsearch.study.retries import budget_trials, retried_from, retry_interrupted, worker_identity
from xsearch.study.spec import CONSTRAINTS, StudySpec
from xsearch.study.training import train_and_evaluate, with_normalization

CallbackFactory = Callable[[optuna.Trial], list[keras.callbacks.Callback]]
OOM_CONSTRAINT = "oom"
_UNTRAINED = {TrialAttr.VAL_ACCURACY: 0.0, TrialAttr.THROUGHPUT: 0.0}
"""The accuracy and throughput objectives of a design that was not trained."""


def constraint_violations(constraints: dict[str, float], record: dict[str, Any]) -> dict[str, float]:
    """One value per hard constraint, relative to its bound: <= 0 when satisfied."""
    return {key: float(record[CONSTRAINTS[key]]) / bound - 1.0 for key, bound in sorted(constraints.items())}


class StudyObjective:
    """The callable given to `optuna.Study.optimize` for one study.

    Every trial carries the constraint ``oom`` (1 when the design ran out of memory, else 0) next
    to the study's own, so that constraint-aware samplers stop proposing designs that do not fit.
    A trained model is kept as an Optuna artifact (see `xsearch.study.artifacts` for what is pruned).
    A design already trained under the same set-up is not trained again (`xsearch.study.repeats`), and
    with the study's ``early_stop`` rule a design that a trained one dominates stops training
    (`xsearch.study.early_stop`).
    Each epoch's weights are checkpointed in ``<run folder>/checkpoints`` until the trial ends, so
    that a retry of a trial whose worker died continues from its last epoch.
    """

    def __init__(self, spec: StudySpec, space: SearchSpace, dataset: Dataset, out_dir: Path,
                 callbacks: CallbackFactory | None = None, store: FileSystemArtifactStore | None = None) -> None:
        self.spec = spec
        self.store = store
        self.space = space
        self.dataset = dataset
        self.checkpoints = out_dir / "checkpoints"
        self.callbacks = callbacks or (lambda trial: [])
        self.digest = setup_digest(spec)

    def __call__(self, trial: optuna.Trial) -> tuple[float, ...]:
        try:
            return self._run(trial)
        except KeyboardInterrupt:  # Ctrl-C: not counted, and retried when the study resumes
            trial.set_user_attr(TrialAttr.FAILURE_REASON, FailureReason.INTERRUPTED)
            retry_interrupted(trial.study, trial)
            raise

    def _run(self, trial: optuna.Trial) -> tuple[float, ...]:
        for key, value in worker_identity().items():
            trial.set_user_attr(key, value)
        self._check_budget(trial)
        started = time.perf_counter()
        config = self.space.sample(trial)
        twin = trained_twin(trial.study.get_trials(deepcopy=False), trial.params, self.digest)
        if twin is not None:
            return self._repeat(trial, twin, started)
        keras.config.set_dtype_policy(resolve_precision(self.spec.precision))
        record: dict[str, Any] = {
            TrialAttr.CONFIG: config.to_json(), TrialAttr.SEED: self.spec.seed + trial.number,
            TrialAttr.DATASET: self.dataset.name, TrialAttr.IMAGE_SIZE: self.spec.data.image_size,
            TrialAttr.BATCH_SIZE: self.spec.training.batch_size, TrialAttr.NUM_CLASSES: self.dataset.num_classes,
            TrialAttr.NORM_MEAN: self.dataset.mean.tolist(), TrialAttr.NORM_STD: self.dataset.std.tolist(),
            TrialAttr.SETUP_DIGEST: self.digest, **runtime_info(),
        }
        constraints = {key: 0.0 for key in (*sorted(self.spec.constraints), OOM_CONSTRAINT)}
        keras.utils.set_random_seed(record[TrialAttr.SEED])
        try:
            constraints.update(self._cost(config, record))
            record[TrialAttr.FEASIBLE] = all(value <= 0 for value in constraints.values())
            if record[TrialAttr.FEASIBLE]:
                self._train(trial, record)
            else:
                record.update({TrialAttr.FAILURE_REASON: FailureReason.CONSTRAINT, **_UNTRAINED})
        except Exception as error:
            reason = classify_failure(error)
            record.update({TrialAttr.FAILURE_REASON: reason, TrialAttr.ERROR: f"{type(error).__name__}: {error}"[:1000]})
            if reason != FailureReason.OOM or TrialAttr.PARAMS not in record:
                raise TrialFailure(reason, str(error)) from error
            constraints[OOM_CONSTRAINT] = 1.0  # infeasible: teaches the sampler
            record.update({TrialAttr.FEASIBLE: False, **_UNTRAINED,
                           TrialAttr.LATENCY_MS: record.get(TrialAttr.LATENCY_MS, float("inf"))})
        finally:
            record[TrialAttr.WALL_TIME_S] = time.perf_counter() - started
            for key, value in record.items():
                trial.set_user_attr(key, value)
            for key, value in constraints.items():
                trial.set_constraint(key, value)  # Optuna's samplers and best_trials read these
            keras.backend.clear_session()
            gc.collect()
        return tuple(float(record[objective.metric]) for objective in self.spec.objective_list)

    def _repeat(self, trial: optuna.Trial, twin: optuna.trial.FrozenTrial, started: float) -> tuple[float, ...]:
        """Record ``twin``'s results, constraints and values on ``trial``, which repeats its design."""
        for key, value in repeated_results(twin).items():
            trial.set_user_attr(key, value)
        for key, value in twin.constraints.items():
            trial.set_constraint(key, value)
        trial.set_user_attr(TrialAttr.WALL_TIME_S, time.perf_counter() - started)
        return tuple(twin.values)

    def _check_budget(self, trial: optuna.Trial) -> None:
        """Several workers share one budget: a trial started beyond it is pruned unrun (``surplus``)."""
        ahead = [t for t in budget_trials(trial.study.get_trials(deepcopy=False)) if t.number < trial.number]
        if len(ahead) >= self.spec.trials:
            trial.set_user_attr(TrialAttr.SURPLUS, True)
            trial.study.stop()
            raise optuna.TrialPruned(f"the study already has its {self.spec.trials} trials")

    def _cost(self, config: XceptionConfig, record: dict[str, Any]) -> dict[str, float]:
        """Build the model, record params/MACs/latency; the study's constraint values."""
        size = self.spec.data.image_size
        core = build_model(config, (size, size, 3), self.dataset.num_classes,
                           bn_momentum=self.spec.training.bn_momentum)
        record.update(model_costs(core))
        if self.spec.weights:
            inherited = inherit_weights(core, self.spec.weights)
            record.update({TrialAttr.WEIGHTS_SOURCE: self.spec.weights,
                           TrialAttr.PARAMS_INHERITED: inherited.params_inherited,
                           TrialAttr.LAYERS_INHERITED: inherited.layers_inherited})
        self.model = with_normalization(core, self.dataset.mean, self.dataset.std)
        latency = measure_latency(self.model, batch_size=self.spec.latency_batch)
        record.update({TrialAttr.LATENCY_MS: latency["latency_ms"], TrialAttr.LATENCY_P90_MS: latency["latency_p90_ms"],
                       TrialAttr.LATENCY_BATCH: latency["batch_size"]})
        return constraint_violations(self.spec.constraints, record)

    def _train(self, trial: optuna.Trial, record: dict[str, Any]) -> None:
        model, self.model = self.model, None
        self.checkpoints.mkdir(parents=True, exist_ok=True)
        initial_epoch = self._restore(trial, model, record)
        checkpoint = self.checkpoints / f"trial-{trial.number}.weights.h5"
        callbacks = [keras.callbacks.ModelCheckpoint(str(checkpoint), save_weights_only=True),
                     _EpochRecorder(trial), *self.callbacks(trial)]
        if self.spec.early_stop is not None:
            costs = {metric: float(record[metric]) for metric in cost_metrics(self.spec)}
            callbacks.append(StopDominated(trial, self.spec.early_stop, costs, self.digest, self.spec.training.epochs))
        result = train_and_evaluate(model, self.dataset, self.spec.training, record[TrialAttr.SEED], callbacks,
                                    initial_epoch=initial_epoch)
        record.update({k: v for k, v in vars(result).items() if v is not None})
        if self.store is not None:
            keep_trial_model(trial.study, trial, model, self.store)
        checkpoint.unlink(missing_ok=True)

    def _restore(self, trial: optuna.Trial, model: keras.Model, record: dict[str, Any]) -> int:
        """Load the last epoch checkpoint of the trial this one retries; the epoch to continue from."""
        source = retried_from(trial.study.get_trials(deepcopy=False)[trial.number])
        if source is None:
            return 0
        path = self.checkpoints / f"trial-{source}.weights.h5"
        dead = trial.study.get_trials(deepcopy=False)[source]
        epochs_done = int(dead.user_attrs.get(TrialAttr.EPOCHS_DONE, 0))
        if not path.exists() or not 0 < epochs_done < self.spec.training.epochs:
            return 0
        model.load_weights(str(path))
        record[TrialAttr.RESUMED_FROM_EPOCH] = epochs_done
        return epochs_done


class _EpochRecorder(keras.callbacks.Callback):
    """Records after each epoch the number of finished epochs (a retry continues from there) and the
    epoch's loss and accuracy (``epoch_logs``, which the progress display reads from the storage)."""

    def __init__(self, trial: optuna.Trial) -> None:
        super().__init__()
        self.trial = trial

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        self.trial.set_user_attr(TrialAttr.EPOCHS_DONE, epoch + 1)
        self.trial.set_user_attr(TrialAttr.EPOCH_LOGS, {"epoch": epoch + 1, **{
            key: float(logs[key]) for key in ("loss", "accuracy") if key in logs}})
