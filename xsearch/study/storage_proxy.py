"""`xsearch storage-proxy`: one database served to many workers through Optuna's gRPC storage proxy.

On a database every worker holds its own connections (up to 3-4 measured by `benchmarks/fleet.py`: its
thread's, its heartbeat thread's, and those SQLAlchemy's pool keeps), and PostgreSQL accepts
``max_connections`` (100 by default) in all. Behind the proxy (`optuna.storages.run_grpc_proxy_server`, with
Optuna's cache in front of the database) the database sees only the proxy's connections (at most 10, its
threads), however many workers there are; workers pass ``--storage grpc://host:port``
(`xsearch.study.storage.open_storage`). The proxy has no authentication and no encryption: it binds to
127.0.0.1 unless told otherwise.
"""

from __future__ import annotations

import socket
import sys
import threading
import time
import warnings
from typing import Final

import optuna

from xsearch.common.network import is_loopback
from xsearch.study.storage import open_storage, redact

DEFAULT_PORT: Final = 13000
DATABASES: Final = "postgresql://user@host/db, mysql+pymysql://user@host/db or sqlite:///path.db"


def check_database(url: str) -> None:
    """Raise ValueError naming ``--storage`` unless ``url`` is a database URL."""
    if "://" not in url or url.split("://", 1)[0].split("+", 1)[0] not in (
        "postgresql",
        "mysql",
        "sqlite",
    ):
        raise ValueError(
            f"--storage {redact(url)}: the storage proxy serves a database: use {DATABASES} "
            "(Optuna's proxy serves no journal file, nor another proxy)."
        )


def check_address(host: str, port: int) -> None:
    """Raise ValueError naming ``--port`` or ``--host`` unless ``host:port`` can be bound now."""
    if not 0 < port < 65536:
        raise ValueError(f"--port must be an integer in [1, 65535]; received {port}.")
    try:
        socket.create_server((host, port)).close()
    except OSError as error:
        raise ValueError(
            f"--host/--port {host}:{port} cannot be bound ({error.strerror or error}): "
            "pass another --port or stop what uses it."
        ) from None


def serve_proxy(url: str, host: str = "127.0.0.1", port: int = DEFAULT_PORT) -> None:
    """Serve the database at ``url`` (its tables created if missing) on ``grpc://host:port`` until Ctrl-C.

    Raises ValueError naming the flag for a URL that is not a reachable database (`check_database`) and for an address
    that cannot be bound (`check_address`), before anything is written.
    """
    check_database(url)
    check_address(host, port)
    try:
        # with Optuna's cache, as its proxy docs advise
        storage = optuna.storages.get_storage(open_storage(url))
    except ValueError as error:
        raise ValueError(f"--storage: {error}") from None
    shown = socket.gethostname() if host == "0.0.0.0" else host
    if not is_loopback(host):
        print(
            f"xsearch: warning: the storage proxy has no authentication and no encryption; anyone who can reach "
            f"{host}:{port} can read and change every study in the database: use a trusted network.",
            file=sys.stderr,
            flush=True,
        )
    ready = (
        f"xsearch: storage proxy for {redact(url)} at grpc://{shown}:{port}: run workers with "
        f"--storage grpc://{shown}:{port} (Ctrl-C stops it)"
    )
    threading.Thread(target=_announce_once_listening, args=(host, port, ready), daemon=True).start()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            optuna.storages.run_grpc_proxy_server(storage, host=host, port=port)
    except KeyboardInterrupt:
        print("xsearch: storage proxy stopped", file=sys.stderr, flush=True)


def _announce_once_listening(host: str, port: int, message: str) -> None:
    """Print ``message`` once ``host:port`` accepts connections, so that whoever waits for it can connect at once."""
    address = ("127.0.0.1" if host == "0.0.0.0" else host, port)
    while True:
        try:
            socket.create_connection(address, timeout=1).close()
            break
        except OSError:
            time.sleep(0.05)
    print(message, file=sys.stderr, flush=True)
