"""The SLURM example on a real single-node cluster: an array of three `xsearch run` tasks on one PostgreSQL study.

Each task runs in a UTS namespace of its own, with the host name ``node<task>``: as on a real cluster, the tasks
cannot see each other's processes by host and process id. A task cancelled by `scancel` (SIGTERM, as when a job is
preempted or runs out of time) marks its trial interrupted and queues it at once; a task killed outright (SIGKILL)
leaves its trial to be failed by its heartbeat. Either way another task retries it.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest

from tests.helpers import tiny_study_toml
from xsearch.study.record import TrialAttr, is_repeat
from xsearch.study.retries import budget_trials
from xsearch.study.storage import open_storage

SLURM = Path(__file__).resolve().parents[2] / "examples" / "slurm"
TASKS, BUDGET, EPOCHS = 3, 6, 2
SPACE = (
    '[axes]\nmiddle_repeats = [0]\nwidth = [0.125]\ndepth_multiplier = [1]\nsegments = [1, 8, "depthwise"]\n'
    'intermediate_activation = ["none", "relu", "elu"]\nresidual = [true, false]\n'
)  # 18 designs
OWN_NODE = """#!/bin/sh
# xsearch as if on a node of its own: a host name per array task
exec unshare --uts sh -c 'hostname "node$SLURM_ARRAY_TASK_ID" && exec "$0" "$@"' {python} -m xsearch.cli "$@"
"""
# one cluster on fixed ports: under pytest-xdist its tests run one at a time, on one worker
pytestmark = pytest.mark.xdist_group("slurm")
COMPLETE, RUNNING, FAIL = (
    optuna.trial.TrialState.COMPLETE,
    optuna.trial.TrialState.RUNNING,
    optuna.trial.TrialState.FAIL,
)


@pytest.fixture
def slurm(tmp_path) -> Iterator[dict[str, str]]:
    """A single-node cluster started by `examples/slurm/local_cluster.sh` and stopped after the test: its clients'
    environment. Skipped without SLURM, munge or root; never under ``CI=true``."""
    missing = [
        name
        for name in ("slurmctld", "slurmd", "sbatch", "munged", "unshare")
        if not shutil.which(name)
    ]
    problem = (
        f"{', '.join(missing)} missing (apt-get install slurm-wlm munge)"
        if missing
        else None
        if os.geteuid() == 0
        else "a local SLURM cluster needs root (slurmd starts the jobs)"
    )
    if problem and os.environ.get("CI") == "true":
        pytest.fail(f"{problem}: required under CI=true")
    if problem:
        pytest.skip(problem)
    folder = tmp_path / "cluster"
    started = subprocess.run(
        [SLURM / "local_cluster.sh", "start", folder], capture_output=True, text=True, timeout=120
    )
    try:
        assert started.returncode == 0, started.stderr
        yield {**os.environ, "SLURM_CONF": str(folder / "slurm.conf")}
    finally:
        subprocess.run([SLURM / "local_cluster.sh", "stop", folder], timeout=120, check=False)


CANCELS = {  # how a task is stopped, its final state, and the failure reason of the trial it ran
    "scancel": ("CANCELLED", "interrupted"),  # SIGTERM, as for a preempted job: retried at once
    "killed": (
        "FAILED",
        None,
    ),  # every process SIGKILLed, as when a node dies: failed by its heartbeat
}


@pytest.mark.slow
@pytest.mark.parametrize("how", sorted(CANCELS))
def test_an_array_of_three_tasks_shares_one_study_and_retries_a_cancelled_tasks_trial(
    slurm, postgres_url, tmp_path, how
):
    stopped_state, reason = CANCELS[how]
    (tmp_path / "space.toml").write_text(SPACE)
    (tmp_path / "slurm.toml").write_text(
        tiny_study_toml(
            space=str(tmp_path / "space.toml"),
            trials=BUDGET,
            seed_trials=[],
            sampler="random",
            heartbeat_interval=5,
            training={"epochs": EPOCHS},
        )
    )
    (tmp_path / "own-node").write_text(OWN_NODE.format(python=sys.executable))
    (tmp_path / "own-node").chmod(0o755)
    environment = {
        **slurm,
        "XSEARCH_STUDY": str(tmp_path / "slurm.toml"),
        "XSEARCH_STORAGE": postgres_url,
        "XSEARCH": str(tmp_path / "own-node"),
        "TMPDIR": str(tmp_path),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "CUDA_VISIBLE_DEVICES": "",
    }
    job = subprocess.run(
        [
            "sbatch",
            "--parsable",
            f"--array=0-{TASKS - 1}",
            "--gres=none",
            "--cpus-per-task=1",
            f"--output={tmp_path}/task-%a.out",
            SLURM / "xsearch-array.sbatch",
        ],
        env=environment,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    load = lambda: optuna.load_study(  # noqa: E731
        study_name="slurm", storage=open_storage(postgres_url, tmp_path)
    )

    victim, killed = _cancel_a_task_mid_trial(load, job, slurm, tmp_path, how)
    states = _wait_for_the_job(job, slurm, tmp_path)
    logs = _logs(tmp_path)
    assert {task: state for task, (state, _) in states.items()} == {
        task: stopped_state if task == victim else "COMPLETED" for task in range(TASKS)
    }, logs
    assert all(states[task][1] == "0:0" for task in range(TASKS) if task != victim), logs
    assert all(f"task {task} of job {job}" in logs[task] for task in range(TASKS))
    # each its node-local run folder
    assert all((tmp_path / f"xsearch-{job}-{task}").is_dir() for task in range(TASKS))

    study = load()
    trials = study.get_trials(deepcopy=False)
    assert optuna.get_all_study_names(open_storage(postgres_url, tmp_path)) == ["slurm"]
    assert {t.user_attrs[TrialAttr.WORKER_HOST] for t in trials} == {
        f"node{task}" for task in range(TASKS)
    }
    assert not [t for t in trials if t.state not in (COMPLETE, FAIL)]
    failed = [t for t in trials if t.state == FAIL]
    assert [t.number for t in failed] == [killed]
    assert failed[0].user_attrs.get(TrialAttr.FAILURE_REASON) == reason
    retries = [t for t in trials if t.user_attrs.get(TrialAttr.RETRY_OF) == killed]
    assert len(retries) == 1
    assert retries[0].state == COMPLETE
    assert retries[0].params == failed[0].params
    assert retries[0].user_attrs[TrialAttr.WORKER_HOST] != f"node{victim}"
    trained = [t for t in trials if t.state == COMPLETE and not is_repeat(t)]
    # exact: nothing lost, nothing extra
    assert len(trained) == len(budget_trials(trials)) == BUDGET
    print(
        f"slurm: {TASKS} tasks, 1 study, {BUDGET} trials, task {victim} {how} in trial {killed}, "
        f"retried as trial {retries[0].number} on {retries[0].user_attrs[TrialAttr.WORKER_HOST]}, "
        f"{len(trials)} trials stored"
    )


def _cancel_a_task_mid_trial(
    load, job: str, environment: dict[str, str], folder: Path, how: str, timeout: float = 300
) -> tuple[int, int]:
    """Once every task has started a trial, stop the task of a RUNNING trial in its first epoch (seconds from its end,
    so that it cannot finish before the signal) with `scancel`, or SIGKILL to each of its processes (`scontrol
    listpids`): the task and the trial's number."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        time.sleep(0.5)
        assert _queued(job, environment), (
            f"job {job} ended before a task was cancelled: {_logs(folder)}"
        )
        try:
            trials = load().get_trials(deepcopy=False)
        except KeyError:  # not created yet
            continue
        hosts = {t.user_attrs.get(TrialAttr.WORKER_HOST) for t in trials}
        running = [
            t
            for t in trials
            if t.state == RUNNING
            and TrialAttr.WORKER_HOST in t.user_attrs
            and not t.user_attrs.get(TrialAttr.EPOCHS_DONE)
        ]
        if hosts >= {f"node{task}" for task in range(TASKS)} and running:
            victim = int(running[0].user_attrs[TrialAttr.WORKER_HOST].removeprefix("node"))
            if how == "scancel":
                subprocess.run(["scancel", f"{job}_{victim}"], env=environment, check=True)
            else:
                _kill_every_process(f"{job}_{victim}", environment)
            return victim, running[0].number
    raise AssertionError(
        f"the tasks did not all start a trial within {timeout:.0f} s: {_logs(folder)}"
    )


