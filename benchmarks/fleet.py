"""A fleet of workers on one study: PostgreSQL, the gRPC storage proxy and the journal file as the fleet grows.

::

    python -m benchmarks.fleet                                    # 8, 32, 128, 256 workers on each storage, then TPE
    python -m benchmarks.fleet --workers 4 --storages journal --trials 8 --sampler-sizes --out /tmp/fleet.json
    PGPORT=5433 PG_MAX_CONNECTIONS=1000 bash .ci/postgres    # a server of its own for 256 workers' connections,
    python -m benchmarks.fleet --postgres postgresql://postgres@127.0.0.1:5433     # then measured against it

Each run starts N worker processes, forked from this one after it imported everything (so their shared code is
counted once), on a fresh ``xception-bench`` study with xsearch's TPE sampler (``--sampler``) and the bench
table's trainer (`benchmarks.replay.TableTrainer`: a trial looks its design up instead of training; each of its
epochs sleeps ``--epoch-s`` to stand in for training). The workers run xsearch's trial path (`StudyObjective`,
the shared budget, `sweep_dead_local_trials`, heartbeats on a database) with Keras on its numpy backend: no
TensorFlow (Keras 3's numpy backend imports ``jax.numpy`` for its FFTs; no device is used). During a run
``--kill`` of the workers (at least one), each picked at random among those training at the moment, are
SIGKILLed and not restarted, spread over the first 70 % of the trials to begin training (a fleet larger than the
budget trains it in one wave); the survivors retry their trials. A run ends when the study has ``--trials``
trials, or when every worker has stopped after 25 repeats of trained designs in a row, as `run_study` stops.
On ``grpc``, every ``--workers-per-proxy`` (8) workers share a storage proxy, as a cluster runs one proxy per
machine in front of the one database. The workers run at niceness ``--worker-nice`` (10): here they share the
machine's cores with the storage's own processes (PostgreSQL's backends, the proxies), which a cluster would give a
machine of their own; at equal niceness, one proxy process got a 129th of a core beside 128 workers.

Measured per run: trials per second (the counted trials, and every finished trial: repeats of a trained design,
surplus trials past the budget, failed trials); each storage call's latency in the surviving workers (p50, p99;
`time_calls`); the database connections held (``pg_stat_activity`` of the run's database, sampled every 0.25 s:
the workers', or the proxy's); memory per worker (RSS, PSS and private memory from ``/proc``, sampled); and
`account`: nothing lost, nothing duplicated. Direct PostgreSQL runs only where the workers' connections
(measured per worker at the smaller fleets) fit in ``max_connections``, and a run only where its workers fit
in ``--memory-gib``. Then `sampler_times`: TPE's time per trial in one process as a study grows. Results go to
``--out`` (``benchmarks/results/fleet.json``) and a CSV beside it per table.
"""

from __future__ import annotations

import os

# before keras is imported: no TensorFlow in the workers (imported, the module leaves it be)
if __name__ == "__main__":
    os.environ.setdefault("KERAS_BACKEND", "numpy")

import argparse
import collections
import csv
import dataclasses
import datetime
import faulthandler
import gc
import importlib.metadata
import json
import math
import multiprocessing
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import keras
import numpy as np
import optuna
import pandas as pd
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock
from optuna.trial import FrozenTrial, TrialState

from benchmarks.replay import BenchTable, TableTrainer
from xsearch.model.space import SearchSpace
from xsearch.run.optuna_callbacks import RepeatStreak, stop_at_budget
from xsearch.run.runner import REPEAT_STREAK_LIMIT, WaitingPoll, next_work
from xsearch.study.objective import StudyObjective
from xsearch.study.optuna_private import HEARTBEAT_ATTR
from xsearch.study.record import TrialAttr, is_repeat
from xsearch.study.repeats import setup_digest
from xsearch.study.retries import budget_trials, retried_from, sweep_dead_local_trials
from xsearch.study.sampler import make_sampler
from xsearch.study.setup import open_study
from xsearch.study.spec import StudySpec, load_study_spec
from xsearch.study.storage import open_storage

