"""Real tracking servers on loopback for the tracking tests and benchmarks: `mlflow server` (SQLite backend) and
TensorBoard, each on a free port and killed at the end."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def mlflow_server(folder: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """A real `mlflow server` on loopback and a free port, with an SQLite backend in ``folder``; killed at the end."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    command = [
        str(Path(sys.executable).with_name("mlflow")),
        "server",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
        "--backend-store-uri",
        f"sqlite:///{folder / 'mlflow.db'}",
        "--default-artifact-root",
        str(folder / "artifacts"),
    ]
    log = open(folder / "server.log", "w")  # noqa: SIM115 (closed below)
    environment = {
        **os.environ,
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }  # no job runner processes: tracking only
    server = subprocess.Popen(
        command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=environment
    )
    uri = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(f"{uri}/health", server, folder / "server.log")
        yield uri, server
    finally:
        stop_server(server)
        log.close()


@contextlib.contextmanager
def tensorboard_server(logdir: Path) -> Iterator[str]:
    """TensorBoard serving ``logdir`` on loopback and a free port (its log in
    ``logdir``/../tensorboard.log); its URL."""
    port = free_port()
    log_path = logdir.parent / "tensorboard.log"
    command = [
        str(Path(sys.executable).with_name("tensorboard")),
        "--logdir",
        str(logdir),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
    ]
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            wait_until_up(f"http://127.0.0.1:{port}/data/logdir", server, log_path)
            yield f"http://127.0.0.1:{port}"
        finally:
            stop_server(server)


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_until_up(
    url: str, server: subprocess.Popen, log_path: Path, timeout_s: float = 180
) -> None:
    """Return once ``url`` answers 200; raise with the server's log when it exits or ``timeout_s`` passes first."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer: {log_path.read_text()[-2000:]}")
        time.sleep(0.5)


def stop_server(server: subprocess.Popen) -> None:
    """Kill ``server`` and its process group, and reap it."""
    if server.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
