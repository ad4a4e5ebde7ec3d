"""One Optuna trial: sample a design, cost it, skip it when infeasible, else train and record it."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import keras
import optuna

from xsearch.common.interrupt import raise_if_requested
from xsearch.model.space import SearchSpace
from xsearch.study.asha import continuable, next_promotion
from xsearch.study.early_stop import cost_metrics
from xsearch.study.failures import TrialFailure, classify_failure
from xsearch.study.fit import EpochTimer
from xsearch.study.keras_callbacks import StopDominated, StopRequested, SuccessiveHalving
from xsearch.study.record import FailureReason, TrialAttr
from xsearch.study.repeats import repeated_results, setup_digest, trained_twin
from xsearch.study.retries import budget_trials, retry_interrupted, worker_identity
from xsearch.study.spec import StudySpec, constraint_metric
from xsearch.study.trainer import Trainer

CallbackFactory = Callable[[optuna.Trial], list[keras.callbacks.Callback]]
OOM_CONSTRAINT = "oom"
STOPPED_CONSTRAINT = "stopped"
# 1 when a scored latency target could not run the design (`StudySpec.scored_latency_targets`)
RUNTIME_CONSTRAINT = "runtime"
_UNTRAINED = {TrialAttr.VAL_ACCURACY: 0.0, TrialAttr.THROUGHPUT: 0.0}
"""The accuracy and throughput objectives of a design that was not trained."""


def constraint_violations(
    constraints: dict[str, float], record: dict[str, Any]
) -> dict[str, float]:
    """One value per hard constraint, relative to its bound: <= 0 when satisfied."""
    return {
        key: float(record[constraint_metric(key)]) / bound - 1.0
        for key, bound in sorted(constraints.items())
    }


class StudyObjective:
    """The callable given to `optuna.Study.optimize` for one study.

    Every trial carries the constraint ``oom`` (1 when the design ran out of memory, else 0) next
    to the study's own, so that constraint-aware samplers stop proposing designs that do not fit.
    A design already trained under the same set-up is not trained again (`xsearch.study.repeats`).
    With the study's ``early_stop`` rule a design that a trained one dominates stops training
    (`xsearch.study.early_stop`), and with its ``asha`` rule a design that ranks low at a rung
    (`xsearch.study.asha`); such a study's trials carry the constraint ``stopped`` too (1 for a
    stopped trial), so that a partly trained design never stands on the front. With the rule's
    ``continue_stopped``, a trial of a design that the rule stopped continues that training instead of
    repeating it, and a repeat queues the best stopped trial to continue (`xsearch.study.asha.next_promotion`).
    The ``trainer`` costs and trains the designs (`xsearch.study.trainer.KerasTrainer`).
    """

    def __init__(
        self,
        spec: StudySpec,
        space: SearchSpace,
        trainer: Trainer,
        callbacks: CallbackFactory | None = None,
    ) -> None:
        self.spec = spec
        self.space = space
        self.trainer = trainer
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
        trials = trial.study.get_trials(deepcopy=False)
        twin = trained_twin(trials, trial.params, self.digest)
        if twin is not None and not continuable(twin, trials, self.spec.asha):
            return self._repeat(trial, twin, started)
        record: dict[str, Any] = {
            TrialAttr.CONFIG: config.to_json(),
            TrialAttr.SEED: self.spec.seed + trial.number,
            TrialAttr.IMAGE_SIZE: self.spec.data.image_size,
            TrialAttr.BATCH_SIZE: self.spec.training.batch_size,
            TrialAttr.SETUP_DIGEST: self.digest,
            **self.trainer.trial_record(),
        }
        # continues the stopped twin: recorded at once, so that no other worker does too
        if twin is not None:
            trial.set_user_attr(TrialAttr.CONTINUES, twin.number)
            record.update(
                {TrialAttr.CONTINUES: twin.number, TrialAttr.SEED: twin.user_attrs[TrialAttr.SEED]}
            )
        stopping = self.spec.early_stop is not None or self.spec.asha is not None
        targets = bool(self.spec.scored_latency_targets)
        constraints = dict.fromkeys(
            (
                *sorted(self.spec.constraints),
                OOM_CONSTRAINT,
                *[STOPPED_CONSTRAINT] * stopping,
                *[RUNTIME_CONSTRAINT] * targets,
            ),
            0.0,
        )
        try:
            record.update(self.trainer.cost(config, record[TrialAttr.SEED]))
            constraints.update(constraint_violations(self.spec.constraints, record))
            if targets and any(
                "error" in record[TrialAttr.LATENCY_TARGETS][t]
                for t in self.spec.scored_latency_targets
            ):
                constraints[RUNTIME_CONSTRAINT] = 1.0
            record[TrialAttr.FEASIBLE] = all(value <= 0 for value in constraints.values())
            if record[TrialAttr.FEASIBLE]:
                result = self.trainer.train(trial, record, self._training_callbacks(trial, record))
                record.update({k: v for k, v in vars(result).items() if v is not None})
                if twin is not None:
                    _join_curves(record, twin)
                else:
                    _join_resumed(record)
                if stopping and trial.user_attrs.get(TrialAttr.STOPPED_AT_EPOCH) is not None:
                    constraints[STOPPED_CONSTRAINT] = 1.0
            else:
                record.update({TrialAttr.FAILURE_REASON: FailureReason.CONSTRAINT, **_UNTRAINED})
        except Exception as error:
            # a signal's KeyboardInterrupt that landed in a lock or a finaliser can surface as another error
            raise_if_requested()
            reason = classify_failure(error)
            record.update(
                {
                    TrialAttr.FAILURE_REASON: reason,
                    TrialAttr.ERROR: f"{type(error).__name__}: {error}"[:1000],
                }
            )
            if reason != FailureReason.OOM or TrialAttr.PARAMS not in record:
                raise TrialFailure(reason, str(error)) from error
            constraints[OOM_CONSTRAINT] = 1.0  # infeasible: teaches the sampler
            record.update(
                {
                    TrialAttr.FEASIBLE: False,
                    **_UNTRAINED,
                    TrialAttr.LATENCY_MS: record.get(TrialAttr.LATENCY_MS, float("inf")),
                }
            )
        finally:
            record[TrialAttr.WALL_TIME_S] = time.perf_counter() - started
            for key, value in record.items():
                trial.set_user_attr(key, value)
            for key, value in constraints.items():
                trial.set_constraint(key, value)  # Optuna's samplers and best_trials read these
            self.trainer.release()
        return tuple(float(record[objective.metric]) for objective in self.spec.objective_list)

    def _training_callbacks(
        self, trial: optuna.Trial, record: dict[str, Any]
    ) -> list[keras.callbacks.Callback]:
        """A stop a signal asked for, the epoch recorder, the caller's callbacks, then the study's stopping rules."""
        callbacks = [StopRequested(), _EpochRecorder(trial, record), *self.callbacks(trial)]
        costs = {metric: float(record[metric]) for metric in cost_metrics(self.spec)}
        epochs = self.spec.training.epochs
        if self.spec.early_stop is not None:
            callbacks.append(StopDominated(trial, self.spec.early_stop, costs, self.digest, epochs))
        if self.spec.asha is not None:
            callbacks.append(SuccessiveHalving(trial, self.spec.asha, costs, self.digest, epochs))
        return callbacks

    def _repeat(
        self, trial: optuna.Trial, twin: optuna.trial.FrozenTrial, started: float
    ) -> tuple[float, ...]:
        """Record ``twin``'s results, constraints and values on ``trial``, which repeats its design."""
        for key, value in repeated_results(twin).items():
            trial.set_user_attr(key, value)
        for key, value in twin.constraints.items():
            trial.set_constraint(key, value)
        trial.set_user_attr(TrialAttr.WALL_TIME_S, time.perf_counter() - started)
        if self.spec.asha is not None and self.spec.asha.continue_stopped:
            self._promote(trial.study)
        return tuple(twin.values)

    def _promote(self, study: optuna.Study) -> None:
        """Queue the stopped trial that ranks best at its rung to be continued by the next trial."""
        chosen = next_promotion(
            study.get_trials(deepcopy=False), cost_metrics(self.spec), self.digest
        )
        if chosen is not None:
            study.enqueue_trial(chosen.params, skip_if_exists=False)

    def _check_budget(self, trial: optuna.Trial) -> None:
        """Several workers share one budget: a trial started beyond it is pruned unrun (``surplus``)."""
        ahead = [
            t
            for t in budget_trials(trial.study.get_trials(deepcopy=False), self.digest)
            if t.number < trial.number
        ]
        if len(ahead) >= self.spec.trials:
            trial.set_user_attr(TrialAttr.SURPLUS, True)
            trial.study.stop()
            raise optuna.TrialPruned(f"the study already has its {self.spec.trials} trials")


