"""Why a trial failed (`classify_failure`), and the exceptions that stop a trial or a worker."""

from __future__ import annotations

from xsearch.study.record import FailureReason

OOM_MARKERS = ("RESOURCE_EXHAUSTED", "out of memory", "OOM when allocating", "Failed to allocate")


class TrialFailure(Exception):
    """A trial that cannot produce a result, with its `FailureReason`."""

    def __init__(self, reason: FailureReason, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def classify_failure(error: BaseException) -> FailureReason:
    """Classify an exception raised while building, measuring or training a model.

    Out-of-memory errors differ per backend (TensorFlow's ``ResourceExhaustedError``, XLA's
    ``RESOURCE_EXHAUSTED`` runtime error, a host ``MemoryError``); all become ``oom``.
    """
    if isinstance(error, TrialFailure):
        return error.reason
    if isinstance(error, MemoryError) or type(error).__name__ == "ResourceExhaustedError":
        return FailureReason.OOM
    text = str(error)
    return (
        FailureReason.OOM if any(marker in text for marker in OOM_MARKERS) else FailureReason.ERROR
    )


class StudyStopped(RuntimeError):
    """A worker stopped early because trials kept failing (``--max-failures``)."""


class WorkerRecycle(Exception):
    """A supervised worker ran its share of trials and exits, to be restarted with fresh memory."""


EXIT_RECYCLE = 75