def _kill_every_process(task: str, environment: dict[str, str]) -> None:
    """SIGKILL every process of an array task at once, as a node that dies would stop them."""
    job, index = task.split("_")
    ids = subprocess.run(
        ["squeue", "--noheader", "--array", f"--jobs={job}", "--format=%A %K"],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    # the task's own job id
    own = next(line.split()[0] for line in ids if line.split() and line.split()[1] == index)
    listed = subprocess.run(
        ["scontrol", "listpids", own], env=environment, capture_output=True, text=True, check=True
    )
    pids = [
        int(line.split()[0]) for line in listed.stdout.splitlines()[1:] if line.split()[0].isdigit()
    ]
    assert pids, listed.stdout
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _wait_for_the_job(
    job: str, environment: dict[str, str], folder: Path, timeout: float = 600
) -> dict[int, tuple[str, str]]:
    """Each array task's final state and exit code, once none is left in the queue."""
    deadline = time.time() + timeout
    while _queued(job, environment):
        assert time.time() < deadline, (
            f"job {job} still runs after {timeout:.0f} s: {_logs(folder)}"
        )
        time.sleep(2)
    shown = subprocess.run(
        ["scontrol", "--oneliner", "show", "job", job],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {
        int(task): (state, code)
        for task, state, code in re.findall(
            r"ArrayTaskId=(\d+) .*?JobState=(\w+) .*?ExitCode=(\d+:\d+)", shown
        )
    }


def _queued(job: str, environment: dict[str, str]) -> bool:
    """Whether a task of the job is still pending or running."""
    return bool(
        subprocess.run(
            ["squeue", "--noheader", f"--jobs={job}"],
            env=environment,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )


def _logs(folder: Path) -> dict[int, str]:
    """Each array task's output (stdout and stderr)."""
    return {
        int(path.stem.removeprefix("task-")): path.read_text()
        for path in sorted(folder.glob("task-*.out"))
    }
