"""Trials of dead or interrupted workers: failed, retried with the same parameters, counted once.

A RUNNING trial whose worker process on this machine is gone is swept by `sweep_dead_local_trials`
(database storages, direct or through the storage proxy, also by heartbeat, for any machine: Optuna fails the trial,
then `retry_interrupted` retries it).
A retry carries ``retry_of`` and runs before the queued seed trials; a design that
killed its worker on every one of `MAX_RETRY` retries fails (as ``crash`` when swept here). `budget_trials` counts
the trials toward ``--trials``.
"""

from __future__ import annotations

import datetime
import os
import socket
import warnings
from typing import Any

import optuna
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from xsearch.study.optuna_private import enqueued_params, fail_running_trial, replace_enqueued
from xsearch.study.record import FailureReason, TrialAttr, failure_reason, is_repeat

UNCLAIMED_GRACE_S = 300.0
MAX_RETRY = 3


def worker_identity() -> dict[str, Any]:
    """Host and process id, recorded on each trial so that a dead worker's trials can be found."""
    return {TrialAttr.WORKER_HOST: socket.gethostname(), TrialAttr.WORKER_PID: os.getpid()}


def sweep_dead_local_trials(study: optuna.Study) -> int:
    """Fail and retry the RUNNING trials whose worker process on this host is gone; their number.

    On a database storage (direct or through the proxy), trials whose heartbeat stopped (any
    machine) are failed and retried by Optuna's `fail_stale_trials` first; a dead worker of this
    host is found at once either way.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    host = socket.gethostname()
    swept = 0
    # one read for the whole sweep: a fleet's workers on one machine all sweep its dead workers' trials at once
    trials = study.get_trials(deepcopy=False)
    for trial in [t for t in trials if t.state == TrialState.RUNNING]:
        attrs = trial.user_attrs
        if attrs.get(TrialAttr.WORKER_HOST, host) != host or _alive(
            attrs.get(TrialAttr.WORKER_PID)
        ):
            continue
        if TrialAttr.WORKER_PID not in attrs and _age_s(trial) < UNCLAIMED_GRACE_S:
            continue  # just started: its worker is still sampling it and has not recorded its pid yet
        retry = _retries(trials, trial.number) < MAX_RETRY
        try:  # a trial that killed its worker MAX_RETRY times in a row counts as a failure: a crash
            reason = FailureReason.INTERRUPTED if retry else FailureReason.CRASH
            fail_running_trial(study, trial, {TrialAttr.FAILURE_REASON: reason})
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker swept it first
        if retry:
            _enqueue_retry(study, trial.number, trial.params)
        swept += 1
    return swept


def retry_interrupted(study: optuna.Study, trial: optuna.Trial | FrozenTrial) -> None:
    """Enqueue a retry of a trial stopped by Ctrl-C, or failed by its stale heartbeat (the RDB storage's
    ``heartbeat_stale_trial_callback``), unless it already is the last allowed retry."""
    if _retries(study.get_trials(deepcopy=False), trial.number) < MAX_RETRY:
        _enqueue_retry(study, trial.number, trial.params)


def _enqueue_retry(study: optuna.Study, number: int, params: dict[str, Any]) -> None:
    """Enqueue a retry of trial ``number`` ahead of the queued trials that are not retries (seed trials, grid
    points): it takes the place of the first of them, which is enqueued again at the end of the queue.

    So the retry runs next, and is never pruned as surplus because a queued trial ahead of it used the budget.
    """
    retry = {TrialAttr.RETRY_OF: number}
    queued = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if retried_from(t) is None
    ]
    if queued:
        first = queued[0]
        study.enqueue_trial(
            enqueued_params(first), user_attrs=first.user_attrs, skip_if_exists=False
        )
        if replace_enqueued(study, first, params, retry):
            return
    study.enqueue_trial(params, user_attrs=retry, skip_if_exists=False)


def _retries(trials: list[FrozenTrial], number: int) -> int:
    """How many retries in a row led to trial ``number`` (``trials``: all the study's, in number order)."""
    count, source = 0, retried_from(trials[number])
    while source is not None:
        count, source = count + 1, retried_from(trials[source])
    return count


def retried_from(trial: FrozenTrial) -> int | None:
    """The number of the failed trial this one retries, if any (``retry_of``, or Optuna's own heartbeat retry of a
    study that an earlier xsearch ran)."""
    number = trial.user_attrs.get(TrialAttr.RETRY_OF)
    if number is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            number = RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)
    return None if number is None else int(number)


def budget_trials(trials: list[FrozenTrial], digest: str | None = None) -> list[FrozenTrial]:
    """The trials that count towards ``--trials``: finished or running, except failed trials that
    were retried (their retry counts), surplus trials that never ran, repeats of a trained design and,
    given the set-up ``digest`` of this run, failed trials of another set-up (a run whose set-up
    failed every trial, e.g. a bad flag, leaves the corrected run its whole budget)."""
    retried = {retried_from(t) for t in trials} - {None}
    counted = []
    for trial in trials:
        if (
            trial.user_attrs.get(TrialAttr.SURPLUS)
            or is_repeat(trial)
            or trial.state in (TrialState.WAITING, TrialState.PRUNED)
        ):
            continue
        if trial.state == TrialState.FAIL and (
            trial.number in retried
            or failure_reason(trial) == FailureReason.INTERRUPTED
            or (
                digest is not None
                and trial.user_attrs.get(TrialAttr.SETUP_DIGEST, digest) != digest
            )
        ):
            continue
        counted.append(trial)
    return counted


def _age_s(trial: FrozenTrial) -> float:
    started = trial.datetime_start
    return float("inf") if started is None else (datetime.datetime.now() - started).total_seconds()


def _alive(pid: object) -> bool:
    """Whether process ``pid`` runs on this host (a zombie, killed but not yet reaped, is dead)."""
    if not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True
