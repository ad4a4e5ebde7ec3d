"""`xsearch dashboard`: optuna-dashboard on a study's storage, showing xsearch's figures."""

from __future__ import annotations

import errno
import socket
import sys

from optuna_dashboard import run_server

from xsearch.common.network import is_loopback
from xsearch.study.storage import load_study, open_storage


def serve_dashboard(
    storage: str, study_name: str, host: str = "127.0.0.1", port: int = 8080
) -> None:
    """Serve optuna-dashboard on the study's storage until stopped, writing nothing to it.

    The runner attaches xsearch's figures to the study after every trial. Raises ValueError when
    the study is missing or ``host:port`` cannot be bound (e.g. the port is in use). Warns on
    stderr when ``host`` is not a loopback address: the dashboard has no authentication.
    """
    _check_port(host, port)
    study = load_study(storage, study_name)
    backend = open_storage(storage, create=False)
    if not is_loopback(host):
        print(
            f"xsearch: warning: the dashboard has no authentication; anyone who can reach {host}:{port} "
            "can read and edit the study.",
            file=sys.stderr,
        )
    print(
        f"xsearch: dashboard of study {study.study_name!r} at http://{host}:{port}/dashboard/studies/"
        f"{backend.get_study_id_from_name(study_name)} (Ctrl-C stops it)",
        file=sys.stderr,
    )
    run_server(backend, host=host, port=port)


def _check_port(host: str, port: int) -> None:
    """Raise ValueError unless ``host:port`` can be bound now (as the dashboard's server binds it)."""
    try:
        socket.create_server((host, port)).close()
    except (OSError, OverflowError) as error:
        reason = (
            "is in use"
            if isinstance(error, OSError) and error.errno == errno.EADDRINUSE
            else f"cannot be bound ({error})"
        )
        raise ValueError(
            f"{host}:{port} {reason}: pass another --port (e.g. --port {port + 1 if port < 65535 else 8080})"
            " or stop what uses it."
        ) from None
