"""Keras callbacks that a trial's training runs with, recording on the Optuna trial."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import keras
import optuna
from optuna.trial import TrialState

from xsearch.common.interrupt import raise_if_requested
from xsearch.common.quiet import quiet_failed_h5_release
from xsearch.study.asha import RULE_NAME, promoted, rung_points, rungs
from xsearch.study.early_stop import dominating_trial
from xsearch.study.record import TrialAttr
from xsearch.study.spec import AshaSpec, EarlyStopSpec


def checkpoint_path(folder: Path, number: int, epoch: int) -> Path:
    """Where trial ``number``'s weights after ``epoch`` (from 1) are checkpointed."""
    return folder / f"trial-{number}-epoch-{epoch}.weights.h5"


def trial_checkpoint_files(folder: Path, number: int) -> list[Path]:
    """Every checkpoint file of trial ``number`` in ``folder``, a save cut short included."""
    return sorted(folder.glob(f"trial-{number}-epoch-*.weights.h5"))


class Checkpoint(keras.callbacks.Callback):
    """Saves trial ``number``'s weights after every epoch (`checkpoint_path`), whole or not at all: written to a
    partial file, then renamed. The previous epoch's file is kept until the next save, so a worker killed between a
    save and the trial's ``epochs_done`` leaves the checkpoint of the epoch ``epochs_done`` names. A save that fails
    deletes its partial file, and on a full disk h5py's "Exception ignored" traceback for each object of the file,
    which it can no longer release, is dropped (`quiet_failed_h5_release`): the save's OSError ends the run."""

    def __init__(self, folder: Path, number: int) -> None:
        super().__init__()
        self.folder, self.number = folder, number

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        path = checkpoint_path(self.folder, self.number, epoch + 1)
        partial = path.with_name(f"{path.name.removesuffix('.weights.h5')}-partial.weights.h5")
        try:
            with quiet_failed_h5_release():
                self.model.save_weights(str(partial))
        except OSError:
            partial.unlink(missing_ok=True)
            raise
        os.replace(partial, path)
        keep = {path, checkpoint_path(self.folder, self.number, epoch)}
        for old in trial_checkpoint_files(self.folder, self.number):
            if old not in keep:
                old.unlink(missing_ok=True)


class StopRequested(keras.callbacks.Callback):
    """Ends training with KeyboardInterrupt after the batch during which a signal asked the process to stop, in case
    the handler's own KeyboardInterrupt was lost (`xsearch.common.interrupt`)."""

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        raise_if_requested()


class _StoppingRule(keras.callbacks.Callback):
    """Ends the trial's training after an epoch at which its rule says so, recording where and why."""

    rule_name = ""

    def __init__(
        self, trial: optuna.Trial, costs: Mapping[str, float], digest: str, epochs: int
    ) -> None:
        super().__init__()
        self.trial, self.costs, self.digest, self.epochs = trial, dict(costs), digest, epochs
        self.stopped_at: int | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        done = epoch + 1
        accuracy = (logs or {}).get("val_accuracy")
        if done >= self.epochs or accuracy is None or getattr(self.model, "stop_training", False):
            return
        if self.stops(done, float(accuracy)):
            self.stopped_at = done
            self.trial.set_user_attr(TrialAttr.STOPPED_AT_EPOCH, done)
            self.trial.set_user_attr(TrialAttr.STOP_RULE, self.rule_name)
            self.model.stop_training = True

    def stops(self, epoch: int, accuracy: float) -> bool:
        raise NotImplementedError


class StopDominated(_StoppingRule):
    """Stops a trial that a trained design dominates (`xsearch.study.early_stop`)."""

    rule_name = "dominated"

    def __init__(
        self,
        trial: optuna.Trial,
        rule: EarlyStopSpec,
        costs: Mapping[str, float],
        digest: str,
        epochs: int,
    ) -> None:
        super().__init__(trial, costs, digest, epochs)
        self.rule = rule

    def stops(self, epoch: int, accuracy: float) -> bool:
        if epoch < self.rule.after_epochs:
            return False
        trials = self.trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        found = dominating_trial(
            trials, self.costs, accuracy, epoch, self.rule.margin, self.digest, self.epochs
        )
        if found is not None:
            self.trial.set_user_attr(TrialAttr.STOPPED_BY, found.number)
        return found is not None


class SuccessiveHalving(_StoppingRule):
    """Records the trial's accuracy at each rung and stops it where it is not promoted (`xsearch.study.asha`).

    At each rung it records, besides the accuracy, the trial's set-up digest and costs, which trials
    of other workers rank it by while it is still running.
    """

    rule_name = RULE_NAME

    def __init__(
        self,
        trial: optuna.Trial,
        rule: AshaSpec,
        costs: Mapping[str, float],
        digest: str,
        epochs: int,
    ) -> None:
        super().__init__(trial, costs, digest, epochs)
        self.rule = rule
        self.rungs = set(rungs(epochs, rule.min_epochs, rule.reduction_factor))
        self.reached: dict[str, float] = {}

    def stops(self, epoch: int, accuracy: float) -> bool:
        if epoch not in self.rungs:
            return False
        self.reached[str(epoch)] = accuracy
        for key, value in {
            TrialAttr.SETUP_DIGEST: self.digest,
            **self.costs,
        }.items():  # read by trials still running
            self.trial.set_user_attr(key, value)
        self.trial.set_user_attr(TrialAttr.RUNG_ACCURACY, dict(self.reached))
        metrics = list(self.costs)
        others = rung_points(
            self.trial.study.get_trials(deepcopy=False),
            epoch,
            metrics,
            self.digest,
            self.trial.number,
        )
        return not promoted(
            [accuracy, *(self.costs[m] for m in metrics)], others, self.rule.reduction_factor
        )
