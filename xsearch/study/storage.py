"""Where a study lives: the embedded journal file of a run folder, or a database server.

- Default: Optuna's journal storage in ``<run folder>/study.journal``. It needs no server and is
  safe for several worker processes on one machine (SQLite's "database is locked" is not).
  A RUNNING trial whose worker process on this machine is gone is swept (failed and retried).
- ``postgresql://...``, ``mysql+pymysql://...``, ``sqlite:///...``: Optuna's RDB storage with
  heartbeats, so that a trial whose worker died on any machine is failed by heartbeat and retried
  with the same parameters by a live worker.
"""

from __future__ import annotations

import datetime
import os
import random
import re
import socket
import time
import warnings
from pathlib import Path

import optuna
import sqlalchemy.exc
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import FrozenTrial, TrialState

from xsearch.study.repeats import is_repeat

INTERRUPTED = "interrupted"
CRASH = "crash"  # killed its worker process MAX_RETRY times in a row
UNCLAIMED_GRACE_S = 300.0
MAX_RETRY = 3


def open_storage(url: str | None, out_dir: Path, heartbeat_interval: int = 30) -> optuna.storages.BaseStorage:
    """The study storage for ``url`` (``None``: the run folder's journal file)."""
    if url is None or url.endswith(".journal"):
        path = out_dir / "study.journal" if url is None else Path(url.removeprefix("journal:"))
        path.parent.mkdir(parents=True, exist_ok=True)
        backend = optuna.storages.journal.JournalFileBackend(
            str(path), lock_obj=optuna.storages.journal.JournalFileOpenLock(str(path))
        )
        return optuna.storages.JournalStorage(backend)
    if "://" not in url:
        raise ValueError(
            f"storage {url!r} is not a URL: use postgresql://user@host/db, mysql+pymysql://..., "
            "sqlite:///path.db, or a path ending in .journal."
        )
    try:
        return _rdb_storage(url, heartbeat_interval)
    except Exception as error:  # sqlalchemy raises several kinds for bad or unreachable URLs
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"storage {redact(url)} cannot be opened: {reason}") from None


def _rdb_storage(url: str, heartbeat_interval: int, attempts: int = 5) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage with heartbeats.

    Machines that start at once on a new database race to create its tables; the losers get a
    duplicate-table or duplicate-type error and try again, when the tables are there.
    """
    for _ in range(attempts - 1):
        try:
            return _new_rdb_storage(url, heartbeat_interval)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            time.sleep(0.2 + random.random())
    return _new_rdb_storage(url, heartbeat_interval)


def _new_rdb_storage(url: str, heartbeat_interval: int) -> optuna.storages.RDBStorage:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url, heartbeat_interval=heartbeat_interval, grace_period=3 * heartbeat_interval,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=MAX_RETRY),
            engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else None,
        )


def redact(url: str) -> str:
    """The URL without its password."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)


def worker_identity() -> dict[str, object]:
    """Host and process id, recorded on each trial so that a dead worker's trials can be found."""
    return {"worker_host": socket.gethostname(), "worker_pid": os.getpid()}


def sweep_dead_local_trials(study: optuna.Study) -> int:
    """Fail and retry the RUNNING trials whose worker process on this host is gone (journal storage).

    RDB storages do this by heartbeat instead (`optuna.storages.fail_stale_trials`).
    """
    if isinstance(study._storage, optuna.storages.RDBStorage):
        optuna.storages.fail_stale_trials(study)
        return 0
    host = socket.gethostname()
    swept = 0
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.user_attrs.get("worker_host", host) != host or _alive(trial.user_attrs.get("worker_pid")):
            continue
        if "worker_pid" not in trial.user_attrs and _age_s(trial) < UNCLAIMED_GRACE_S:
            continue  # just started: its worker is still sampling it and has not recorded its pid yet
        retry = _retries(study, trial.number) < MAX_RETRY
        try:  # a trial that killed its worker MAX_RETRY times in a row counts as a failure: a crash
            study._storage.set_trial_user_attr(trial._trial_id, "failure_reason", INTERRUPTED if retry else CRASH)
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another worker swept it first
        if retry:
            _enqueue_retry(study, trial.number, trial.params)
        swept += 1
    return swept


def retry_interrupted(study: optuna.Study, trial: optuna.Trial) -> None:
    """Enqueue a retry of a trial stopped by Ctrl-C (unless it already is the last allowed retry)."""
    if _retries(study, trial.number) < MAX_RETRY:
        _enqueue_retry(study, trial.number, trial.params)


def _enqueue_retry(study: optuna.Study, number: int, params: dict) -> None:
    study.enqueue_trial(params, user_attrs={"retry_of": number}, skip_if_exists=False)


def _retries(study: optuna.Study, number: int) -> int:
    """How many retries in a row led to trial ``number``."""
    trials = study.get_trials(deepcopy=False)
    count, source = 0, retried_from(trials[number])
    while source is not None:
        count, source = count + 1, retried_from(trials[source])
    return count


def retried_from(trial: FrozenTrial) -> int | None:
    """The number of the failed trial this one retries, if any (local sweep or heartbeat retry)."""
    number = trial.user_attrs.get("retry_of")
    if number is None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            number = RetryHeartbeatStaleTrialCallback.retried_trial_number(trial)
    return None if number is None else int(number)


def budget_trials(trials: list[FrozenTrial]) -> list[FrozenTrial]:
    """The trials that count towards ``--trials``: finished or running, except failed trials that
    were retried (their retry counts), surplus trials that never ran and repeats of a trained design."""
    retried = {retried_from(t) for t in trials} - {None}
    counted = []
    for trial in trials:
        if trial.user_attrs.get("surplus") or is_repeat(trial) or trial.state in (TrialState.WAITING, TrialState.PRUNED):
            continue
        if trial.state == TrialState.FAIL and (trial.number in retried or trial.user_attrs.get("failure_reason") == INTERRUPTED):
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
