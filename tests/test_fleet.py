"""`benchmarks.fleet`: its accounting of lost and duplicated trials, its aggregates, and a tiny fleet end to end."""

import datetime
import json
import os
import subprocess
import sys

import optuna
import pytest
from optuna.trial import FrozenTrial, TrialState

from benchmarks.fleet import (
    _began_training,
    _keep,
    account,
    latencies,
    memory,
    skip_reason,
    storage_for,
    throughput,
    time_calls,
)

COMPLETE, FAIL, RUNNING, WAITING = (
    TrialState.COMPLETE,
    TrialState.FAIL,
    TrialState.RUNNING,
    TrialState.WAITING,
)
T0 = datetime.datetime(2026, 12, 6, 12, 0, 0)


def _trials(*states_and_attrs) -> list[FrozenTrial]:
    """Trials numbered in order, each a state and its user attrs; trial k runs from second k to second k + 2."""
    return [
        FrozenTrial(
            number=number,
            state=state,
            value=0.0 if state == COMPLETE else None,
            datetime_start=T0 + datetime.timedelta(seconds=number),
            datetime_complete=T0 + datetime.timedelta(seconds=number + 2)
            if state.is_finished()
            else None,
            params={},
            distributions={},
            user_attrs=attrs,
            system_attrs={},
            intermediate_values={},
            trial_id=number,
        )
        for number, (state, attrs) in enumerate(states_and_attrs)
    ]


def test_a_killed_trial_retried_once_keeps_the_budget_exact():
    trials = _trials(
        (COMPLETE, {}),
        (FAIL, {"failure_reason": "interrupted"}),
        (COMPLETE, {}),
        (COMPLETE, {"retry_of": 1}),
        (TrialState.PRUNED, {"surplus": True}),
    )
    assert account(trials, 3) == {
        "stored": 5,
        "counted": 3,
        "budget": 3,
        "repeats": 0,
        "surplus": 1,
        "failed": 1,
        "retried_once": 1,
        "unfinished": 0,
        "unretried": 0,
        "missing": 0,
        "lost": 0,
        "duplicated": 0,
    }


def test_kills_are_spread_over_the_trials_that_began_training_not_those_that_finished():
    began = _trials(
        (RUNNING, {"epochs_done": 1}),
        (COMPLETE, {}),
        (RUNNING, {}),
        (COMPLETE, {"repeat_of": 0}),
        (TrialState.PRUNED, {"surplus": True}),
    )
    assert [_began_training(t) for t in began] == [True, True, False, False, False]


def test_a_kept_run_holds_its_logs_and_the_trials_as_stored(tmp_path):
    run = tmp_path / "fleet-grpc-128-x"
    run.mkdir()
    (run / "worker-1.log").write_text("Current thread ...")
    trials = _trials((RUNNING, {"worker_pid": 7, "epochs_done": 2}), (COMPLETE, {}))
    trials[0].system_attrs["xsearch:heartbeat"] = 1.5
    _keep(run, trials, tmp_path / "kept")
    kept = tmp_path / "kept" / run.name
    assert (kept / "worker-1.log").read_text() == "Current thread ..."
    table = (kept / "trials.csv").read_text().splitlines()
    assert table[0].startswith(
        "number,trial_id,state,start,complete,heartbeat,worker_pid,epochs_done"
    )
    assert table[1].startswith("0,0,RUNNING,")
    assert ",1.5,7,2," in table[1]


def test_unfinished_unretried_and_missing_trials_are_lost():
    trials = _trials(
        (COMPLETE, {}),
        (FAIL, {"failure_reason": "interrupted"}),
        (RUNNING, {}),
        (WAITING, {"retry_of": 7}),
    )
    # counted: trial 0 and the running trial 2; the killed trial 1 was never retried
    result = account(trials, 4)
    assert (result["unfinished"], result["unretried"], result["missing"]) == (2, 1, 2)
    assert (result["counted"], result["lost"], result["duplicated"]) == (2, 2 + 1 + 2, 0)


def test_a_budget_left_short_by_workers_that_stopped_on_repeats_is_not_lost_but_a_dead_trial_is():
    trials = _trials((COMPLETE, {}), (COMPLETE, {"repeat_of": 0}), (RUNNING, {}))
    converged = account(trials, 3, converged=True)
    assert converged["missing"] == 1
    assert converged["unfinished"] == 1
    assert converged["lost"] == 1  # the RUNNING trial; the missing one is the sampler's doing
    assert account(trials, 3)["lost"] == 2


def test_a_run_stopped_at_its_timeout_has_work_left_but_no_count_of_lost_trials():
    trials = _trials((COMPLETE, {}), (FAIL, {"failure_reason": "interrupted"}), (RUNNING, {}))
    result = account(trials, 4, timed_out=True)
    assert (result["unfinished"], result["unretried"], result["missing"], result["lost"]) == (
        1,
        1,
        2,
        None,
    )


def test_a_second_retry_and_trials_beyond_the_budget_are_duplicates():
    trials = _trials(
        (FAIL, {}), (COMPLETE, {"retry_of": 0}), (COMPLETE, {"retry_of": 0}), (COMPLETE, {})
    )
    result = account(trials, 2)
    assert (result["retried_once"], result["lost"], result["duplicated"]) == (0, 0, 1 + 1)


def test_throughput_runs_from_the_first_start_to_the_last_counted_trial():
    # ends at second 5
    trials = _trials((COMPLETE, {}), (COMPLETE, {}), (FAIL, {}), (COMPLETE, {"retry_of": 2}))
    assert throughput(trials) == {"span_s": 5.0, "counted_per_s": 3 / 5, "finished_per_s": 4 / 5}
    # NaN without a counted trial
    assert all(value != value for value in throughput(_trials((RUNNING, {}))).values())


