"""A stop that a signal asked for, kept until the process can act on it.

A handler that raises KeyboardInterrupt raises it wherever the main thread happens to be. Inside a finaliser or a
callback that Python or a library runs with its errors ignored ("Exception ignored in ..."), the exception is
lost and the process goes on: a SLURM task would train on until its SIGKILL. `on_signal` also records the stop,
and `raise_if_requested`, called where stopping is safe (after each training batch, after each trial, in the
supervisor's loop), raises it again there.
"""

from __future__ import annotations

import threading
from types import FrameType

_requested = threading.Event()


def on_signal(signum: int, frame: FrameType | None) -> None:
    """A signal handler: record the stop, then raise KeyboardInterrupt as Ctrl-C does."""
    _requested.set()
    raise KeyboardInterrupt


def raise_if_requested() -> None:
    """Raise KeyboardInterrupt if a signal asked this process to stop."""
    if _requested.is_set():
        raise KeyboardInterrupt
