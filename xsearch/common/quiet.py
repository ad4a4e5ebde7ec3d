"""Quiet libraries: TensorFlow's C++ (absl) start-up logs and Optuna's INFO lines stay off the terminal.

`quiet_libraries` runs first thing in the command line, before a backend is imported. ``xsearch
--verbose`` shows them; the choice reaches the worker processes of ``xsearch run`` in the
environment (``XSEARCH_VERBOSE``), as ``--backend`` does. Python exceptions, Optuna's warnings and
xsearch's own messages are never hidden.
"""

from __future__ import annotations

import os

VERBOSE = "XSEARCH_VERBOSE"  # "1": the libraries' logs are shown (``xsearch --verbose``)


def quiet_libraries(verbose: bool = False) -> bool:
    """Quiet the libraries' start-up and INFO logs, unless ``verbose`` or ``XSEARCH_VERBOSE=1``; whether verbose.

    ``TF_CPP_MIN_LOG_LEVEL`` (read by TensorFlow and jaxlib when imported): 3 keeps only fatal C++
    logs. Level 2 would still print absl's "log messages before absl::InitializeLog()" line and
    errors such as "failed call to cuInit" from a process that sees no GPU (the supervisor of ``xsearch
    run`` hides them from itself); errors that matter reach Python as exceptions.
    """
    if verbose or os.environ.get(VERBOSE) == "1":
        os.environ[VERBOSE] = "1"
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"  # importing `xsearch` sets 2 for library use
        return True
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return False
