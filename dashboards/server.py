"""`xsearch dashboard`: optuna-dashboard on a study's storage, showing xsearch's figures."""

from __future__ import annotations

import ipaddress
import sys

from optuna_dashboard import run_server

from xsearch.results.figures import attach_figures
from xsearch.study.storage import load_study, open_storage


def is_loopback(host: str) -> bool:
    """Whether ``host`` is ``localhost`` or a loopback address (only this machine can connect)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve_dashboard(storage: str, study_name: str, host: str = "127.0.0.1", port: int = 8080) -> None:
    """Attach xsearch's figures to the study, then serve optuna-dashboard on its storage until stopped.

    Warns on stderr when ``host`` is not a loopback address: the dashboard has no authentication.
    """
    study = load_study(storage, study_name)
    attach_figures(study)
    backend = open_storage(storage, create=False)
    if not is_loopback(host):
        print(f"xsearch: warning: the dashboard has no authentication; anyone who can reach {host}:{port} "
              "can read and edit the study.", file=sys.stderr)
    print(f"xsearch: dashboard of study {study_name!r} at http://{host}:{port}/dashboard/studies/{backend.get_study_id_from_name(study_name)}"
          " (Ctrl-C stops it)", file=sys.stderr)
    run_server(backend, host=host, port=port)
