"""The private Optuna APIs xsearch cannot do without, all in this module.

- A study's storage (``Study._storage``) and a frozen trial's id (``FrozenTrial._trial_id``): to
  fail a RUNNING trial whose worker process died and record why. Optuna's public API finishes
  only a trial this process holds (`optuna.Trial`), and `Study.tell` records no reason.
- What a WAITING trial was enqueued to run (``fixed_params``, the system attr `Study.enqueue_trial` writes),
  and replacing it, so that the retry of an interrupted trial runs before queued seed trials: Optuna
  runs WAITING trials in the order of their numbers, and offers no way to reorder them.
- The URL of a study's database, for a model card.
- The hypervolume history of a study, as `optuna.visualization.plot_hypervolume_history` computes it,
  the hypervolume of an array of losses, and its Pareto front, as `Study.best_trials` computes it.
- Heartbeats for Optuna's gRPC storage proxy client (`HeartbeatGrpcStorage`): Optuna's heartbeat interface
  (``BaseHeartbeat``, which `optuna.storages.fail_stale_trials` and `Study.optimize` check for) is private.

`tests/study/test_optuna_private.py` exercises each on the installed Optuna, so a release that
changes one fails loudly there; ``pyproject.toml`` bounds optuna to the versions tested.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import optuna
import sqlalchemy.engine
from optuna._hypervolume import compute_hypervolume
from optuna.storages import GrpcStorageProxy
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.study._multi_objective import _is_pareto_front
from optuna.trial import FrozenTrial, TrialState
from optuna.visualization._hypervolume_history import _get_hypervolume_history_info


def fail_running_trial(study: optuna.Study, trial: FrozenTrial, attrs: Mapping[str, Any]) -> None:
    """Record ``attrs`` on a RUNNING trial of another process, then mark it FAIL.

    Raises `optuna.exceptions.UpdateFinishedTrialError` when the trial has finished meanwhile.
    """
    storage, trial_id = study._storage, trial._trial_id
    for key, value in attrs.items():
        storage.set_trial_user_attr(trial_id, key, value)
    storage.set_trial_state_values(trial_id, TrialState.FAIL)


def enqueued_params(trial: FrozenTrial) -> dict[str, Any]:
    """The parameters a WAITING trial was enqueued with (`optuna.Study.enqueue_trial`)."""
    return dict(trial.system_attrs.get("fixed_params", trial.params))


def replace_enqueued(
    study: optuna.Study, trial: FrozenTrial, params: dict[str, Any], user_attrs: Mapping[str, Any]
) -> bool:
    """Make the WAITING ``trial`` run ``params`` with ``user_attrs`` (its own user attrs set to None) instead of what
    it was enqueued with; False, changing nothing, when it is no longer WAITING."""
    storage, trial_id = study._storage, trial._trial_id
    if storage.get_trial(trial_id).state != TrialState.WAITING:
        return False
    storage.set_trial_system_attr(trial_id, "fixed_params", params)
    for key, value in {**dict.fromkeys(trial.user_attrs), **user_attrs}.items():
        storage.set_trial_user_attr(trial_id, key, value)
    return True


def storage_description(study: optuna.Study) -> str:
    """The study's database URL with the password hidden, or the storage's class name for other storages."""
    storage = getattr(study._storage, "_backend", study._storage)
    url = getattr(storage, "url", None)
    if url is None:
        return type(storage).__name__
    return sqlalchemy.engine.make_url(url).render_as_string(hide_password=True)


def hypervolume_history(
    study: optuna.Study, reference_point: list[float]
) -> tuple[list[int], list[float]]:
    """Trial numbers of the COMPLETE trials, and the hypervolume of the feasible front after each."""
    info = _get_hypervolume_history_info(study, np.asarray(reference_point, dtype=float))
    return list(info.trial_numbers), [float(value) for value in info.values]


def pareto_mask(losses: np.ndarray) -> np.ndarray:
    """Which rows of ``losses`` (one row a point, every objective minimised) no other row dominates."""
    return _is_pareto_front(np.asarray(losses, dtype=float), assume_unique_lexsorted=False)


def hypervolume(losses: np.ndarray, reference_point: np.ndarray) -> float:
    """The hypervolume that the rows of ``losses`` (every objective minimised) dominate up to ``reference_point``;
    rows beyond the reference point add nothing."""
    points = np.asarray(losses, dtype=float)
    points = points[np.all(points < reference_point, axis=1)]
    return (
        float(compute_hypervolume(points, np.asarray(reference_point, dtype=float)))
        if len(points)
        else 0.0
    )


HEARTBEAT_ATTR = "xsearch:heartbeat"
"""The trial system attr where `HeartbeatGrpcStorage` records a worker's last heartbeat (Unix time)."""


class HeartbeatGrpcStorage(GrpcStorageProxy, BaseHeartbeat):
    """Optuna's gRPC storage proxy client with the heartbeats it lacks.

    While a trial runs, its worker records the time on it (`HEARTBEAT_ATTR`) every ``heartbeat_interval``
    seconds; a RUNNING trial whose last heartbeat is older than ``grace_period`` is stale, and
    `optuna.storages.fail_stale_trials` fails it and calls ``stale_trial_callback``, as with an RDB storage.
    The time is the worker's clock, where an RDB storage uses the database's: the machines' clocks must
    agree to well within the grace period (NTP does).
    """

    def __init__(
        self,
        host: str,
        port: int,
        heartbeat_interval: int,
        grace_period: float,
        stale_trial_callback: Callable[[optuna.Study, FrozenTrial], None] | None = None,
    ) -> None:
        super().__init__(host=host, port=port)
        self.url = f"grpc://{host}:{port}"
        self.heartbeat_interval, self.grace_period = heartbeat_interval, grace_period
        self.stale_trial_callback = stale_trial_callback

    def record_heartbeat(self, trial_id: int) -> None:
        # another worker failed it as stale meanwhile
        with contextlib.suppress(optuna.exceptions.UpdateFinishedTrialError):
            self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

    def _get_stale_trial_ids(self, study_id: int) -> list[int]:
        now = time.time()
        running = self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
        return [
            trial._trial_id
            for trial in running
            if now - trial.system_attrs.get(HEARTBEAT_ATTR, now) > self.grace_period
        ]

    def get_heartbeat_interval(self) -> int:
        return self.heartbeat_interval

    def get_heartbeat_stale_trial_callback(
        self,
    ) -> Callable[[optuna.Study, FrozenTrial], None] | None:
        return self.stale_trial_callback

    get_failed_trial_callback = get_heartbeat_stale_trial_callback  # the name Optuna < 4.9 calls
