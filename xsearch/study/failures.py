"""Why a trial failed, as a short tag recorded on the trial: ``nan``, ``oom`` or ``error``."""

from __future__ import annotations

OOM_MARKERS = ("RESOURCE_EXHAUSTED", "out of memory", "OOM when allocating", "Failed to allocate")


class TrialFailure(Exception):
    """A trial that cannot produce a result; ``reason`` is a short tag (``nan``, ``oom``, ``error``)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def failure_reason(error: BaseException) -> str:
    """Classify an exception raised while building, measuring or training a model.

    Out-of-memory errors differ per backend (TensorFlow's ``ResourceExhaustedError``, XLA's
    ``RESOURCE_EXHAUSTED`` runtime error, a host ``MemoryError``); all become ``oom``.
    """
    if isinstance(error, TrialFailure):
        return error.reason
    if isinstance(error, MemoryError) or type(error).__name__ == "ResourceExhaustedError":
        return "oom"
    text = str(error)
    return "oom" if any(marker in text for marker in OOM_MARKERS) else "error"


class StudyStopped(RuntimeError):
    """A worker stopped early because trials kept failing (``--max-failures``)."""


class WorkerRecycle(Exception):
    """A supervised worker ran its share of trials and exits, to be restarted with fresh memory."""


EXIT_RECYCLE = 75
