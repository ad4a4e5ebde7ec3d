"""Live progress of a study: trial k of N, the running trial's epoch and metrics, best and front size.

Trials count as `xsearch.study.storage.budget_trials` counts them; repeats of a trained design
(`xsearch.study.repeats`) and trials stopped early (`xsearch.study.early_stop`) are shown apart.

Shown with rich on a terminal; silent otherwise (logs get the final table only).
"""

from __future__ import annotations

import sys
from typing import Any

import keras
import optuna
from rich.console import Console
from rich.live import Live

from xsearch.study.repeats import is_repeat
from xsearch.study.early_stop import is_stopped
from xsearch.results.pareto import pareto_front
from xsearch.study.storage import budget_trials


class Progress:
    """Status line updated by the study (per trial) and by a Keras callback (per epoch)."""

    def __init__(self, total_trials: int, epochs: int, enabled: bool | None = None) -> None:
        self.total = total_trials
        self.epochs = epochs
        self.enabled = sys.stdout.isatty() if enabled is None else enabled
        self.state: dict[str, Any] = {"trial": None, "done": 0, "repeats": 0, "stopped": 0, "best": None,
                                      "front": 0, "epoch": None}
        self._live: Live | None = None

    def __enter__(self) -> Progress:
        if self.enabled:
            self._live = Live(self._text(), console=Console(), refresh_per_second=4, transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def trial_started(self, trial: optuna.Trial) -> list[keras.callbacks.Callback]:
        """Callbacks for the trial's `fit`, reporting each epoch."""
        self.update(trial=trial.number, epoch=None)
        return [_EpochReporter(self)]

    def trial_finished(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        """Optuna callback: refresh after each trial."""
        self.refresh(study)

    def refresh(self, study: optuna.Study) -> None:
        """Recount finished trials, repeats and early stops, best accuracy and front size from the storage."""
        trials = study.get_trials(deepcopy=False)
        accuracies = [t.user_attrs.get("val_accuracy", 0.0) for t in trials
                      if t.state == optuna.trial.TrialState.COMPLETE and t.user_attrs.get("feasible", True)]
        done = len([t for t in budget_trials(trials) if t.state.is_finished()])
        front = len(pareto_front(study)) if accuracies else 0
        self.update(done=done, repeats=sum(map(is_repeat, trials)),
                    stopped=sum(is_stopped(t) and not is_repeat(t) for t in trials),
                    best=max(accuracies, default=None), front=front, trial=None, epoch=None)

    def update(self, **values: Any) -> None:
        self.state.update(values)
        if self._live is not None:
            self._live.update(self._text())

    def _text(self) -> str:
        s = self.state
        parts = [f"trials {s['done']}/{self.total}"]
        if s["repeats"]:
            parts.append(f"{s['repeats']} repeated designs not retrained")
        if s["stopped"]:
            parts.append(f"{s['stopped']} stopped early (dominated)")
        if s["trial"] is not None:
            parts.append(f"running trial {s['trial']}")
            if s["epoch"] is not None:
                parts.append(f"epoch {s['epoch']}/{self.epochs} loss {s['loss']:.4f} acc {s['acc']:.3f}")
        if s["best"] is not None:
            parts.append(f"best val acc {s['best']:.4f}")
        parts.append(f"front {s['front']}")
        return " | ".join(parts)


class _EpochReporter(keras.callbacks.Callback):
    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        logs = logs or {}
        self.progress.update(epoch=epoch + 1, loss=float(logs.get("loss", float("nan"))),
                              acc=float(logs.get("accuracy", float("nan"))))
