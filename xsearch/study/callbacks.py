"""Keras callbacks that a trial's training runs with, recording on the Optuna trial."""

from __future__ import annotations

from collections.abc import Mapping

import keras
import optuna
from optuna.trial import TrialState

from xsearch.study.early_stop import dominating_trial
from xsearch.study.record import TrialAttr
from xsearch.study.spec import EarlyStopSpec


class StopDominated(keras.callbacks.Callback):
    """Ends the trial's training after an epoch at which a trained design dominates it (`xsearch.study.early_stop`)."""

    def __init__(self, trial: optuna.Trial, rule: EarlyStopSpec, costs: Mapping[str, float], digest: str,
                 epochs: int) -> None:
        super().__init__()
        self.trial, self.rule, self.costs, self.digest, self.epochs = trial, rule, dict(costs), digest, epochs

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        done = epoch + 1
        accuracy = (logs or {}).get("val_accuracy")
        if done < self.rule.after_epochs or done >= self.epochs or accuracy is None:
            return
        trials = self.trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        found = dominating_trial(trials, self.costs, float(accuracy), done, self.rule.margin, self.digest, self.epochs)
        if found is not None:
            self.trial.set_user_attr(TrialAttr.STOPPED_AT_EPOCH, done)
            self.trial.set_user_attr(TrialAttr.STOPPED_BY, found.number)
            self.model.stop_training = True