HERE = Path(__file__).parent
# read once, shared by the forked workers
TABLE = BenchTable.from_frame(pd.read_csv(HERE / "xception_bench.csv"))
POSTGRES = "postgresql://postgres@127.0.0.1:5432"  # the default --postgres
STORAGES = ("postgresql", "grpc", "journal")
MONITOR = (
    "xsearch-fleet-monitor"  # application_name of this harness's own connections (not counted)
)
STORAGE_CALLS = sorted(
    {name for name in vars(optuna.storages.BaseStorage) if not name.startswith("_")}
    | {"record_heartbeat"}
)
SAMPLERS: dict[str, Callable[[StudySpec, SearchSpace], optuna.samplers.BaseSampler]] = {
    "tpe (xsearch: multivariate, constant liar)": lambda spec, space: make_sampler(spec, space, 1),
    "tpe without constant liar": lambda spec, space: optuna.samplers.TPESampler(
        seed=1, multivariate=True, n_startup_trials=10
    ),
    "tpe, n_startup_trials=1000": lambda spec, space: optuna.samplers.TPESampler(
        seed=1, multivariate=True, constant_liar=True, n_startup_trials=1000
    ),
    "nsga2 (xsearch)": lambda spec, space: make_sampler(
        dataclasses.replace(spec, sampler="nsga2"), space, 1
    ),
    "random": lambda spec, space: optuna.samplers.RandomSampler(seed=1),
}
KEPT_ATTRS = (
    TrialAttr.WORKER_PID,
    TrialAttr.EPOCHS_DONE,
    TrialAttr.RETRY_OF,
    TrialAttr.SURPLUS,
    TrialAttr.FAILURE_REASON,
)
"""The user attrs of a timed-out run's kept trials."""
FLEET_RUNNING = 32
"""Running trials beside the timed one in `sampler_times`' fleet case (the constant liar treats
each as a bad result)."""


# ---- what the workers do ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Run:
    """What every worker of a run needs."""

    storage: str
    spec: StudySpec
    epoch_s: float
    folder: Path
    nice: int


