import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import optuna
import pandas as pd
import pytest

from benchmarks.synthetic_imagenet import write_imagenet_npz
from tests.helpers import brute_force_front, tiny_study_toml
from xsearch.model.space import SearchSpace
from xsearch.results.report import report_summary
from xsearch.results.trial_export import export_trial
from xsearch.run import runner
from xsearch.run.runner import run_study
from xsearch.study import sampler as study_sampler
from xsearch.study import setup
from xsearch.study.artifacts import artifact_store
from xsearch.study.failures import WorkerRecycle
from xsearch.study.record import TrialAttr, is_repeat
from xsearch.study.retries import budget_trials
from xsearch.study.setup import open_study
from xsearch.study.spec import load_study_spec
from xsearch.study.storage import open_storage

COMPLETE, WAITING = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.WAITING


@pytest.mark.slow
def test_run_records_trials_and_writes_a_correct_front(tmp_path, tiny_spec):
    study = run_study(tiny_spec, tmp_path / "run", progress=False)
    trials = study.get_trials(states=(COMPLETE,))
    assert len(trials) == 3
    assert study.metric_names == ["val_accuracy", "params", "latency_ms"]
    first = trials[0]
    # the paper point, projected into the space, first
    assert first.user_attrs["seed_trial"] is True
    assert json.loads(first.user_attrs["config"])["segments"] == "depthwise"
    for trial in trials:
        attrs = trial.user_attrs
        for key in (
            "config",
            "params",
            "macs",
            "flops",
            "latency_ms",
            "latency_batch",
            "device",
            "backend",
            "precision",
            "throughput",
            "compile_time_s",
            "val_accuracy",
            "test_accuracy",
            "curves",
            "wall_time_s",
            "seed",
            "dataset",
        ):
            assert key in attrs, key
        assert len(attrs["curves"]["val_accuracy"]) == 2
        assert trial.values[0] == attrs["val_accuracy"]
        assert trial.values[1] == attrs["params"]

    table = pd.read_csv(tmp_path / "run" / "trials.csv")
    assert len(table) == 3
    assert {"config", "params", "latency_ms", "pareto", "val_accuracy"} <= set(table.columns)
    front = pd.read_csv(tmp_path / "run" / "pareto.csv")
    assert set(front["number"]) == brute_force_front(study)
    # plotly inlined: opens offline
    assert (tmp_path / "run" / "pareto.html").stat().st_size > 100_000


@pytest.mark.slow
def test_hard_constraints_skip_training(tmp_path, tiny_spec):
    spec = dataclasses.replace(
        tiny_spec,
        trials=4,
        constraints={"max_params": 150_000},
        seed_trials=("paper", "regular", "segments-8"),
    )
    study = run_study(spec, tmp_path / "run", progress=False)
    by_feasibility = {True: [], False: []}
    for trial in study.trials:
        by_feasibility.setdefault(trial.user_attrs["feasible"], []).append(trial)
    # 134k: the only seed that fits
    assert json.loads(study.trials[0].user_attrs["config"])["segments"] == "depthwise"
    infeasible = by_feasibility[False]
    assert all(
        t.user_attrs["failure_reason"] == "constraint" and "curves" not in t.user_attrs
        for t in infeasible
    )
    assert all(t.constraints["max_params"] > 0 and t.constraints["oom"] == 0 for t in infeasible)
    assert all(
        t.user_attrs["params"] <= 150_000 and "curves" in t.user_attrs for t in by_feasibility[True]
    )
    assert {t.number for t in study.best_trials}.isdisjoint({t.number for t in infeasible})


@pytest.mark.slow
def test_reopening_with_other_objectives_fails_and_changes_nothing(tmp_path, tiny_spec):
    run_study(dataclasses.replace(tiny_spec, trials=1), tmp_path / "run", progress=False)
    before = (tmp_path / "run" / "study.journal").read_bytes()
    with pytest.raises(
        ValueError, match=r"was created with objectives .*'val_accuracy'.*not .*'flops'"
    ):
        run_study(
            dataclasses.replace(tiny_spec, objectives=("accuracy", "flops")),
            tmp_path / "run",
            progress=False,
        )
    assert (tmp_path / "run" / "study.journal").read_bytes() == before


SEEDS = [{"middle_repeats": 1}, {"middle_repeats": 2}]


class _Seeds:
    """The seed trials, counting how many processes asked for them."""

    def __init__(self):
        self.calls = 0

    def __call__(self):
        self.calls += 1
        return SEEDS


