"""`xsearch run` as a supervisor: N ordinary worker processes on one shared storage.

Trials always run in a worker process, so that a crash of the backend (segfault, out-of-memory
kill) costs one trial and a restart, never the study, and host memory is returned when a worker
is recycled.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from xsearch.common.interrupt import on_signal, raise_if_requested
from xsearch.study.failures import EXIT_RECYCLE

if TYPE_CHECKING:
    import optuna

    from xsearch.run.progress import Progress
    from xsearch.study.spec import StudySpec

CPU_CORES_PER_WORKER = 4
MAX_CRASHES = 3  # per worker slot within CRASH_WINDOW_S: more is a crash loop, not bad luck
CRASH_WINDOW_S = 600.0
SUPERVISED = (
    "XSEARCH_SUPERVISED"  # on the workers a supervisor starts; by hand: run in this process
)
RECYCLE_AFTER = "XSEARCH_RECYCLE_AFTER"  # set by the supervisor only
DEADLINE = "XSEARCH_DEADLINE"  # Unix time after which no trial starts (``--timeout``, set by the supervisor)
TRIALS_PER_WORKER = "XSEARCH_TRIALS_PER_WORKER"  # the user's setting, read by the supervisor
SUPERVISOR_PID = "XSEARCH_SUPERVISOR_PID"  # set by the supervisor: its workers die with it
WORKERS = "XSEARCH_WORKERS"  # set by the supervisor: how many workers it runs
DEFAULT_TRIALS_PER_WORKER = 20
PR_SET_PDEATHSIG = 1
WORKER_COMMAND = (sys.executable, "-m", "xsearch.cli", "run")
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


def is_worker() -> bool:
    """Whether this process is a worker that a supervisor (`run_workers`) started.

    Set ``XSEARCH_SUPERVISED=1`` to run a study in the current process (e.g. under a debugger).
    """
    return os.environ.get(SUPERVISED) == "1"


def recycle_after() -> int | None:
    """Trials this worker runs before it exits to be restarted (``None``: never)."""
    value = os.environ.get(RECYCLE_AFTER)
    return None if value is None else int(value)


def worker_total() -> int:
    """How many workers this process's supervisor runs (1 for a process that runs a study alone)."""
    return int(os.environ.get(WORKERS, "1"))


def deadline() -> float | None:
    """The Unix time after which this worker starts no trial (``None``: no ``--timeout``)."""
    value = os.environ.get(DEADLINE)
    return None if value is None else float(value)


def trials_per_worker(backend: str) -> int | None:
    """How many trials a supervised worker runs before it is recycled (``None``: never).

    On TensorFlow (2.21, Keras 3.15) each trained model keeps ~55 MB of host memory after
    ``clear_session`` (measured; JAX keeps none), so TensorFlow workers are recycled every
    ``DEFAULT_TRIALS_PER_WORKER`` trials unless ``XSEARCH_TRIALS_PER_WORKER`` says otherwise.
    """
    value = os.environ.get(TRIALS_PER_WORKER)
    if value is None:
        return DEFAULT_TRIALS_PER_WORKER if backend == "tensorflow" else None
    if not value.isdigit() or int(value) < 1:
        raise ValueError(
            f"environment variable {TRIALS_PER_WORKER} must be a positive integer; received {value!r}."
        )
    return int(value)


def hide_accelerators() -> dict[str, str]:
    """Keep this (supervisor) process off the GPUs; the environment its workers should get.

    TensorFlow reserves most of every visible GPU's memory, and JAX 75 % of one, the first time
    they touch it, and neither gives it back: a supervisor that builds a model would starve its
    workers. Call this before the backend is imported.
    """
    workers_environment = dict(os.environ)
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    os.environ["JAX_PLATFORMS"] = "cpu"
    return workers_environment


