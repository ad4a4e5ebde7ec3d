"""Optuna callbacks that end a worker's run: budget reached, failures or repeats in a row,
recycling due, a full disk."""

from __future__ import annotations

import datetime
import errno
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import optuna
from optuna.trial import FrozenTrial

from xsearch.study.record import FailureReason, TrialAttr, failure_reason, is_repeat
from xsearch.study.retries import budget_trials, worker_identity

FAILURE_STREAK_WARNING = 3


class RepeatStreak:
    """An Optuna callback that stops this worker after ``limit`` repeats of trained designs in a row."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self.stopped = False

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.count = self.count + 1 if is_repeat(trial) else 0
        if self.count >= self.limit:
            self.stopped = True
            study.stop()


class Recycler:
    """An Optuna callback that stops this process after ``limit`` trials of its own (``None``: never);
    repeats of trained designs, which hold no memory, do not count."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.ran = 0
        self.due = False

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.ran += not is_repeat(trial)
        if self.limit is not None and self.ran >= self.limit:
            self.due = True
            study.stop()


def stop_at_budget(trials: int, digest: str):
    """An Optuna callback that stops this worker once the study has its ``trials`` (of set-up ``digest``)."""

    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        if len(budget_trials(study.get_trials(deepcopy=False), digest)) >= trials:
            study.stop()

    return callback


class FailureStreak:
    """Warns loudly after consecutive failures of one kind; stops the worker at ``max_failures``.

    The streak counts this machine's trials, and goes on from the ones in ``history`` (a
    recycled or restarted worker continues its predecessor's streak).
    """

    def __init__(self, max_failures: int | None, history: Sequence[FrozenTrial] = ()) -> None:
        self.max_failures = max_failures
        self.reason: str | None = None
        self.count = 0
        self.stopped = False
        self.message = ""
        host = worker_identity()[TrialAttr.WORKER_HOST]
        ours = [
            t
            for t in history
            if t.datetime_complete is not None
            and t.user_attrs.get(TrialAttr.WORKER_HOST) == host
            and failure_reason(t) != FailureReason.INTERRUPTED
            and not is_repeat(t)
        ]
        for trial in sorted(ours, key=lambda t: t.datetime_complete or datetime.datetime.min):
            self._add(trial)

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        if is_repeat(trial):  # ran nothing: leaves the streak as it is
            return
        reason = self._add(trial)
        self.stopped = (
            reason is not None and self.max_failures is not None and self.count >= self.max_failures
        )
        if reason is None or not (self.stopped or self.count >= FAILURE_STREAK_WARNING):
            return
        self.message = (
            f"{self.count} trials in a row failed with reason {reason!r} "
            f"(last: trial {trial.number}: {trial.user_attrs.get(TrialAttr.ERROR, reason)})"
        )
        if self.stopped:
            self.message += f"; stopping: --max-failures {self.max_failures} reached"
            study.stop()
        else:
            print(f"xsearch: WARNING: {self.message}", file=sys.stderr, flush=True)

    def _add(self, trial: FrozenTrial) -> str | None:
        """Count ``trial`` into the streak; its failure reason (``None``: it ended the streak)."""
        reason = failure_reason(trial)
        if reason in (None, FailureReason.CONSTRAINT) or trial.user_attrs.get(TrialAttr.SURPLUS):
            self.reason, self.count = None, 0
            return None
        self.count = self.count + 1 if reason == self.reason else 1
        self.reason = reason
        return reason


def no_space(error: BaseException | None) -> bool:
    """Whether ``error``, or an error it was raised from or while handling, is a full disk (ENOSPC)."""
    while error is not None:
        if isinstance(error, OSError) and error.errno == errno.ENOSPC:
            return True
        error = error.__cause__ or error.__context__
    return False


def stop_when_disk_full(out_dir: Path):
    """An Optuna callback that ends the run with OSError(ENOSPC) naming ``out_dir`` when a trial failed because the
    disk is full: every further trial would fail the same way, each taking one of the study's trials."""

    def callback(study: optuna.Study, trial: FrozenTrial) -> None:
        if os.strerror(errno.ENOSPC) in str(trial.user_attrs.get(TrialAttr.ERROR, "")):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(out_dir))

    return callback
