"""Many workers on one study: PostgreSQL (several machines) and the journal file (one machine)."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from tests.helpers import assert_resumed_from_epoch_1, tiny_study_toml
from xsearch.study.record import is_repeat
from xsearch.study.storage import open_storage

COMPLETE, RUNNING, FAIL = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.RUNNING,
    optuna.trial.TrialState.FAIL,
)
SPACE = (
    '[axes]\nmiddle_repeats = [0]\nwidth = [0.125]\ndepth_multiplier = [1]\nsegments = [1, 8, "depthwise"]\n'
    'intermediate_activation = ["none", "relu", "elu"]\nresidual = [true, false]\n'
)  # 18 designs for 12 trials


def _study_file(tmp_path, name):
    """The study file, on a space with more designs than trials (repeated designs are not trained again)."""
    space = tmp_path / "space.toml"
    space.write_text(SPACE)
    study_file = tmp_path / f"{name}.toml"
    study_file.write_text(
        tiny_study_toml(
            space=str(space),
            trials=12,
            seed_trials=[],
            sampler="random",
            heartbeat_interval=2,
            training={"epochs": 3},
        )
    )
    return study_file


def _command(study_file, out, *extra):
    return [
        sys.executable,
        "-m",
        "xsearch.cli",
        "run",
        "--study",
        str(study_file),
        "--out",
        str(out),
        *extra,
    ]


def _env():
    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}


def _kill_a_worker_mid_trial(study_loader, workers, timeout=300):
    """SIGKILL the worker of the first trial between its first and last epoch; its trial number."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.5)
        try:
            trials = study_loader().get_trials(deepcopy=False)
        except KeyError:
            continue
        for trial in trials:
            pid = trial.user_attrs.get("worker_pid")
            victim = next((p for p in workers if p.pid == pid), None)
            if (
                trial.state == RUNNING
                and 1 <= trial.user_attrs.get("epochs_done", 0) < 3
                and victim
            ):
                victim.send_signal(signal.SIGKILL)
                victim.wait()
                return trial.number
    raise AssertionError("no worker reached a running trial in time")


def _check_exact(study, killed):
    trials = study.get_trials(deepcopy=False)
    numbers = [t.number for t in trials]
    assert len(numbers) == len(set(numbers))
    complete = [t for t in trials if t.state == COMPLETE]
    # exact: nothing lost, nothing extra
    assert len([t for t in complete if not is_repeat(t)]) == 12
    failed = [t for t in trials if t.state == FAIL]
    assert [t.number for t in failed] == [killed]
    retries = [
        t
        for t in complete
        if t.user_attrs.get("retry_of") == killed or t.system_attrs.get("failed_trial") == killed
    ]
    assert len(retries) == 1
    assert retries[0].params == failed[0].params
    return len(trials), retries[0]


@pytest.mark.slow
def test_three_machines_on_postgresql_survive_a_killed_worker(tmp_path, postgres_url):
    study_file = _study_file(tmp_path, "pg")
    machines = [
        subprocess.Popen(
            _command(study_file, tmp_path / f"machine{i}", "--storage", postgres_url),
            env=_env(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(3)
    ]
    try:
        storage = open_storage(postgres_url, tmp_path)
        workers = _ChildProcesses(*(machine.pid for machine in machines))
        killed = _kill_a_worker_mid_trial(
            lambda: optuna.load_study(study_name="pg", storage=storage), workers
        )
        errors = [machine.communicate(timeout=600)[1] for machine in machines]
    finally:
        for machine in machines:
            machine.kill()
    assert [machine.returncode for machine in machines] == [0, 0, 0], [
        [line for line in error.splitlines() if "xsearch" in line or "Error" in line][-20:]
        for error in errors
    ]
    # its machine restarted the worker
    assert sum("crashed with status -9" in error for error in errors) == 1
    total, retry = _check_exact(optuna.load_study(study_name="pg", storage=storage), killed)
    print(
        f"postgresql: 3 machines, 12 trials, 1 kill, 1 retry (trial {retry.number}), {total} trials stored, 0 lost"
    )


@pytest.mark.slow
def test_local_workers_on_the_journal_survive_a_killed_worker(tmp_path):
    study_file = _study_file(tmp_path, "local")
    parent = subprocess.Popen(
        _command(study_file, tmp_path / "run", "--workers", "3"),
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    journal = tmp_path / "run" / "study.journal"
    storage = lambda: optuna.load_study(  # noqa: E731
        study_name="local", storage=open_storage(str(journal), journal.parent)
    )
    try:
        killed = _kill_a_worker_mid_trial(storage, _ChildProcesses(parent.pid))
        _out, err = parent.communicate(timeout=600)
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)
    assert parent.returncode == 0, [
        line for line in err.splitlines() if "xsearch" in line or "Error" in line
    ][-20:]
    assert "crashed with status -9" in err  # reported, and the worker was restarted
    total, retry = _check_exact(storage(), killed)
    # continued from the killed trial's checkpoint
    assert_resumed_from_epoch_1(retry, storage().trials[killed], epochs=3)
    print(
        f"journal: 3 workers, 12 trials, 1 kill, 1 retry (trial {retry.number}), {total} trials stored, 0 lost"
    )


class _ChildProcesses:
    """The worker processes of `xsearch run` supervisors, as kill-able handles (found through /proc)."""

    def __init__(self, *parent_pids):
        self.parent_pids = parent_pids

    def __iter__(self):
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as handle:
                        ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                if ppid in self.parent_pids:
                    yield _Handle(int(entry))


class _Handle:
    def __init__(self, pid):
        self.pid = pid

    def send_signal(self, sig):
        os.kill(self.pid, sig)

    def wait(self):
        while (
            os.path.exists(f"/proc/{self.pid}")
            and "Z" not in Path(f"/proc/{self.pid}/stat").read_text().split()[2]
        ):
            time.sleep(0.1)