def visible_gpus() -> list[str]:
    """GPU indices this process may use (``CUDA_VISIBLE_DEVICES``, else ``nvidia-smi -L``)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [gpu for gpu in visible.split(",") if gpu.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    listing = subprocess.run(
        ["nvidia-smi", "-L"], capture_output=True, text=True, check=False
    ).stdout
    return [
        str(index) for index, line in enumerate(listing.splitlines()) if line.startswith("GPU ")
    ]


def worker_count(requested: str) -> int:
    """``auto``: one worker per visible GPU, else one per ``CPU_CORES_PER_WORKER`` cores."""
    if requested == "auto":
        gpus = visible_gpus()
        return len(gpus) if gpus else max(1, (os.cpu_count() or 1) // CPU_CORES_PER_WORKER)
    if not requested.isdigit() or int(requested) < 1:
        raise ValueError(f"--workers must be a positive integer or 'auto'; received {requested!r}.")
    return int(requested)


def supervise(
    spec: StudySpec, out_dir: Path, storage: str | None, run_arguments: list[str], workers: str
) -> tuple[int, optuna.Study]:
    """Check and open the study, then run it in ``workers`` worker processes; (exit status, study).

    This process stays off the GPUs (`hide_accelerators`). With ``batch_size = "auto"`` the first
    worker probes the batch size on its device before the others start. This process alone shows
    the study's progress (`Progress`), read from the storage while the workers run.
    """
    gpus = visible_gpus()
    environment = hide_accelerators()
    try:
        import keras

        from xsearch.run.progress import Progress
        from xsearch.study.setup import prepare_study, study_is_set_up

        count = worker_count(workers)
        recycle_every = trials_per_worker(keras.config.backend())
        stop_at = None if spec.timeout is None else time.time() + spec.timeout
        asked = spec.trials
        # checks everything first
        study, spec = prepare_study(spec, out_dir, storage, probe_batch_size=False)[:2]
        if spec.trials < asked:
            designs = f"{spec.trials} design{'s' if spec.trials > 1 else ''}"
            print(
                f"xsearch: the space {spec.space!r} has {designs}, fewer than the {asked} trials asked for: "
                f"the study stops when it has trained all {spec.trials}.",
                file=sys.stderr,
                flush=True,
            )
        with Progress(study, spec.trials, spec.training.epochs) as progress:
            status = run_workers(
                run_arguments,
                count,
                environment,
                gpus,
                recycle_every,
                stop_at,
                ready=lambda: study_is_set_up(study, spec),
                progress=progress,
            )
        return status, study
    finally:
        os.environ.clear()
        os.environ.update(environment)


def run_workers(
    run_arguments: list[str],
    count: int,
    environment: dict[str, str],
    gpus: list[str],
    recycle_every: int | None = None,
    stop_at: float | None = None,
    ready: Callable[[], bool] | None = None,
    progress: Progress | None = None,
) -> int:
    """Run ``count`` `xsearch run` processes with ``run_arguments``; the worst exit status.

    With GPUs each worker is pinned to one (``CUDA_VISIBLE_DEVICES``). A worker that crashes (killed
    by a signal or the out-of-memory killer, or a segfault in a backend) is restarted, unless its
    slot crashed more than ``MAX_CRASHES`` times within ``CRASH_WINDOW_S``: its trial is retried by the
    workers, and the study goes on. Exit status 1 (``--max-failures``) and 2 (bad input) are not
    crashes. A worker that exits to be recycled (after ``recycle_every`` trials) is restarted at
    once. Nothing is restarted after ``stop_at`` (Unix time). With ``ready``, the first worker
    starts alone (it sets the study up, e.g. probes the batch size) until ``ready()`` is true.
    Ctrl-C stops them all (exit status 130). ``progress`` is polled while they run; when it draws
    a live display, the workers' stderr is copied through this process, so that it prints above it.
    """
    environment = {**environment, SUPERVISED: "1", WORKERS: str(count)}
    if recycle_every is not None:
        environment[RECYCLE_AFTER] = str(recycle_every)
    if stop_at is not None:
        environment[DEADLINE] = repr(stop_at)

    forwarders: list[threading.Thread] | None = (
        [] if progress is not None and progress.live else None
    )

    def start(index: int) -> subprocess.Popen:
        return _start(
            run_arguments, environment, gpus[index % len(gpus)] if gpus else None, forwarders
        )

    processes: list[subprocess.Popen | None] = [start(0)] + [None] * (count - 1)
    waiting = list(range(1, count))
    crashes: list[list[float]] = [[] for _ in range(count)]
    worst = 0
    try:
        while any(process is not None for process in processes) or waiting:
            time.sleep(0.5)
            raise_if_requested()
            if progress is not None:
                progress.poll()
            if waiting and (ready is None or processes[0] is None or ready()):
                for index in waiting:
                    processes[index] = start(index)
                waiting = []
            for index, process in enumerate(processes):
                if process is None or process.poll() is None:
                    continue  # reaped as soon as it ends, so that its trial is seen as dead
                status, processes[index] = process.returncode, None
                late = stop_at is not None and time.time() >= stop_at
                if status == EXIT_RECYCLE:
                    if not late:
                        processes[index] = start(index)
                    continue
                if status in (0, 1, 2):
                    worst = max(worst, status)
                    if status and waiting:  # the set-up failed: the others would fail the same way
                        waiting = []
                    continue
                print(
                    f"xsearch: worker {index} (pid {process.pid}) crashed with status {status}",
                    file=sys.stderr,
                )
                now = time.monotonic()
                crashes[index] = [t for t in crashes[index] if now - t < CRASH_WINDOW_S] + [now]
                if len(crashes[index]) <= MAX_CRASHES and not late:
                    processes[index] = start(index)
                else:
                    print(
                        f"xsearch: worker {index} crashed {len(crashes[index])} times in "
                        f"{CRASH_WINDOW_S:.0f} s; not restarting it",
                        file=sys.stderr,
                    )
                    worst = max(worst, abs(status))
        return worst
    except KeyboardInterrupt:
        running = [process for process in processes if process is not None]
        for process in running:
            process.send_signal(signal.SIGINT)
        for process in running:
            process.wait()
        return 130
    finally:
        for thread in forwarders or ():
            thread.join(timeout=5)  # the workers' last lines, e.g. why they stopped


def _start(
    run_arguments: list[str],
    environment: dict[str, str],
    gpu: str | None,
    forwarders: list[threading.Thread] | None = None,
) -> subprocess.Popen:
    """Start a worker; with ``forwarders``, its stderr is copied to this process's by a thread added there."""
    environment = {**environment, SUPERVISOR_PID: str(os.getpid())}
    if gpu is not None:
        environment["CUDA_VISIBLE_DEVICES"] = gpu
    process = subprocess.Popen(
        [*WORKER_COMMAND, *run_arguments],
        env=environment,
        text=True,
        errors="replace",
        stderr=None if forwarders is None else subprocess.PIPE,
    )
    if forwarders is not None:
        forwarders.append(threading.Thread(target=_copy_lines, args=(process.stderr,), daemon=True))
        forwarders[-1].start()
    return process