def _open_at_once(tiny_spec, url, tmp_path, processes, seeds):
    space = SearchSpace.from_toml(tiny_spec.space)
    start = threading.Barrier(processes, timeout=60)

    def one(i):
        start.wait()  # new database: the tables and the study are created by whoever comes first
        storage = open_storage(url, tmp_path / f"machine{i}")
        return open_study(tiny_spec, space, storage, "test", seeds).study_name

    with ThreadPoolExecutor(processes) as pool:
        return list(pool.map(one, range(processes)))


def test_workers_racing_to_create_a_study_on_postgresql_all_join_it(
    tmp_path, tiny_spec, postgres_url
):
    seeds = _Seeds()
    assert _open_at_once(tiny_spec, postgres_url, tmp_path, 6, seeds) == ["tiny"] * 6
    study = optuna.load_study(study_name="tiny", storage=open_storage(postgres_url, tmp_path))
    assert study.metric_names == ["val_accuracy", "params", "latency_ms"]
    # every process that found no study checked the seeds before creating it
    assert 1 <= seeds.calls <= 6
    # the creator alone enqueued them
    assert [t.state for t in study.trials] == [WAITING] * len(SEEDS)


def test_a_study_whose_creator_died_during_set_up_is_finished_by_the_next_worker(
    tmp_path, tiny_spec, monkeypatch
):
    storage = open_storage(None, tmp_path)
    optuna.create_study(
        study_name="tiny", storage=storage, directions=["maximize", "minimize", "minimize"]
    )
    monkeypatch.setattr(setup, "SETUP_WAIT_S", 1.0)
    study = open_study(tiny_spec, SearchSpace.from_toml(tiny_spec.space), storage, "test", _Seeds())
    assert study.metric_names == ["val_accuracy", "params", "latency_ms"]
    assert [t.state for t in study.trials] == [WAITING] * len(SEEDS)
    assert "xsearch_spec" in study.user_attrs


def _first_proposals(spec, storage, count=4, shared=False):
    """The designs the sampler of a process that opens the study proposes first (asked, then failed)."""
    space = SearchSpace.from_toml(spec.space)
    study = open_study(spec, space, storage, "test", shared=shared)
    proposals = []
    for _ in range(count):
        trial = study.ask()
        space.sample(trial)
        proposals.append(trial.params)
        study.tell(trial, state=optuna.trial.TrialState.FAIL)
    return proposals


@pytest.mark.parametrize("sampler", ["random", "tpe"])
def test_workers_sharing_a_study_do_not_propose_the_same_designs_in_lockstep(
    tmp_path, tiny_spec, monkeypatch, sampler
):
    spec = dataclasses.replace(tiny_spec, sampler=sampler, seed_trials=())
    proposals = []
    for pid in (1001, 1002):  # two workers of one supervisor open the study at once
        monkeypatch.setattr(
            study_sampler,
            "worker_identity",
            lambda pid=pid: {"worker_host": "gpu-box", "worker_pid": pid},
        )
        proposals.append(_first_proposals(spec, optuna.storages.InMemoryStorage(), shared=True))
    assert proposals[0] != proposals[1]


def test_one_worker_is_reproducible_and_a_resumed_run_does_not_replay_its_proposals(
    tmp_path, tiny_spec
):
    spec = dataclasses.replace(tiny_spec, sampler="random", seed_trials=())
    storage = open_storage(None, tmp_path / "a")
    first = _first_proposals(spec, storage)
    # same --seed, same designs
    assert _first_proposals(spec, open_storage(None, tmp_path / "b")) == first
    assert _first_proposals(spec, storage) != first  # reopened with 4 trials in it: new proposals


def test_a_deadline_that_has_passed_starts_no_trial(tmp_path, tiny_spec):
    study = run_study(tiny_spec, tmp_path / "run", progress=False, deadline=time.time())
    assert [t.state for t in study.trials] == [WAITING]  # the seed, still waiting for the next run


def test_imagenet_small_without_data_stops_before_doing_anything(tmp_path, monkeypatch):
    monkeypatch.setenv("XSEARCH_DATA_DIR", str(tmp_path / "nowhere"))
    monkeypatch.chdir(tmp_path)
    from xsearch.cli import main

    assert main(["run", "--study", "imagenet-small"]) == 2
    assert not (tmp_path / "runs").exists()