class _Training(keras.callbacks.Callback):
    """Stands in for the training of an epoch: sleeps ``seconds`` after each epoch the table replays."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        time.sleep(self.seconds)


def time_calls(storage: optuna.storages.BaseStorage) -> dict[str, list[float]]:
    """Time each public call on ``storage`` (its methods replaced on the instance): the seconds of
    every call, by name."""
    timings: dict[str, list[float]] = collections.defaultdict(list)

    def timed(method: Callable[..., Any], seconds: list[float]) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return method(*args, **kwargs)
            finally:
                seconds.append(time.perf_counter() - started)

        return call

    for name in STORAGE_CALLS:
        if callable(getattr(storage, name, None)):
            setattr(storage, name, timed(getattr(storage, name), timings[name]))
    return timings


def work(run: Run, go: Any) -> None:
    """One worker: once ``go`` is set, xsearch's trial loop on the bench table until the study has its trials; then its
    storage timings. Its standard error goes to ``worker-<pid>.log`` in the run's folder.
    """
    assert "tensorflow" not in sys.modules, "a fleet worker must not import TensorFlow"
    os.dup2(os.open(run.folder / f"worker-{os.getpid()}.log", os.O_WRONLY | os.O_CREAT), 2)
    # a run that times out asks its live workers where they are
    faulthandler.register(signal.SIGUSR1, all_threads=True)
    # the storage's processes first, as on a cluster where the database has its own machine
    os.nice(run.nice)
    go.wait()  # every worker of the fleet starts at once
    space = SearchSpace.from_toml(run.spec.space)
    study = open_study(
        run.spec,
        space,
        open_storage(run.storage, run.folder, run.spec.heartbeat_interval),
        run.storage,
        shared=True,
    )
    # the storage as the study uses it (with Optuna's cache on a database)
    timings = time_calls(study._storage)
    objective = StudyObjective(
        run.spec,
        space,
        TableTrainer(TABLE, np.random.default_rng(os.getpid())),
        lambda trial: [_Training(run.epoch_s)],
    )
    digest = setup_digest(run.spec)
    repeats = RepeatStreak(REPEAT_STREAK_LIMIT)
    callbacks = [
        repeats,
        lambda study, trial: sweep_dead_local_trials(study),
        stop_at_budget(run.spec.trials, digest),
    ]
    poll, work_to_do = WaitingPoll(run.spec.heartbeat_interval), ""
    while not repeats.stopped and (
        work_to_do := next_work(
            study, run.spec.trials, digest, poll.first, was_waiting=work_to_do == "running"
        )
    ):
        if work_to_do == "trials":
            poll.reset()
            study.optimize(objective, catch=(Exception,), callbacks=callbacks)
        else:  # the other workers' trials: wait, retry those whose worker dies (as `run_study` does)
            poll.sleep()
            sweep_dead_local_trials(study)
    if repeats.stopped:  # as `run_study` stops: the sampler proposes only trained designs
        (run.folder / f"converged-{os.getpid()}").touch()
    (run.folder / f"timings-{os.getpid()}.json").write_text(json.dumps(timings))


# ---- what is measured (pure) ------------------------------------------------------------------------------


def account(
    trials: list[FrozenTrial], budget: int, timed_out: bool = False, converged: bool = False
) -> dict[str, int | None]:
    """Whether a run kept every trial exactly once.

    Every trial must be finished (none RUNNING or WAITING), COMPLETE or PRUNED (a surplus trial past the budget)
    once, or FAIL and retried exactly once (``retry_of``; its retry is a trial like any other); and the study must
    have exactly ``budget`` counted trials (`budget_trials`). Work left: ``unfinished`` trials, ``unretried`` failed
    trials, and counted trials ``missing`` from the budget. In a run that ended, work left is lost: ``lost`` is their
    sum. In a run stopped at ``--run-timeout`` (``timed_out``) it is work the stop cut short, not a loss: ``lost`` is
    None. Workers that stopped on a streak of repeats (``converged``, as `run_study` stops when the sampler
    proposes only trained designs) leave the budget short by design: ``missing`` is then not lost. ``duplicated``:
    trial numbers held twice, retries beyond the first of a failed trial, and counted trials
    beyond the budget.
    """
    numbers = [t.number for t in trials]
    retries = collections.Counter(retried_from(t) for t in trials)
    failed = [t for t in trials if t.state == TrialState.FAIL]
    counted = len(budget_trials(trials))
    left = {
        "unfinished": sum(t.state in (TrialState.RUNNING, TrialState.WAITING) for t in trials),
        "unretried": sum(retries[t.number] == 0 for t in failed),
        "missing": max(0, budget - counted),
    }
    return {
        "stored": len(trials),
        "counted": counted,
        "budget": budget,
        "repeats": sum(map(is_repeat, trials)),
        "surplus": sum(bool(t.user_attrs.get(TrialAttr.SURPLUS)) for t in trials),
        "failed": len(failed),
        "retried_once": sum(retries[t.number] == 1 for t in failed),
        **left,
        "lost": None
        if timed_out
        else left["unfinished"] + left["unretried"] + (0 if converged else left["missing"]),
        "duplicated": len(numbers)
        - len(set(numbers))
        + sum(max(0, retries[t.number] - 1) for t in failed)
        + max(0, counted - budget),
    }


def throughput(trials: list[FrozenTrial]) -> dict[str, float]:
    """Counted and finished trials per second, from the first trial's start to the last counted trial's end."""
    counted = [t for t in budget_trials(trials) if t.datetime_complete is not None]
    starts = [t.datetime_start for t in trials if t.datetime_start is not None]
    if not counted or not starts:
        return {"span_s": math.nan, "counted_per_s": math.nan, "finished_per_s": math.nan}
    end = max(t.datetime_complete for t in counted if t.datetime_complete is not None)
    span = (end - min(starts)).total_seconds()
    finished = sum(
        t.state.is_finished() and t.datetime_complete is not None and t.datetime_complete <= end
        for t in trials
    )
    return {"span_s": span, "counted_per_s": len(counted) / span, "finished_per_s": finished / span}


def latencies(timings: list[dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    """Per storage call (and ``all`` of them), over every worker's timings: calls, p50 and p99 in milliseconds."""
    pooled: dict[str, list[float]] = collections.defaultdict(list)
    for worker in timings:
        for name, seconds in worker.items():
            pooled[name] += seconds
            pooled["all"] += seconds
    return {
        name: {
            "calls": len(seconds),
            "p50_ms": 1000 * float(np.percentile(seconds, 50)),
            "p99_ms": 1000 * float(np.percentile(seconds, 99)),
        }
        for name, seconds in sorted(pooled.items())
        if seconds
    }


