"""`--workers N|auto`: several ordinary `xsearch run` processes on one shared storage."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

CPU_CORES_PER_WORKER = 4


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
    """Start ``count`` `xsearch run` processes with ``run_arguments``; the worst exit status.

    With GPUs each worker is pinned to one (``CUDA_VISIBLE_DEVICES``); Ctrl-C stops them all.
    """
    gpus = visible_gpus()
    processes = []
    for index in range(count):
        env = dict(os.environ)
        if gpus:
            env["CUDA_VISIBLE_DEVICES"] = gpus[index % len(gpus)]
        command = [sys.executable, "-m", "xsearch.cli", "run", *run_arguments]
        processes.append(subprocess.Popen(command, env=env))
    try:
        while any(process.poll() is None for process in processes):  # reap each worker as it ends
            time.sleep(0.5)
        return max(abs(process.returncode) for process in processes)
    except KeyboardInterrupt:
        for process in processes:
            process.send_signal(signal.SIGINT)
        return max(process.wait() for process in processes)
