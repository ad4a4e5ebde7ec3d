"""Supervised workers: every `xsearch run` trains in a worker process, restarted when it crashes and
recycled after its share of trials, so that memory does not grow."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import optuna
import pytest

from tests.helpers import assert_resumed_from_epoch_1, tiny_study_toml
from xsearch.cli import main
from xsearch.common import interrupt
from xsearch.run import workers
from xsearch.run.workers import hide_accelerators, recycle_after, run_workers, worker_count
from xsearch.study.record import is_repeat
from xsearch.study.storage import open_storage

# A stand-in for `xsearch run`: logs its environment, then does what its slot's MODE says.
FAKE_WORKER = textwrap.dedent("""
    import json, os, signal, sys, time
    log, modes = sys.argv[1], json.loads(sys.argv[2])
    slot = os.environ["CUDA_VISIBLE_DEVICES"]
    with open(log, "a") as handle:
        handle.write(json.dumps({"slot": slot, "time": time.time(), **{k: v for k, v in os.environ.items()
                                 if k.startswith("XSEARCH_") or k == "JAX_PLATFORMS"}}) + "\\n")
    mode = modes[slot]
    if mode == "slow-setup":
        time.sleep(1.5)
        open(log + ".ready", "w").close()
    elif mode == "crash":
        os.kill(os.getpid(), signal.SIGKILL)
    sys.exit({"recycle": 75, "bad-input": 2}.get(mode, 0))
""")


def _fake_workers(tmp_path, monkeypatch, modes):
    """Arguments for `run_workers` that start fake workers, one mode per slot; and the log they write."""
    script, log = tmp_path / "fake_worker.py", tmp_path / "log.jsonl"
    script.write_text(FAKE_WORKER)
    monkeypatch.setattr(workers, "WORKER_COMMAND", (sys.executable, str(script)))
    return [str(log), json.dumps(modes)], log


def _log(log):
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


STUDY = tiny_study_toml(
    trials=3, seed_trials=[], sampler="random", data={"max_train": 200}, training={"epochs": 1}
)


def _command(tmp_path):
    return [
        sys.executable,
        "-m",
        "xsearch.cli",
        "run",
        "--study",
        str(tmp_path / "w.toml"),
        "--out",
        str(tmp_path / "run"),
    ]


def _study(tmp_path):
    journal = tmp_path / "run" / "study.journal"
    return optuna.load_study(study_name="w", storage=open_storage(str(journal), journal.parent))


@pytest.mark.slow
def test_supervised_worker_is_recycled_and_the_study_completes(tmp_path):
    (tmp_path / "w.toml").write_text(STUDY)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "XSEARCH_TRIALS_PER_WORKER": "1"}
    command = [
        *_command(tmp_path),
        "--batch-size",
        "auto",
    ]  # probed by the first worker, not the supervisor
    # no --workers
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    study = _study(tmp_path)
    trials = study.get_trials()
    trained = [t for t in trials if not is_repeat(t)]
    assert {t.state for t in trials} == {optuna.trial.TrialState.COMPLETE}
    assert len(trained) == 3
    # a fresh process per trained trial
    assert len({t.user_attrs["worker_pid"] for t in trained}) == 3
    assert "crashed" not in done.stderr
    probed = study.user_attrs["batch_size"]
    assert probed in (8, 16)
    assert {t.user_attrs["batch_size"] for t in trials} == {probed}


@pytest.mark.slow
def test_ctrl_c_exits_130_and_the_interrupted_trial_is_retried_when_the_study_resumes(tmp_path):
    # seconds between epoch 1 and the end
    (tmp_path / "w.toml").write_text(STUDY.replace("epochs = 1", "epochs = 30"))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.Popen(
        _command(tmp_path),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_as_in_a_terminal,
    )
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not _a_trial_between_epochs(tmp_path):
            time.sleep(0.2)
        os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
        error = run.communicate(timeout=120)[1]
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == 130, error[-2000:]
    trials = _study(tmp_path).trials
    interrupted = [t for t in trials if t.user_attrs.get("failure_reason") == "interrupted"]
    assert len(interrupted) == 1
    assert interrupted[0].state == optuna.trial.TrialState.FAIL
    retries = [t for t in trials if t.user_attrs.get("retry_of") == interrupted[0].number]
    assert len(retries) == 1
    assert retries[0].state == optuna.trial.TrialState.WAITING
    # Optuna's enqueued parameters
    assert retries[0].system_attrs["fixed_params"] == interrupted[0].params


@pytest.mark.slow
@pytest.mark.parametrize(
    "stop", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=["ctrl-c", "terminated", "killed"]
)
def test_an_interrupted_trial_is_retried_before_the_queued_seed_trials_and_the_study_ends_at_its_total(
    tmp_path, stop
):
    seeded = tiny_study_toml(
        trials=2,
        seed_trials=["paper", "regular", "segments-8"],
        sampler="random",
        data={"max_train": 200},
        training={"epochs": 30},
    )
    (tmp_path / "w.toml").write_text(seeded)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    run = subprocess.Popen(
        _command(tmp_path),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
        preexec_fn=_as_in_a_terminal,
    )
    try:
        deadline = time.time() + 300
        while time.time() < deadline and not _a_trial_between_epochs(tmp_path, number=1):
            time.sleep(0.2)
        # Ctrl-C or SIGTERM, or the supervisor killed
        os.killpg(run.pid, stop) if stop != signal.SIGKILL else run.kill()
        run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            os.killpg(run.pid, signal.SIGKILL)
    done = subprocess.run(_command(tmp_path), env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "study 'w': 2 trials finished; 1 interrupted and retried" in done.stdout
    trials = _study(tmp_path).trials
    assert [t.state.name for t in trials] == [
        "COMPLETE",
        "FAIL",
        "COMPLETE",
        "WAITING",
    ]  # the third seed still queued
    interrupted, retry = trials[1], trials[2]
    assert interrupted.user_attrs["failure_reason"] == "interrupted"
    assert retry.user_attrs["retry_of"] == 1
    assert retry.params == interrupted.params
    assert_resumed_from_epoch_1(retry, interrupted, epochs=30)
    assert "surplus" not in retry.user_attrs


def _as_in_a_terminal():
    """Ctrl-C's default action, which a background job of a non-interactive shell (e.g. CI) ignores."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _a_trial_between_epochs(tmp_path, number=None):
    if not (tmp_path / "run" / "study.journal").exists():
        return False
    try:
        trials = _study(tmp_path).get_trials(deepcopy=False)
    except KeyError:
        return False
    return any(
        t.state == optuna.trial.TrialState.RUNNING
        and 1 <= t.user_attrs.get("epochs_done", 0) < 30
        and number in (None, t.number)
        for t in trials
    )