def memory(pid: int) -> dict[str, float] | None:
    """A process's RSS, PSS (shared pages split between their processes) and private memory, in MiB; None once gone."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    kib = {
        line.split(":")[0]: float(line.split()[1])
        for line in text.splitlines()[1:]
        if line.endswith("kB")
    }
    return {
        "rss_mib": kib["Rss"] / 1024,
        "pss_mib": kib["Pss"] / 1024,
        "private_mib": (kib["Private_Clean"] + kib["Private_Dirty"]) / 1024,
    }


# ---- one run ----------------------------------------------------------------------------------------------


class Monitor:
    """The harness's view of a run: the study's trials (read beside the workers), connections and memory samples."""

    def __init__(
        self, url: str, database: str | None, workers: Sequence[BaseProcess], postgres: str
    ) -> None:
        self.url, self.database, self.workers, self.postgres = url, database, workers, postgres
        self.storage: optuna.storages.BaseStorage | None = None
        self.study: optuna.Study | None = None
        self.connections: list[int] = []
        self.memory: list[dict[str, float]] = []  # per sample: the workers' mean and total
        self.admin = _admin(postgres) if database else None

    def trials(self) -> list[FrozenTrial]:
        """The study's trials ([] until a worker has created it); read from the database itself, not the proxy."""
        if self.study is None:
            try:
                self.storage = self.storage or self._storage()
                self.study = optuna.load_study(study_name="fleet", storage=self.storage)
            except Exception:  # no tables or no study yet
                return []
        return self.study.get_trials(deepcopy=False)

    def _storage(self) -> optuna.storages.BaseStorage:
        if self.database is None:
            return optuna.storages.JournalStorage(
                JournalFileBackend(self.url, lock_obj=JournalFileOpenLock(self.url))
            )
        return optuna.storages.RDBStorage(
            f"{self.postgres}/{self.database}",
            engine_kwargs={"connect_args": {"application_name": MONITOR}},
        )

    def sample_connections(self) -> None:
        if self.admin is not None:
            self.connections.append(
                self.admin.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND application_name <> %s",
                    (self.database, MONITOR),
                ).fetchone()[0]
            )

    def sample_memory(self, rng: np.random.Generator, most: int = 16) -> None:
        """The memory of up to ``most`` live workers picked at random: their mean, and the total it makes for all."""
        alive = [w.pid for w in self.workers if w.pid and w.is_alive()]
        found = [
            m for m in (memory(int(pid)) for pid in rng.permutation(alive)[:most]) if m is not None
        ]
        if found:
            self.memory.append(
                {f"{key}_mean": float(np.mean([m[key] for m in found])) for key in found[0]}
                | {
                    f"{key}_total": float(np.mean([m[key] for m in found])) * len(alive)
                    for key in found[0]
                }
            )

    def close(self) -> None:
        if self.admin is not None:
            self.admin.close()
        if isinstance(self.storage, optuna.storages.RDBStorage):
            self.storage.engine.dispose()


def _admin(postgres: str) -> Any:
    import psycopg

    return psycopg.connect(f"{postgres}/postgres", autocommit=True, application_name=MONITOR)


@contextmanager
def storage_for(
    kind: str, n: int, folder: Path, postgres: str, workers_per_proxy: int
) -> Iterator[tuple[list[str], str | None, list[subprocess.Popen]]]:
    """A fresh storage of ``kind``: the URLs the workers share out in turn, its database (None: the journal), and the
    proxies (``grpc``: one per ``workers_per_proxy`` workers, as one per machine of a cluster).
    """
    if kind == "journal":
        yield [str(folder / "study.journal")], None, []
        return
    database = f"xsearch_fleet_{kind}_{n}_{os.getpid()}"
    admin = _admin(postgres)
    admin.execute(f"CREATE DATABASE {database}")
    proxies: list[subprocess.Popen] = []
    try:
        urls = [f"{postgres}/{database}"]
        if kind == "grpc":
            started = [
                _start_proxy(urls[0], folder / f"proxy-{i}.log")
                for i in range(math.ceil(n / workers_per_proxy))
            ]
            proxies, urls = [proxy for proxy, _ in started], [url for _, url in started]
        yield urls, database, proxies
    finally:
        for proxy in proxies:
            proxy.terminate()
            proxy.wait()
        admin.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        admin.close()


