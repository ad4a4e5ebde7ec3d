"""Each private Optuna API that xsearch relies on still behaves as xsearch expects (fails loudly if not)."""

import socket
import time

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from xsearch.study.optuna_private import (
    HEARTBEAT_ATTR,
    HeartbeatGrpcStorage,
    enqueued_params,
    fail_running_trial,
    hypervolume,
    hypervolume_history,
    pareto_mask,
    replace_enqueued,
    storage_description,
)
from xsearch.study.storage import open_storage


def test_a_running_trial_of_another_process_is_failed_with_its_reason(tmp_path):
    study = optuna.create_study(storage=open_storage(None, tmp_path))
    study.ask()  # as another worker would
    (running,) = study.get_trials(states=(TrialState.RUNNING,))
    fail_running_trial(study, running, {"failure_reason": "interrupted"})
    (trial,) = study.get_trials()
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs == {"failure_reason": "interrupted"}
    with pytest.raises(optuna.exceptions.UpdateFinishedTrialError):
        fail_running_trial(study, running, {})


def test_a_cards_storage_names_the_database_or_the_storage_kind(tmp_path):
    journal = optuna.create_study(storage=open_storage(None, tmp_path))
    database = optuna.create_study(storage=open_storage(f"sqlite:///{tmp_path / 'x.db'}"))
    assert storage_description(database) == f"sqlite:///{tmp_path / 'x.db'}"
    assert storage_description(journal) == "JournalFileBackend"


def test_the_hypervolume_history_is_optunas_for_minimised_and_maximised_objectives():
    study = optuna.create_study(directions=["minimize", "maximize"])
    study.add_trial(optuna.create_trial(values=[1.0, -1.0]))  # the box [1,2] x [1,2] once negated
    # beyond the reference point: adds nothing
    study.add_trial(optuna.create_trial(values=[3.0, 0.0]))
    # adds [0.5,2] x [1.5,2] less the overlap
    study.add_trial(optuna.create_trial(values=[0.5, -1.5]))
    numbers, volumes = hypervolume_history(study, [2.0, -2.0])
    assert numbers == [0, 1, 2]
    assert volumes == pytest.approx([1.0, 1.0, 1.25])


def test_the_pareto_mask_keeps_the_points_nothing_dominates():
    losses = np.array([[1.0, 2.0], [2.0, 1.0], [2.0, 2.0], [1.0, 2.0], [0.5, 3.0]])
    assert pareto_mask(losses).tolist() == [True, True, False, True, True]


def test_the_hypervolume_of_losses_is_the_dominated_volume_up_to_the_reference():
    reference = np.array([2.0, 2.0])
    assert hypervolume(np.array([[1.0, 1.0]]), reference) == pytest.approx(1.0)
    assert hypervolume(np.array([[0.0, 1.0], [1.0, 0.0]]), reference) == pytest.approx(3.0)
    assert hypervolume(np.array([[3.0, 0.0]]), reference) == 0.0  # beyond the reference point
    assert hypervolume(np.empty((0, 2)), reference) == 0.0


@pytest.mark.parametrize("database", [False, True], ids=["journal", "sqlite"])
def test_a_waiting_trial_is_replaced_until_it_runs(tmp_path, database):
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path / 'x.db'}" if database else open_storage(None, tmp_path)
    )
    study.enqueue_trial({"x": 0.1}, user_attrs={"seed_trial": True})
    waiting = study.trials[0]
    assert enqueued_params(waiting) == {"x": 0.1}
    assert replace_enqueued(study, waiting, {"x": 0.7}, {"retry_of": 5})
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    assert trial.params == {"x": 0.7}
    assert trial.user_attrs == {"seed_trial": None, "retry_of": 5}
    assert not replace_enqueued(study, waiting, {"x": 0.2}, {})  # running now: left alone
    assert study.trials[0].params == {"x": 0.7}


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_heartbeats_through_optunas_grpc_proxy_fail_a_silent_trial(tmp_path):
    from optuna.storages._grpc.server import make_server

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = make_server(
        optuna.storages.RDBStorage(f"sqlite:///{tmp_path / 's.db'}"), "127.0.0.1", port
    )
    server.start()
    try:
        stale: list[int] = []
        storage = HeartbeatGrpcStorage(
            "127.0.0.1", port, 1, 0.2, lambda study, trial: stale.append(trial.number)
        )
        storage.wait_server_ready(timeout=10)
        study = optuna.create_study(storage=storage)
        # Optuna's heartbeat thread recognises the storage
        study.optimize(lambda trial: 0.0, n_trials=1)
        assert HEARTBEAT_ATTR in study.trials[0].system_attrs
        running = study.ask()
        storage.record_heartbeat(running._trial_id)
        optuna.storages.fail_stale_trials(study)
        assert study.trials[1].state == TrialState.RUNNING
        assert not stale
        time.sleep(0.3)  # past the grace period
        optuna.storages.fail_stale_trials(study)
        assert study.trials[1].state == TrialState.FAIL
        assert stale == [1]
        storage.record_heartbeat(running._trial_id)  # a late heartbeat of a failed trial is ignored
        storage.close()
    finally:
        server.stop(0)