def test_worker_count(monkeypatch):
    assert worker_count("3") == 3
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    assert worker_count("auto") == 2  # one per GPU
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert worker_count("auto") == max(1, (os.cpu_count() or 1) // workers.CPU_CORES_PER_WORKER)
    with pytest.raises(ValueError, match="received '0'"):
        worker_count("0")


def test_workers_get_the_gpus_recycling_and_deadline_that_the_supervisor_keeps_off_itself(
    tmp_path, monkeypatch
):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    monkeypatch.setenv("JAX_PLATFORMS", "")  # both restored after the test
    monkeypatch.delenv("JAX_PLATFORMS")
    environment = hide_accelerators()
    assert os.environ["CUDA_VISIBLE_DEVICES"] == ""
    assert os.environ["JAX_PLATFORMS"] == "cpu"
    arguments, log = _fake_workers(tmp_path, monkeypatch, {"0": "ok", "1": "ok"})
    stop_at = time.time() + 600
    assert run_workers(arguments, 2, environment, ["0", "1"], recycle_every=7, stop_at=stop_at) == 0
    started = _log(log)
    assert sorted(w["slot"] for w in started) == ["0", "1"]  # pinned to one GPU each
    for worker in started:
        assert worker["XSEARCH_SUPERVISED"] == "1"
        assert worker["XSEARCH_RECYCLE_AFTER"] == "7"
        assert float(worker["XSEARCH_DEADLINE"]) == stop_at
        assert "JAX_PLATFORMS" not in worker


def test_the_first_worker_sets_the_study_up_alone(tmp_path, monkeypatch):
    arguments, log = _fake_workers(tmp_path, monkeypatch, {"0": "slow-setup", "1": "ok", "2": "ok"})
    ready = tmp_path / "log.jsonl.ready"
    assert run_workers(arguments, 3, dict(os.environ), ["0", "1", "2"], ready=ready.exists) == 0
    first, *others = sorted(_log(log), key=lambda w: w["time"])
    assert first["slot"] == "0"
    assert len(others) == 2
    assert all(w["time"] >= ready.stat().st_mtime for w in others)


def test_a_failed_set_up_starts_no_other_worker(tmp_path, monkeypatch):
    arguments, log = _fake_workers(tmp_path, monkeypatch, {"0": "bad-input", "1": "ok"})
    assert run_workers(arguments, 2, dict(os.environ), ["0", "1"], ready=lambda: False) == 2
    assert [w["slot"] for w in _log(log)] == ["0"]


def test_recycled_workers_are_not_restarted_after_the_deadline(tmp_path, monkeypatch):
    arguments, log = _fake_workers(tmp_path, monkeypatch, {"0": "recycle"})
    started = time.time()
    assert run_workers(arguments, 1, dict(os.environ), ["0"], stop_at=started + 2) == 0
    assert 2 <= time.time() - started < 30
    assert len(_log(log)) >= 2  # recycled until the deadline, then done


def test_a_crash_loop_is_given_up_after_max_crashes(tmp_path, monkeypatch, capsys):
    arguments, log = _fake_workers(tmp_path, monkeypatch, {"0": "crash"})
    assert run_workers(arguments, 1, dict(os.environ), ["0"]) == signal.SIGKILL
    assert len(_log(log)) == workers.MAX_CRASHES + 1
    assert "not restarting it" in capsys.readouterr().err


def test_a_worker_started_by_hand_is_never_recycled(monkeypatch):
    monkeypatch.setenv("XSEARCH_SUPERVISED", "1")
    monkeypatch.delenv("XSEARCH_RECYCLE_AFTER", raising=False)
    assert workers.is_worker()
    assert recycle_after() is None


def test_a_bad_trials_per_worker_setting_exits_2_before_anything_is_written(
    tmp_path, monkeypatch, capsys
):
    (tmp_path / "w.toml").write_text(STUDY)
    monkeypatch.setenv("XSEARCH_TRIALS_PER_WORKER", "abc")
    monkeypatch.delenv("XSEARCH_SUPERVISED", raising=False)
    assert main(["run", "--study", str(tmp_path / "w.toml"), "--out", str(tmp_path / "run")]) == 2
    assert (
        "XSEARCH_TRIALS_PER_WORKER must be a positive integer; received 'abc'"
        in capsys.readouterr().err
    )
    assert not (tmp_path / "run").exists()
    assert os.environ.get("JAX_PLATFORMS") != "cpu"  # the supervisor gave its environment back


@pytest.mark.slow
def test_two_workers_share_the_successive_halving_rungs_and_the_front_holds_only_fully_trained_trials(
    tmp_path,
):
    text = tiny_study_toml(trials=8, seed_trials=[], sampler="random")
    (tmp_path / "w.toml").write_text(
        text.replace("[data]", "[asha]\nmin_epochs = 1\nreduction_factor = 2\n[data]")
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [*_command(tmp_path), "--workers", "2"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    study = _study(tmp_path)
    trained = [
        t for t in study.get_trials(states=(optuna.trial.TrialState.COMPLETE,)) if not is_repeat(t)
    ]
    states = [
        (
            t.number,
            t.state.name,
            {k: t.user_attrs.get(k) for k in ("repeat_of", "failure_reason", "error", "continues")},
        )
        for t in study.get_trials()
    ]
    assert len(trained) == 8, states  # what each trial became, when one is missing
    assert len({t.user_attrs["worker_pid"] for t in trained}) >= 2
    numbers = {t.number: t for t in trained}
    # every trial reached the one rung (epoch 1) and recorded its accuracy there,
    for trial in trained:
        # or continued a trial stopped there (a repeat promoted it)
        if "continues" in trial.user_attrs:
            stopped = numbers[trial.user_attrs["continues"]]
            assert stopped.user_attrs["stopped_at_epoch"] == 1
            assert trial.constraints["stopped"] == 0.0
            assert (
                trial.user_attrs["curves"]["val_accuracy"][:1]
                == stopped.user_attrs["curves"]["val_accuracy"]
            )
            continue
        assert trial.user_attrs["rung_accuracy"].keys() == {"1"}
        assert trial.constraints["stopped"] in (0.0, 1.0)
        assert (trial.constraints["stopped"] == 1.0) == ("stopped_at_epoch" in trial.user_attrs)
    assert study.best_trials
    assert all(len(t.user_attrs["curves"]["val_accuracy"]) == 2 for t in study.best_trials)


@pytest.mark.slow
def test_a_space_smaller_than_the_trials_asked_for_says_so_and_stops_at_its_size(tmp_path):
    space = tmp_path / "one.toml"
    space.write_text(
        '[axes]\nmiddle_repeats = [0]\nwidth = [0.125]\ndepth_multiplier = [1]\nsegments = ["depthwise"]\n'
        'intermediate_activation = ["none"]\nresidual = [true]\n'
    )
    (tmp_path / "w.toml").write_text(
        tiny_study_toml(
            space=str(space),
            trials=5,
            seed_trials=[],
            sampler="tpe",
            data={"max_train": 200},
            training={"epochs": 1},
        )
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(_command(tmp_path), env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"the space '{space}' has 1 design, fewer than the 5 trials asked for" in done.stderr
    trials = _study(tmp_path).get_trials()
    assert len(trials) == 1
    assert not is_repeat(trials[0])  # no run of repeats before it stops


@pytest.fixture
def own_signal_handlers():
    """SIGTERM's and SIGINT's handlers of this process, put back after the test."""
    saved = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    yield
    for number, handler in saved.items():
        signal.signal(number, handler)


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_is_remembered_in_case_its_keyboard_interrupt_is_lost(
    monkeypatch, own_signal_handlers, stop
):
    monkeypatch.setattr(interrupt, "_requested", threading.Event())
    signal.signal(signal.SIGINT, signal.default_int_handler)
    workers.interrupt_on_signals()
    with pytest.raises(KeyboardInterrupt):  # lost, say, in a finaliser
        signal.raise_signal(stop)
    with pytest.raises(KeyboardInterrupt):  # raised again at the next safe point
        interrupt.raise_if_requested()


def test_an_ignored_sigint_stays_ignored(own_signal_handlers):
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a background job of a non-interactive shell
    workers.interrupt_on_signals()
    assert signal.getsignal(signal.SIGINT) == signal.SIG_IGN