def _start_proxy(database_url: str, log: Path) -> tuple[subprocess.Popen, str]:
    """``xsearch storage-proxy`` on a free port in front of ``database_url``, once it says where it listens."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proxy = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xsearch.cli",
            "storage-proxy",
            "--storage",
            database_url,
            "--port",
            str(port),
        ],
        stderr=log.open("w"),
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 60
    while "storage proxy for" not in log.read_text():
        if proxy.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"the storage proxy did not start: {log.read_text()}")
        time.sleep(0.1)
    return proxy, f"grpc://127.0.0.1:{port}"


def run_fleet(
    kind: str, n: int, args: argparse.Namespace, rng: np.random.Generator
) -> dict[str, Any]:
    """N workers of one storage kind until the study has its trials, killing ``args.kill`` of them;
    what was measured."""
    folder = Path(tempfile.mkdtemp(prefix=f"fleet-{kind}-{n}-"))
    spec = dataclasses.replace(
        load_study_spec("xception-bench"), name="fleet", sampler=args.sampler, trials=args.trials
    )
    epochs = TABLE.epochs
    try:
        with storage_for(kind, n, folder, args.postgres, args.workers_per_proxy) as (
            urls,
            database,
            proxies,
        ):
            context = multiprocessing.get_context("fork")
            go = context.Event()
            runs = [Run(url, spec, args.epoch_s, folder, args.worker_nice) for url in urls]
            workers = [
                context.Process(target=work, args=(runs[i % len(runs)], go)) for i in range(n)
            ]
            forking = time.monotonic()
            for worker in workers:
                worker.start()
            started = time.monotonic()
            go.set()
            monitor = Monitor(urls[0], database, workers, args.postgres)
            kills = max(1, round(args.kill * n))
            # trials that began training before each kill (a fleet larger than the budget trains it in one wave)
            thresholds = sorted(rng.uniform(0, 0.7 * args.trials, kills))
            killed: list[int] = []
            proxy_rss: list[float] = []
            polls = 0
            while (
                any(w.is_alive() for w in workers) and time.monotonic() - started < args.run_timeout
            ):
                # the trials every 0.5 s (reading them loads the storage)
                if polls % 2 == 0 and len(killed) < kills:
                    trials = monitor.trials()
                    done = sum(map(_began_training, trials))
                    victim = (
                        _training_worker(trials, workers, killed, epochs, rng)
                        if done >= thresholds[len(killed)]
                        else None
                    )
                    if victim is not None:
                        os.kill(victim, signal.SIGKILL)
                        killed.append(victim)
                monitor.sample_connections()
                if polls % 40 == 0:
                    monitor.sample_memory(rng)
                    proxy_rss.extend(
                        m["rss_mib"] for m in (memory(proxy.pid) for proxy in proxies) if m
                    )
                polls += 1
                time.sleep(0.25)
            wall = time.monotonic() - started
            timed_out = any(w.is_alive() for w in workers)
            if timed_out and args.keep:
                _dump_stacks(workers)
            # every live worker killed before any is joined: on a starved core each takes seconds to exit
            stopped = [w.pid for w in workers if w.is_alive()]
            for worker in workers:
                if worker.pid in stopped:
                    worker.kill()
            for worker in workers:
                worker.join()
            trials = monitor.trials()
            monitor.close()
            if timed_out and args.keep:
                _keep(folder, trials, args.keep)
            timings = [json.loads(path.read_text()) for path in folder.glob("timings-*.json")]
            converged = len(list(folder.glob("converged-*")))
            logs = [path.read_text() for path in folder.glob("worker-*.log")]
            errors = [
                w.exitcode
                for w in workers
                if w.pid not in killed and w.pid not in stopped and w.exitcode != 0
            ]
            return {
                "storage": kind,
                "workers": n,
                "proxies": len(proxies),
                "trials": args.trials,
                "epoch_s": args.epoch_s,
                "wall_s": wall,
                "fork_s": started - forking,
                "timed_out": timed_out,
                "kills": len(killed),
                "kills_planned": kills,
                "worker_errors": len(errors),
                "accounting": account(trials, args.trials, timed_out, converged=bool(converged)),
                "workers_stopped_on_repeats": converged,
                "throughput": throughput(trials),
                "latency_ms": latencies(timings),
                "workers_reporting_timings": len(timings),
                "connections": {
                    "max": max(monitor.connections),
                    "median": float(np.median(monitor.connections)),
                }
                if monitor.connections
                else None,
                "memory_mib": {
                    key: max(sample[key] for sample in monitor.memory) for key in monitor.memory[0]
                }
                if monitor.memory
                else None,
                "proxy_rss_mib": max(proxy_rss) if proxy_rss else None,
                "journal_locks_broken": sum(
                    log.count("Forcibly releasing the lock file") for log in logs
                ),
                "worker_tracebacks": sum(log.count("Traceback") for log in logs),
            }
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _began_training(trial: FrozenTrial) -> bool:
    """Whether ``trial`` trained an epoch (a trained design, not a repeat of one nor a surplus trial)."""
    return not is_repeat(trial) and (
        trial.user_attrs.get(TrialAttr.EPOCHS_DONE, 0) >= 1 or trial.state == TrialState.COMPLETE
    )


def _dump_stacks(workers: Sequence[BaseProcess]) -> None:
    """Every live worker's threads' stacks, written to its log (`faulthandler` on SIGUSR1)."""
    for worker in workers:
        if worker.pid is not None and worker.is_alive():
            os.kill(worker.pid, signal.SIGUSR1)
    time.sleep(2)


def _keep(folder: Path, trials: list[FrozenTrial], keep: Path) -> None:
    """A timed-out run's folder (worker and proxy logs) and its trials as the database holds them, under ``keep``."""
    kept = keep / folder.name
    shutil.copytree(folder, kept)
    frame = pd.DataFrame(
        {
            "number": t.number,
            "trial_id": t._trial_id,
            "state": t.state.name,
            "start": t.datetime_start,
            "complete": t.datetime_complete,
            "heartbeat": t.system_attrs.get(HEARTBEAT_ATTR),
            **{key: t.user_attrs.get(key) for key in KEPT_ATTRS},
        }
        for t in trials
    )
    frame.convert_dtypes().to_csv(kept / "trials.csv", index=False)
    print(f"fleet: the timed-out run is kept in {kept}", file=sys.stderr, flush=True)


