"""Dead workers' trials: the local sweep on the journal storage, and the heartbeat on PostgreSQL."""

import subprocess
import sys
import time

import optuna

from xsearch.study import retries
from xsearch.study.retries import sweep_dead_local_trials, worker_identity
from xsearch.study.storage import open_storage

RUNNING, FAIL, WAITING = (
    optuna.trial.TrialState.RUNNING,
    optuna.trial.TrialState.FAIL,
    optuna.trial.TrialState.WAITING,
)


def _study(tmp_path):
    return optuna.create_study(study_name="s", storage=open_storage(None, tmp_path))


def test_a_trial_whose_worker_died_is_failed_and_retried_once(tmp_path):
    study = _study(tmp_path)
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    dead = subprocess.Popen(["true"])
    dead.wait()
    trial.set_user_attr("worker_host", worker_identity()["worker_host"])
    trial.set_user_attr("worker_pid", dead.pid)
    alive = study.ask()
    for key, value in worker_identity().items():
        alive.set_user_attr(key, value)
    assert sweep_dead_local_trials(study) == 1
    assert sweep_dead_local_trials(study) == 0
    states = [t.state for t in study.trials]
    assert states == [FAIL, RUNNING, WAITING]
    assert study.trials[2].user_attrs["retry_of"] == trial.number


def test_a_trial_that_has_not_recorded_its_worker_yet_is_left_alone_for_a_while(
    tmp_path, monkeypatch
):
    study = _study(tmp_path)
    study.ask()  # a worker between Optuna starting the trial and the objective recording its pid
    assert sweep_dead_local_trials(study) == 0
    assert study.trials[0].state == RUNNING
    # long enough: its worker died while sampling
    monkeypatch.setattr(retries, "UNCLAIMED_GRACE_S", 0.0)
    assert sweep_dead_local_trials(study) == 1
    assert study.trials[0].state == FAIL


def test_a_design_that_keeps_killing_its_worker_is_failed_as_a_crash_after_max_retry_retries(
    tmp_path,
):
    study = _study(tmp_path)
    dead = subprocess.Popen(["true"])
    dead.wait()
    study.enqueue_trial({"x": 0.5})
    for _ in range(retries.MAX_RETRY + 1):  # the trial and each retry die with their worker
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        trial.set_user_attr("worker_host", worker_identity()["worker_host"])
        trial.set_user_attr("worker_pid", dead.pid)
        assert sweep_dead_local_trials(study) == 1
    reasons = [t.user_attrs["failure_reason"] for t in study.trials]
    assert reasons == ["interrupted"] * retries.MAX_RETRY + ["crash"]
    assert [t.params for t in study.trials] == [{"x": 0.5}] * (retries.MAX_RETRY + 1)
    assert all(t.state == FAIL for t in study.trials)  # no further retry is waiting
    assert retries.budget_trials(study.trials) == [study.trials[-1]]  # the crash counts, once


def test_a_retry_runs_before_the_queued_seed_trials_and_the_budget_ends_at_its_total(tmp_path):
    study = _study(tmp_path)
    x = {"x": optuna.distributions.FloatDistribution(0, 1)}
    for value in (0.1, 0.2, 0.3):
        study.enqueue_trial({"x": value}, user_attrs={"seed_trial": True})
    study.tell(study.ask(x), 0.0)  # trial 0: the first seed trains
    interrupted = study.ask(x)  # trial 1, the second seed: its worker dies
    dead = subprocess.Popen(["true"])
    dead.wait()
    interrupted.set_user_attr("worker_host", worker_identity()["worker_host"])
    interrupted.set_user_attr("worker_pid", dead.pid)
    assert sweep_dead_local_trials(study) == 1

    retry = study.ask(x)  # the next trial to run is the retry, in the third seed's place
    assert retry.number == 2
    assert retry.params == {"x": 0.2}
    assert retry.user_attrs == {"retry_of": 1, "seed_trial": None}
    study.tell(retry, 0.0)
    # the study of 2 trials is complete: 0 and the retry
    assert len(retries.budget_trials(study.trials)) == 2
    requeued = study.ask(x)  # the third seed, behind it
    assert requeued.number == 3
    assert requeued.params == {"x": 0.3}
    assert requeued.user_attrs == {"seed_trial": True}


DEAD_WORKER = """
import os, sys, time, optuna
storage = optuna.storages.RDBStorage(sys.argv[1], heartbeat_interval=1, grace_period=3)
study = optuna.load_study(study_name="s", storage=storage)
# dies in its trial once Optuna's heartbeat thread (started with the trial, beating every second) has beaten
study.optimize(lambda trial: (trial.suggest_float("x", 0, 1), time.sleep(2), os._exit(0)), n_trials=1)
"""


def test_a_heartbeat_retry_runs_before_the_queued_seed_trials_and_the_budget_ends_at_its_total(
    postgres_url, tmp_path
):
    study = optuna.create_study(
        study_name="s", storage=open_storage(postgres_url, tmp_path, heartbeat_interval=1)
    )
    for value in (0.1, 0.2, 0.3):
        study.enqueue_trial({"x": value}, user_attrs={"seed_trial": True})
    ran: list[float] = []

    def objective(trial: optuna.Trial) -> float:
        ran.append(trial.suggest_float("x", 0, 1))
        return 0.0

    study.optimize(objective, n_trials=1)  # trial 0: the first seed trains
    # trial 1: the second seed
    subprocess.run([sys.executable, "-c", DEAD_WORKER, postgres_url], check=True, timeout=120)
    assert [t.state for t in study.get_trials()] == [
        optuna.trial.TrialState.COMPLETE,
        RUNNING,
        WAITING,
    ]
    time.sleep(3.5)  # its heartbeat is stale after the grace period, 3 heartbeat intervals

    budget = 3
    study.optimize(
        objective,
        callbacks=[
            lambda s, t: s.stop() if len(retries.budget_trials(s.get_trials())) >= budget else None
        ],
    )
    trials = study.get_trials()
    assert ran == [0.1, 0.2, 0.3]  # the next worker ran the retry first, in the third seed's place
    assert trials[1].state == FAIL
    assert trials[2].params == {"x": 0.2}
    assert trials[2].user_attrs["retry_of"] == 1
    assert trials[3].params == {"x": 0.3}
    assert trials[3].user_attrs == {"seed_trial": True}
    assert len(retries.budget_trials(trials)) == budget
    assert len(trials) == 4