def test_latencies_pool_every_workers_calls_per_name_and_in_all():
    result = latencies(
        [{"get_trial": [0.001, 0.003]}, {"get_trial": [0.002], "set_trial_user_attr": [0.010]}]
    )
    assert result["get_trial"] == {
        "calls": 3,
        "p50_ms": pytest.approx(2.0),
        "p99_ms": pytest.approx(2.98),
    }
    assert result["all"]["calls"] == 4
    assert result["set_trial_user_attr"]["p50_ms"] == pytest.approx(10.0)


def test_every_storage_call_is_timed():
    storage = optuna.storages.InMemoryStorage()
    timings = time_calls(storage)
    optuna.create_study(storage=storage).optimize(
        lambda trial: trial.suggest_float("x", 0, 1), n_trials=2
    )
    assert len(timings["create_new_trial"]) == 2
    assert all(s > 0 for calls in timings.values() for s in calls)
    assert {"set_trial_param", "set_trial_state_values", "get_all_trials"} <= set(timings)


def test_memory_reads_this_process_and_nothing_once_it_is_gone():
    found = memory(os.getpid())
    assert found is not None
    assert found["rss_mib"] >= found["pss_mib"] >= found["private_mib"] > 0
    assert memory(2**22 + 1) is None  # above Linux's largest process id


def test_runs_that_cannot_fit_are_skipped_with_the_measured_reason():
    runs = [
        {
            "storage": "postgresql",
            "workers": 8,
            "connections": {"max": 16},
            "memory_mib": {
                "private_mib_mean": 50.0,
                "private_mib_total": 400.0,
                "pss_mib_total": 700.0,
            },
        },
        {"storage": "postgresql", "workers": 32, "skipped": "too many connections"},
    ]
    assert skip_reason("postgresql", 32, runs, 100, 16.0) is None  # 64 connections, 1.9 GiB
    assert "about 256 connections (2.00 per worker, measured) exceed" in skip_reason(
        "postgresql", 128, runs, 100, 16.0
    )
    assert skip_reason("journal", 256, runs, 100, 16.0) is None  # 12.8 GiB
    assert "about 12.8 GiB for the workers (50 MiB private each" in skip_reason(
        "journal", 256, runs, 100, 8.0
    )
    runs.append({"storage": "grpc", "workers": 128, "timed_out": True})
    assert (
        skip_reason("grpc", 256, runs, 100, 16.0)
        == "grpc did not finish the run of 128 workers within --run-timeout"
    )


def test_the_proxies_connections_are_counted_per_proxy_one_per_machine():
    # 10 per proxy
    runs = [{"storage": "grpc", "workers": 32, "proxies": 4, "connections": {"max": 40}}]
    # 8 proxies, 80 connections
    assert skip_reason("grpc", 64, runs, 100, 16.0, workers_per_proxy=8) is None
    assert "about 320 connections (10.00 per proxy, measured) exceed" in skip_reason(
        "grpc", 256, runs, 100, 16.0, 8
    )
    assert skip_reason("grpc", 256, runs, 1000, 16.0, workers_per_proxy=8) is None
    assert skip_reason("grpc", 256, runs, 100, 16.0, workers_per_proxy=64) is None  # 4 proxies


@pytest.mark.slow
def test_a_grpc_fleet_gets_one_proxy_per_machine_each_serving_the_one_study(postgres_url, tmp_path):
    server = postgres_url.rsplit("/", 1)[0]
    with storage_for("grpc", 3, tmp_path, server, workers_per_proxy=2) as (
        urls,
        _database,
        proxies,
    ):
        assert len(proxies) == len(set(urls)) == 2
        assert all(url.startswith("grpc://127.0.0.1:") for url in urls)
        optuna.create_study(
            study_name="fleet",
            storage=optuna.storages.GrpcStorageProxy(
                host="127.0.0.1", port=int(urls[0].rsplit(":", 1)[1])
            ),
        )
        seen = optuna.load_study(
            study_name="fleet",
            storage=optuna.storages.GrpcStorageProxy(
                host="127.0.0.1", port=int(urls[1].rsplit(":", 1)[1])
            ),
        )
        assert seen.study_name == "fleet"
    assert all(proxy.poll() is not None for proxy in proxies)


@pytest.mark.slow
def test_a_tiny_fleet_on_the_journal_loses_and_duplicates_nothing(tmp_path):
    out = tmp_path / "fleet.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks.fleet",
            "--workers",
            "4",
            "--storages",
            "journal",
            "--trials",
            "16",
            "--epoch-s",
            "0.1",
            "--sampler-sizes",
            "100",
            "--asks",
            "1",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "KERAS_BACKEND": "numpy"},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(out.read_text())
    (run,) = report["runs"]
    assert run["kills"] == run["accounting"]["failed"] == run["accounting"]["retried_once"] == 1
    assert run["accounting"]["counted"] == 16
    assert run["accounting"]["lost"] == run["accounting"]["duplicated"] == 0
    assert run["throughput"]["counted_per_s"] > 0
    assert run["latency_ms"]["all"]["calls"] > 0
    assert {row["trials"] for row in report["sampler"]} == {100}
    assert out.with_suffix(".csv").is_file()
    assert report["environment"]["keras_backend"] == "numpy"
    assert report["environment"]["versions"]["optuna"]