@pytest.mark.slow
def test_imagenet_small_runs_end_to_end_on_official_format(tmp_path):
    write_imagenet_npz(tmp_path / "imagenet64", train_images=48, val_images=12, classes=3)
    spec = load_study_spec("imagenet-small").override(trials=1, data_dir=tmp_path / "imagenet64")
    small_budget = dataclasses.replace(spec.training, epochs=1, batch_size=16)
    # one epoch: no rung
    spec = dataclasses.replace(
        spec, training=small_budget, latency_batch=1, seed_trials=("paper",), asha=None
    )
    study = run_study(spec, tmp_path / "run", progress=False)
    (trial,) = study.get_trials(states=(COMPLETE,))
    assert trial.user_attrs["dataset"] == "imagenet-npz"
    assert trial.user_attrs["image_size"] == 64
    assert trial.user_attrs["params"] > 1_000_000  # a 1000-way head on the projected paper point


def _completed(journal_path):
    from xsearch.study.storage import open_storage

    return optuna.load_study(
        study_name="tiny-resume", storage=open_storage(str(journal_path), journal_path.parent)
    )


def _gone_within(pid, seconds):
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split()[2]
        except FileNotFoundError:
            return True
        if state == "Z":
            return True
        time.sleep(0.2)
    return False


def _worker_of_a_running_trial_after_one_completes(db, timeout):
    """The pid of the worker that runs a trial, once another trial has completed (None: timed out)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.5)
        try:
            trials = _completed(db).get_trials(deepcopy=False) if db.exists() else []
        except KeyError:
            continue
        running = [
            t
            for t in trials
            if t.state == optuna.trial.TrialState.RUNNING and "worker_pid" in t.user_attrs
        ]
        if running and any(t.state == COMPLETE for t in trials):
            return running[0].user_attrs["worker_pid"]
    return None


@pytest.mark.slow
def test_resume_after_kill_loses_and_repeats_nothing(tmp_path):
    study_file = tmp_path / "tiny-resume.toml"
    study_file.write_text(tiny_study_toml(trials=4))
    command = [
        sys.executable,
        "-m",
        "xsearch.cli",
        "run",
        "--study",
        str(study_file),
        "--out",
        str(tmp_path / "run"),
    ]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    process = subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    db = tmp_path / "run" / "study.journal"
    worker = _worker_of_a_running_trial_after_one_completes(db, timeout=300)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert worker is not None, "no trial was running after the first one completed"
    assert _gone_within(worker, 10)  # the trial's worker dies with its supervisor
    before = {t.number: t.params for t in _completed(db).get_trials(states=(COMPLETE,))}
    assert len(before) >= 1

    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    after = _completed(db)
    complete = [t for t in after.get_trials(states=(COMPLETE,)) if not is_repeat(t)]
    assert len(complete) == 4
    # nothing lost
    assert {n: p for n, p in ((t.number, t.params) for t in complete) if n in before} == before
    interrupted = [t for t in after.trials if t.user_attrs.get("failure_reason") == "interrupted"]
    assert len(interrupted) == 1  # the killed trial, retried with the same parameters
    retry = [t for t in complete if t.user_attrs.get("retry_of") == interrupted[0].number]
    assert len(retry) == 1
    assert retry[0].params == interrupted[0].params
    assert "trial" in done.stdout
    assert "val_acc" in done.stdout  # the front table at the end


@pytest.mark.slow
def test_a_repeated_design_is_not_trained_again_and_an_exhausted_space_ends_the_run(
    tmp_path, tiny_spec, monkeypatch, capsys
):
    space = tmp_path / "two-designs.toml"
    space.write_text(
        '[axes]\nmiddle_repeats = [0]\nwidth = [0.125]\ndepth_multiplier = [1]\nsegments = ["depthwise"]\n'
        'intermediate_activation = ["none"]\nresidual = [true, false]\n'
    )
    monkeypatch.setattr(runner, "REPEAT_STREAK_LIMIT", 3)
    # The budget is capped at the space's size; a sampler that keeps returning to trained designs of a larger space
    # is what the repeat streak guards against, so the space is made to look larger than its two designs.
    monkeypatch.setattr(setup, "space_size", lambda space: 10)
    study = run_study(
        dataclasses.replace(tiny_spec, space=str(space), trials=3), tmp_path / "run", progress=False
    )

    trials = study.get_trials()
    trained = [t for t in trials if not is_repeat(t)]
    repeats = [t for t in trials if is_repeat(t)]
    assert all(t.state == COMPLETE for t in trials)
    assert len(budget_trials(trials)) == 2
    assert sorted(t.params["residual"] for t in trained) == [False, True]
    assert len(repeats) >= 3
    assert all(is_repeat(t) for t in trials[-3:])  # the streak that ended the run
    for repeat in repeats:
        twin = trials[repeat.user_attrs[TrialAttr.REPEAT_OF]]
        assert twin in trained
        assert repeat.params == twin.params
        assert repeat.values == twin.values
        assert repeat.constraints == twin.constraints
        assert repeat.user_attrs["curves"] == twin.user_attrs["curves"]
        assert TrialAttr.MODEL_ARTIFACT_ID not in repeat.user_attrs
        # nothing built or trained
        assert repeat.user_attrs["wall_time_s"] < 0.2 * twin.user_attrs["wall_time_s"]
    assert (
        "stopping at 2 of 3 trials: the sampler proposed 3 designs in a row that were already trained"
        in capsys.readouterr().err
    )

    front = pd.read_csv(tmp_path / "run" / "pareto.csv")["number"]
    assert set(front) <= {t.number for t in trained}
    assert len(front) == len(set(front))
    assert f"{len(repeats)} of them repeats of a trained design" in report_summary(study)
    assert (
        runner.finished_count(study)
        == f"{len(trials)} trials finished ({len(repeats)} repeated a trained design: not retrained)"
    )
    exported = export_trial(
        study, repeats[0].number, tmp_path / "repeat.keras", artifact_store(tmp_path / "run")
    )
    twin_number = repeats[0].user_attrs[TrialAttr.REPEAT_OF]
    assert exported.weights == "trained"
    assert exported.message.startswith(
        f"trial {repeats[0].number} repeats trial {twin_number}'s design; "
    )


@pytest.mark.slow
def test_a_grid_study_trains_every_design_exactly_once_across_recycled_workers(tmp_path, tiny_spec):
    spec = dataclasses.replace(tiny_spec, sampler="grid", seed_trials=("paper",), trials=100)
    while True:  # a worker recycled every 4 trials, restarted as its supervisor would
        try:
            study = run_study(spec, tmp_path / "run", progress=False, recycle_after=4)
            break
        except WorkerRecycle:
            continue
    trials = study.get_trials(deepcopy=False)
    designs = [t.user_attrs[TrialAttr.CONFIG] for t in trials]
    assert len(trials) == 12  # the tiny space has 12 designs
    assert not any(map(is_repeat, trials))
    assert len(set(designs)) == 12
    assert all(t.state == COMPLETE for t in trials)


def test_of_the_workers_waiting_at_a_full_budget_one_takes_a_retry_and_the_rest_keep_waiting():
    study = optuna.create_study()
    study.add_trial(optuna.trial.create_trial(value=0.5))
    study.add_trial(optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL))
    study.enqueue_trial(
        {}, user_attrs={TrialAttr.RETRY_OF: 1}
    )  # a killed trial's retry frees a slot
    lock, takers = threading.Lock(), []

    def waiting_worker(index: int) -> None:
        if runner.next_work(study, 2, "digest", poll_s=0.5, was_waiting=True) == "trials":
            with lock:
                takers.append(index)
                study.ask()  # takes the retry: the budget is full again

    with ThreadPoolExecutor(max_workers=20) as pool:
        list(pool.map(waiting_worker, range(20)))
    assert 1 <= len(takers) <= 3  # without the random wait, all 20 would start a trial
    assert runner.work_left(study, 2, "digest") == "running"
    started = time.monotonic()
    assert runner.next_work(study, 3, "digest", poll_s=5, was_waiting=False) == "trials"
    assert time.monotonic() - started < 1  # a worker that was not waiting takes work at once


def test_a_waiting_worker_looks_less_often_the_longer_it_waits_up_to_the_heartbeat_interval(
    monkeypatch,
):
    slept: list[float] = []
    monkeypatch.setattr(runner.time, "sleep", slept.append)
    poll = runner.WaitingPoll(heartbeat_interval=30)
    for _ in range(7):
        poll.sleep()
    assert slept == [5, 7.5, 11.25, 16.875, 25.3125, 30, 30]
    poll.reset()  # it ran a trial: the next wait is short again
    poll.sleep()
    assert slept[-1] == 5
    short = runner.WaitingPoll(heartbeat_interval=2)
    short.sleep()
    short.sleep()
    # never longer than a heartbeat: a dead worker's trial is seen in time
    assert slept[-2:] == [2, 2]