def _training_worker(
    trials: list[FrozenTrial],
    workers: Sequence[BaseProcess],
    killed: list[int],
    epochs: int,
    rng: np.random.Generator,
) -> int | None:
    """A worker picked at random among those training a trial now (between its first and last epoch), if any."""
    alive = {w.pid for w in workers if w.pid is not None and w.is_alive()} - set(killed)
    training = sorted(
        {
            int(t.user_attrs[TrialAttr.WORKER_PID])
            for t in trials
            if t.state == TrialState.RUNNING
            and TrialAttr.WORKER_PID in t.user_attrs
            and 1 <= t.user_attrs.get(TrialAttr.EPOCHS_DONE, 0) < epochs
        }
        & alive
    )
    return int(rng.choice(training)) if training else None


def skip_reason(
    kind: str,
    n: int,
    runs: list[dict[str, Any]],
    max_connections: int,
    memory_gib: float,
    workers_per_proxy: int = 8,
) -> str | None:
    """Why a run of ``n`` workers on ``kind`` is not started, from the runs so far (None: run it).

    A database's clients (the workers for direct PostgreSQL, the proxies for ``grpc``) need their connections (the
    most seen per client so far) within ``max_connections`` less 10 for the server's reserved slots and its other
    users; every run needs its workers' private memory (the
    most seen per worker so far) and their shared memory within ``memory_gib``; and a storage that did not finish
    a smaller fleet's run in time is not given a larger fleet.
    """
    slower = [r["workers"] for r in runs if r["storage"] == kind and r.get("timed_out")]
    if slower:
        return f"{kind} did not finish the run of {min(slower)} workers within --run-timeout"
    if kind != "journal":
        client = "worker" if kind == "postgresql" else "proxy"
        clients = n if kind == "postgresql" else math.ceil(n / workers_per_proxy)
        per_client = max(
            (
                r["connections"]["max"] / (r["workers"] if kind == "postgresql" else r["proxies"])
                for r in runs
                if r["storage"] == kind and r.get("connections")
            ),
            default=2.0,
        )
        if per_client * clients > max_connections - 10:
            return (
                f"about {per_client * clients:.0f} connections ({per_client:.2f} per {client}, measured) exceed "
                f"PostgreSQL's max_connections = {max_connections} less 10 for its reserved slots and other users"
            )
    measured = [r["memory_mib"] for r in runs if r.get("memory_mib")]
    if measured:
        private = max(m["private_mib_mean"] for m in measured)
        shared = max(m["pss_mib_total"] - m["private_mib_total"] for m in measured)
        if (private * n + shared) / 1024 > memory_gib:
            return (
                f"about {(private * n + shared) / 1024:.1f} GiB for the workers ({private:.0f} MiB private each, "
                f"measured, plus {shared:.0f} MiB shared) exceed --memory-gib {memory_gib}"
            )
    return None


# ---- the sampler as the study grows -----------------------------------------------------------------------


