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
import time

from xsearch.failures import EXIT_RECYCLE

CPU_CORES_PER_WORKER = 4
MAX_RESTARTS = 3
SUPERVISED = "XSEARCH_SUPERVISED"
TRIALS_PER_WORKER = "XSEARCH_TRIALS_PER_WORKER"
DEFAULT_TRIALS_PER_WORKER = 20
PR_SET_PDEATHSIG = 1


def is_worker() -> bool:
    """Whether this process is a worker that a supervisor (`run_workers`) started.

    Set ``XSEARCH_SUPERVISED=1`` to run a study in the current process (e.g. under a debugger).
    """
    return os.environ.get(SUPERVISED) == "1"


def recycle_after() -> int | None:
    """Trials a supervised worker runs before it is restarted (``None``: unsupervised, or JAX).

    On TensorFlow (2.21, Keras 3.15) each trained model keeps ~55 MB of host memory after
    ``clear_session`` (measured; JAX keeps none), so supervised TensorFlow workers are recycled.
    """
    if not is_worker():
        return None
    if TRIALS_PER_WORKER in os.environ:
        return int(os.environ[TRIALS_PER_WORKER])
    return DEFAULT_TRIALS_PER_WORKER if os.environ.get("KERAS_BACKEND", "tensorflow") == "tensorflow" else None


def visible_gpus() -> list[str]:
    """GPU indices this process may use (``CUDA_VISIBLE_DEVICES``, else ``nvidia-smi -L``)."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return [gpu for gpu in visible.split(",") if gpu.strip()]
    if shutil.which("nvidia-smi") is None:
        return []
    listing = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, check=False).stdout
    return [str(index) for index, line in enumerate(listing.splitlines()) if line.startswith("GPU ")]


def worker_count(requested: str) -> int:
    """``auto``: one worker per visible GPU, else one per ``CPU_CORES_PER_WORKER`` cores."""
    if requested == "auto":
        gpus = visible_gpus()
        return len(gpus) if gpus else max(1, (os.cpu_count() or 1) // CPU_CORES_PER_WORKER)
    if not requested.isdigit() or int(requested) < 1:
        raise ValueError(f"--workers must be a positive integer or 'auto'; received {requested!r}.")
    return int(requested)


def run_workers(run_arguments: list[str], count: int) -> int:
    """Run ``count`` `xsearch run` processes with ``run_arguments``; the worst exit status.

    With GPUs each worker is pinned to one (``CUDA_VISIBLE_DEVICES``). A worker that crashes (killed
    by a signal or the out-of-memory killer, or a segfault in a backend) is restarted, up to
    ``MAX_RESTARTS`` times per slot: its trial is retried by the workers, and the study goes on.
    Exit status 1 (``--max-failures``) and 2 (bad input) are not crashes; a worker that exits to be
    recycled (`recycle_after`) is restarted at once. Ctrl-C stops them all.
    """
    gpus = visible_gpus()
    processes = [_start(run_arguments, gpus[index % len(gpus)] if gpus else None) for index in range(count)]
    restarts = [0] * count
    worst = 0
    try:
        while any(process is not None for process in processes):
            time.sleep(0.5)
            for index, process in enumerate(processes):
                if process is None or process.poll() is None:
                    continue  # reaped as soon as it ends, so that its trial is seen as dead
                status = process.returncode
                if status == EXIT_RECYCLE:
                    processes[index] = _start(run_arguments, gpus[index % len(gpus)] if gpus else None)
                    continue
                crashed = status not in (0, 1, 2)
                if crashed:
                    print(f"xsearch: worker {index} (pid {process.pid}) crashed with status {status}", file=sys.stderr)
                if crashed and restarts[index] < MAX_RESTARTS:
                    restarts[index] += 1
                    processes[index] = _start(run_arguments, gpus[index % len(gpus)] if gpus else None)
                else:
                    worst = max(worst, abs(status))
                    processes[index] = None
        return worst
    except KeyboardInterrupt:
        running = [process for process in processes if process is not None]
        for process in running:
            process.send_signal(signal.SIGINT)
        return max([process.wait() for process in running], default=130)


def _start(run_arguments: list[str], gpu: str | None) -> subprocess.Popen:
    env = {**os.environ, SUPERVISED: "1"}
    if gpu is not None:
        env["CUDA_VISIBLE_DEVICES"] = gpu
    return subprocess.Popen([sys.executable, "-m", "xsearch.cli", "run", *run_arguments], env=env,
                            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None)


def _die_with_parent() -> None:
    """In a new worker (Linux): be killed when the supervisor dies, even by SIGKILL."""
    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