def _join_curves(record: dict[str, Any], twin: optuna.trial.FrozenTrial) -> None:
    """Make a continuation's curves and epoch count start from the first epoch: the stopped ``twin``'s,
    then its own (unless it could not restore the twin's weights and trained from the start)."""
    start = record.get(TrialAttr.RESUMED_FROM_EPOCH)
    if start is None or start != twin.user_attrs.get(TrialAttr.STOPPED_AT_EPOCH):
        return
    del record[TrialAttr.RESUMED_FROM_EPOCH]
    before = twin.user_attrs.get(TrialAttr.CURVES) or {}
    record[TrialAttr.CURVES] = {
        key: [*before.get(key, [])[:start], *values]
        for key, values in record[TrialAttr.CURVES].items()
    }
    record[TrialAttr.EPOCHS] = start + int(record[TrialAttr.EPOCHS])


def _join_resumed(record: dict[str, Any]) -> None:
    """Make a retry's curves, epoch times and epoch count start from the first epoch: the trial it resumed
    from, then its own (when that trial recorded its ``curves_so_far``; else ``resumed_from_epoch`` stays)."""
    start, so_far = record.get(TrialAttr.RESUMED_FROM_EPOCH), record.get(TrialAttr.CURVES_SO_FAR)
    if not start or not so_far:
        return
    del record[TrialAttr.RESUMED_FROM_EPOCH]
    record[TrialAttr.CURVES] = {
        key: [*so_far.get(key, [])[:start], *values]
        for key, values in record[TrialAttr.CURVES].items()
    }
    record[TrialAttr.EPOCH_TIMES_S] = [
        *so_far.get(TrialAttr.EPOCH_TIMES_S, [])[:start],
        *record[TrialAttr.EPOCH_TIMES_S],
    ]
    record[TrialAttr.EPOCHS] = start + int(record[TrialAttr.EPOCHS])