def sampler_times(sizes: list[int], asks: int, seed: int = 0) -> list[dict[str, Any]]:
    """Seconds per trial that each sampler of `SAMPLERS` takes (ask and the space's suggestions; the median of
    ``asks``) on a study of each size, and the default TPE's with `FLEET_RUNNING` trials running beside it.

    The study (in memory, one process) grows with random designs of the bench table, valued by the table's means.
    """
    spec = dataclasses.replace(load_study_spec("xception-bench"), sampler="tpe", trials=60)
    space = SearchSpace.from_toml(spec.space)
    truth = TABLE.truth([TrialAttr.VAL_ACCURACY, TrialAttr.PARAMS, TrialAttr.LATENCY_MS])
    study = optuna.create_study(
        directions=[o.direction for o in spec.objective_list],
        sampler=optuna.samplers.RandomSampler(seed=seed),
    )

    def trial(tell: bool = True) -> float:
        started = time.perf_counter()
        asked = study.ask()
        config = space.sample(asked)
        seconds = time.perf_counter() - started
        if tell:
            asked.set_constraint("oom", 0.0)
            study.tell(asked, list(truth.loc[config.to_json()]))
        return seconds

    default = next(iter(SAMPLERS))
    cases = [
        *((name, make, 0) for name, make in SAMPLERS.items()),
        (f"{default}, {FLEET_RUNNING} trials running", SAMPLERS[default], FLEET_RUNNING),
    ]
    rows: list[dict[str, Any]] = []
    count = 0
    for size in sizes:
        study.sampler = optuna.samplers.RandomSampler(seed=seed + size)
        while count < size:
            trial()
            count += 1
        for name, make, running_count in cases:
            running = [study.ask() for _ in range(running_count)]
            study.sampler = make(spec, space)
            seconds = [trial() for _ in range(asks)]
            count += asks
            for asked in running:
                study.tell(asked, state=TrialState.FAIL)
            count += len(running)
            rows.append(
                {"sampler": name, "trials": size, "seconds_per_trial": float(np.median(seconds))}
            )
            print(
                f"fleet: sampler {name} at {size} trials: {rows[-1]['seconds_per_trial'] * 1000:.1f} ms per trial",
                flush=True,
            )
    return rows


# ---- the report -------------------------------------------------------------------------------------------


