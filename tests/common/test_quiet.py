"""h5py's ignored release errors after a full disk: dropped, and only those, unless verbose."""

import sys
from types import SimpleNamespace

import pytest

from xsearch.common.quiet import VERBOSE, quiet_failed_h5_release

RELEASE = RuntimeError(
    "Can't decrement id ref count (file write failed: time = Fri Dec  4 18:38:38 2026\n, filename = "
    "'run/checkpoints/trial-0.weights.h5', file descriptor = 13, errno = 28, error message = 'No space "
    "left on device', buf = 0x5, total write size = 4608, bytes this sub-write = 4608, offset = 124256)"
)


def _report(error: BaseException) -> None:
    """What Cython does with an error in ``__dealloc__``: the excepthook, then the unraisablehook."""
    sys.excepthook(type(error), error, None)
    sys.unraisablehook(
        SimpleNamespace(
            exc_type=type(error),
            exc_value=error,
            exc_traceback=None,
            err_msg=None,
            object="h5py._objects.ObjectID.__dealloc__",
        )
    )


@pytest.mark.parametrize(
    ("verbose", "error", "shown"),
    [
        ("0", RELEASE, 0),
        ("1", RELEASE, 2),
        (
            "0",
            RuntimeError(str(RELEASE).replace("errno = 28", "errno = 5")),
            2,
        ),  # an I/O error, not a full disk
        ("0", ValueError(str(RELEASE)), 2),
    ],
)
def test_only_hdf5_release_errors_of_a_full_disk_are_dropped(monkeypatch, verbose, error, shown):
    seen: list[object] = []
    monkeypatch.setenv(VERBOSE, verbose)
    monkeypatch.setattr(sys, "excepthook", lambda kind, value, traceback: seen.append(value))
    monkeypatch.setattr(sys, "unraisablehook", lambda event: seen.append(event.exc_value))
    hooks = sys.excepthook, sys.unraisablehook
    with quiet_failed_h5_release():
        _report(error)
    assert len(seen) == shown
    assert (sys.excepthook, sys.unraisablehook) == hooks