class _EpochRecorder(EpochTimer):
    """Records after each epoch the number of finished epochs (a retry continues from there), the epoch's
    loss and accuracy (``epoch_logs``, which the progress display reads from the storage) and the curves and
    epoch times from epoch 1 (``curves_so_far``: those of the trial a retry resumed from, then its own)."""

    def __init__(self, trial: optuna.Trial, record: dict[str, Any]) -> None:
        super().__init__()
        self.trial = trial
        self.record = record

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        super().on_epoch_end(epoch, logs)
        logs = logs or {}
        self._record_curves(logs)
        self.trial.set_user_attr(
            TrialAttr.EPOCH_LOGS,
            {
                "epoch": epoch + 1,
                **{key: float(logs[key]) for key in ("loss", "accuracy") if key in logs},
            },
        )
        # last: a worker killed between these writes leaves curves that reach at least ``epochs_done``
        self.trial.set_user_attr(TrialAttr.EPOCHS_DONE, epoch + 1)

    def _record_curves(self, logs: dict) -> None:
        so_far = self.record.get(TrialAttr.CURVES_SO_FAR)
        if so_far is None and self.record.get(TrialAttr.RESUMED_FROM_EPOCH):
            return  # resumed from a trial whose curves are unknown: no curve from epoch 1 to keep
        so_far = {key: list(values) for key, values in (so_far or {}).items()}
        for key, value in logs.items():
            so_far.setdefault(key, []).append(float(value))
        so_far.setdefault(TrialAttr.EPOCH_TIMES_S, []).append(
            self.durations[-1] if self.durations else math.nan
        )
        self.record[TrialAttr.CURVES_SO_FAR] = so_far
        self.trial.set_user_attr(TrialAttr.CURVES_SO_FAR, so_far)