_COPY_LOCK = threading.Lock()


def _copy_lines(stream: TextIO) -> None:
    """Copy a worker's stderr to this process's ``sys.stderr`` line by line (a live display prints them above it)."""
    with stream:
        for line in stream:
            with _COPY_LOCK:
                sys.stderr.write(line)
                sys.stderr.flush()


def interrupt_on_signals() -> None:
    """Take SIGTERM (``scancel``, a preempted or timed-out SLURM job, ``kill``) as Ctrl-C: a worker marks its running
    trial interrupted and queues it to be retried at once, rather than leaving it to go stale. SIGTERM and SIGINT
    (unless ignored, as in a background job) both record the stop, so that a KeyboardInterrupt that lands where
    Python ignores errors is raised again at the next safe point (`xsearch.common.interrupt`)."""
    signal.signal(signal.SIGTERM, on_signal)
    if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
        signal.signal(signal.SIGINT, on_signal)


def die_with_supervisor() -> None:
    """In a worker (Linux): be killed when the supervisor that started it dies, even by SIGKILL.

    Called first thing in the worker rather than between fork and exec, which would be unsafe in
    a supervisor whose backend runs threads. A worker whose supervisor died before the request
    took effect exits at once.
    """
    supervisor = os.environ.get(SUPERVISOR_PID)
    if _PRCTL is None or supervisor is None:
        return
    _PRCTL(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != int(supervisor):
        os._exit(1)
