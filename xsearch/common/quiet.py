"""Quiet libraries: TensorFlow's C++ (absl) start-up logs and Optuna's INFO lines stay off the terminal.

`quiet_libraries` runs first thing in the command line, before a backend is imported. ``xsearch
--verbose`` shows them; the choice reaches the worker processes of ``xsearch run`` in the
environment (``XSEARCH_VERBOSE``), as ``--backend`` does. Python exceptions, Optuna's warnings and
xsearch's own messages are never hidden; only h5py's ignored errors while it releases a file that a full disk refused
are (`quiet_failed_h5_release`), the write's own error is not.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
import warnings
from collections.abc import Iterator, Sequence
from types import ModuleType, TracebackType

VERBOSE = "XSEARCH_VERBOSE"  # "1": the libraries' logs are shown (``xsearch --verbose``)


def quiet_libraries(verbose: bool = False) -> bool:
    """Quiet the libraries' start-up and INFO logs, unless ``verbose`` or ``XSEARCH_VERBOSE=1``; whether verbose.

    ``TF_CPP_MIN_LOG_LEVEL`` (read by TensorFlow and jaxlib when imported): 3 keeps only fatal C++
    logs. Level 2 would still print absl's "log messages before absl::InitializeLog()" line and
    errors such as "failed call to cuInit" from a process that sees no GPU (the supervisor of ``xsearch
    run`` hides them from itself); errors that matter reach Python as exceptions. TensorFlow 2.21
    prints its start-up lines (oneDNN, absl) whatever the level, so its import, whenever it comes,
    runs with the process's standard error sent to /dev/null (`_QuietTensorFlowImport`).
    """
    if verbose or os.environ.get(VERBOSE) == "1":
        os.environ[VERBOSE] = "1"
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"  # importing `xsearch` sets 2 for library use
        return True
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    # Keras' ONNX exporter
    warnings.filterwarnings("ignore", message="In the future `np.object`", category=FutureWarning)
    if "tensorflow" not in sys.modules and not any(
        isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path
    ):
        sys.meta_path.insert(0, _QuietTensorFlowImport())
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return False


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Finds ``tensorflow`` as usual, but executes it with file descriptor 2 on /dev/null (once)."""

    def find_spec(
        self, name: str, path: Sequence[str] | None = None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _SilentLoader(spec.loader)
        return spec


class _SilentLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return self.loader.create_module(spec)

    def exec_module(self, module: ModuleType) -> None:
        with _stderr_to_devnull():
            self.loader.exec_module(module)


@contextlib.contextmanager
def _stderr_to_devnull() -> Iterator[None]:
    """The process's file descriptor 2 (C++ libraries write there directly) on /dev/null; Python's own
    exceptions still propagate, and print after it is restored."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


@contextlib.contextmanager
def quiet_failed_h5_release() -> Iterator[None]:
    """While it runs, h5py's "Exception ignored in: 'h5py._objects.ObjectID.__dealloc__'" tracebacks of a file that the
    file system refused for want of space are dropped (unless verbose); everything else is shown as usual.

    Once a write to an HDF5 file has failed that way, h5py fails again to release each of the file's objects while the
    save goes on, and Cython prints every failure, to `sys.excepthook` and then to `sys.unraisablehook`; the save's
    own OSError still propagates, and ends a run with one message.
    """
    if os.environ.get(VERBOSE) == "1":
        yield
        return
    unraisablehook, excepthook = sys.unraisablehook, sys.excepthook

    def unraisable(event: sys.UnraisableHookArgs) -> None:
        if not _failed_h5_release(event.exc_value):
            unraisablehook(event)

    def uncaught(
        kind: type[BaseException], error: BaseException, traceback: TracebackType | None
    ) -> None:
        if not _failed_h5_release(error):
            excepthook(kind, error, traceback)

    sys.unraisablehook, sys.excepthook = unraisable, uncaught
    try:
        yield
    finally:
        sys.unraisablehook, sys.excepthook = unraisablehook, excepthook


def _failed_h5_release(error: BaseException | None) -> bool:
    """Whether ``error`` is h5py failing to release an object of a file whose write found no space (ENOSPC, EDQUOT)."""
    text = str(error)
    return (
        isinstance(error, RuntimeError)
        and text.startswith("Can't decrement id ref count")
        and any(f"errno = {number}," in text for number in (errno.ENOSPC, errno.EDQUOT))
    )