def environment(postgres: str) -> dict[str, Any]:
    """The machine and the versions that matter here."""
    versions = {
        name: _version(name)
        for name in ("xsearch", "optuna", "sqlalchemy", "psycopg", "grpcio", "keras", "numpy")
    }
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    memory_kib = float(Path("/proc/meminfo").read_text().split()[1])
    return {
        "host": platform.node(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "cores_used": sorted(os.sched_getaffinity(0)),
        "memory_gib": memory_kib / 1024**2,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "keras_backend": keras.backend.backend(),
        "versions": versions,
        "postgresql": _postgres_version(postgres),
    }


def _version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def _postgres_version(postgres: str) -> str | None:
    try:
        with _admin(postgres) as admin:
            return str(admin.execute("SHOW server_version").fetchone()[0])
    except Exception:
        return None


def _max_connections(postgres: str) -> int:
    with _admin(postgres) as admin:
        return int(admin.execute("SHOW max_connections").fetchone()[0])


def flat(run: dict[str, Any]) -> dict[str, Any]:
    """A run as one CSV row."""
    latency = run.get("latency_ms") or {}
    return {key: run.get(key) for key in ("storage", "workers", "proxies", "trials", "skipped")} | (
        {}
        if run.get("skipped")
        else {
            "wall_s": round(run["wall_s"], 1),
            "counted_per_s": round(run["throughput"]["counted_per_s"], 3),
            "finished_per_s": round(run["throughput"]["finished_per_s"], 3),
            "span_s": round(run["throughput"]["span_s"], 1),
            **{
                f"latency_{name}_{q}": round(latency[name][f"{q}_ms"], 2)
                for name in ("all", "set_trial_user_attr", "get_all_trials", "create_new_trial")
                if name in latency
                for q in ("p50", "p99")
            },
            "connections_max": (run["connections"] or {}).get("max"),
            "proxy_rss_mib": run["proxy_rss_mib"],
            **{key: round(value, 1) for key, value in (run["memory_mib"] or {}).items()},
            "kills": run["kills"],
            **run["accounting"],
            "worker_errors": run["worker_errors"],
            "workers_stopped_on_repeats": run.get("workers_stopped_on_repeats"),
            "timed_out": run["timed_out"],
            "journal_locks_broken": run["journal_locks_broken"],
        }
    )


def write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    with path.open("w", newline="") as file:
        writer = csv.DictWriter(file, columns)
        writer.writeheader()
        writer.writerows(rows)


def write_report(path: Path, report: dict[str, Any]) -> None:
    """The report as JSON at ``path``, its runs as CSV beside it, and its sampler times as ``<stem>_sampler.csv``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    write_csv(path.with_suffix(".csv"), [flat(run) for run in report["runs"]])
    if report.get("sampler"):
        write_csv(path.with_name(f"{path.stem}_sampler.csv"), report["sampler"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.fleet", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--workers",
        type=int,
        nargs="+",
        default=[8, 32, 128, 256],
        help="fleet sizes (default 8 32 128 256)",
    )
    parser.add_argument("--storages", nargs="+", choices=STORAGES, default=list(STORAGES))
    parser.add_argument(
        "--trials",
        type=int,
        default=60,
        help="the study's budget per run (default 60 of the 120 designs)",
    )
    parser.add_argument(
        "--epoch-s",
        type=float,
        default=0.1,
        help="seconds each replayed epoch sleeps (default 0.1)",
    )
    parser.add_argument(
        "--kill",
        type=float,
        default=0.1,
        help="fraction of the workers SIGKILLed per run (default 0.1)",
    )
    parser.add_argument(
        "--memory-gib", type=float, default=16.0, help="memory the workers may use (default 16)"
    )
    parser.add_argument(
        "--workers-per-proxy",
        type=int,
        default=8,
        help="grpc: one storage proxy per this many workers, as one per machine (default 8)",
    )
    parser.add_argument(
        "--run-timeout",
        type=float,
        default=600.0,
        help="seconds before a run is stopped (default 600)",
    )
    parser.add_argument(
        "--sampler-sizes",
        type=int,
        nargs="*",
        default=[100, 1000, 3000, 10000],
        help="study sizes at which to time the samplers (none: skip)",
    )
    parser.add_argument(
        "--asks", type=int, default=5, help="timed trials per sampler and size (default 5)"
    )
    parser.add_argument(
        "--sampler",
        choices=("tpe", "nsga2", "random"),
        default="tpe",
        help="the workers' sampler (default tpe, xsearch's default; near a budget of half the 120 designs TPE "
        "proposes trained designs again and again, which random does less)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--postgres",
        default=POSTGRES,
        help=f"the PostgreSQL server, as a URL without a database (default {POSTGRES})",
    )
    parser.add_argument(
        "--worker-nice",
        type=int,
        default=10,
        help="the workers' niceness (default 10: the storage's own processes, at 0, are served first)",
    )
    parser.add_argument("--out", type=Path, default=HERE / "results" / "fleet.json")
    parser.add_argument(
        "--keep",
        type=Path,
        help="keep each timed-out run's folder here: the logs (with the live workers' stacks) and its trials",
    )
    args = parser.parse_args(argv)
    if (
        not 0 < args.kill < 1
        or args.trials < 1
        or min(args.workers) < 1
        or args.workers_per_proxy < 1
    ):
        parser.error(
            "--kill must be in (0, 1), --trials, --workers and --workers-per-proxy at least 1"
        )
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    started = time.time()
    max_connections = (
        _max_connections(args.postgres) if {"postgresql", "grpc"} & set(args.storages) else 0
    )
    rng = np.random.default_rng(args.seed)
    gc.freeze()  # the forked workers share these objects' pages instead of copying them when the collector runs
    report = {
        "benchmark": "fleet",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "command": " ".join(
            ["python -m benchmarks.fleet", *(argv if argv is not None else sys.argv[1:])]
        ),
        "environment": environment(args.postgres) | {"worker_nice": args.worker_nice},
        "max_connections": max_connections,
        "settings": {
            key: str(value) if isinstance(value, Path) else value
            for key, value in vars(args).items()
        },
    }
    runs: list[dict[str, Any]] = []
    for n in sorted(args.workers):
        for kind in args.storages:
            reason = skip_reason(
                kind, n, runs, max_connections, args.memory_gib, args.workers_per_proxy
            )
            if reason:
                runs.append(
                    {"storage": kind, "workers": n, "trials": args.trials, "skipped": reason}
                )
            else:
                runs.append(run_fleet(kind, n, args, rng))
            print(f"fleet: {json.dumps(flat(runs[-1]))}", flush=True)
            # kept if a later run fails
            write_report(args.out, report | {"seconds": time.time() - started, "runs": runs})
    sampler = sampler_times(args.sampler_sizes, args.asks, args.seed) if args.sampler_sizes else []
    write_report(
        args.out, report | {"seconds": time.time() - started, "runs": runs, "sampler": sampler}
    )
    bad = [
        run
        for run in runs
        if not run.get("skipped") and (run["accounting"]["lost"] or run["accounting"]["duplicated"])
    ]
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
