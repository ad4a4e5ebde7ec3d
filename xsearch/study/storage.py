"""Where a study lives: the embedded journal file of a run folder, or a database server.

- Default: Optuna's journal storage in ``<run folder>/study.journal``. It needs no server and is
  safe for several worker processes on one machine (SQLite's "database is locked" is not).
- ``postgresql://...``, ``mysql+pymysql://...``, ``sqlite:///...``: Optuna's RDB storage with
  heartbeats, so that a trial whose worker died on any machine is failed by heartbeat and retried
  with the same parameters by a live worker (`xsearch.study.retries`).
- ``grpc://host:port``: a database behind Optuna's gRPC storage proxy (`xsearch storage-proxy`,
  `xsearch.study.storage_proxy`), with heartbeats too (`xsearch.study.optuna_private.HeartbeatGrpcStorage`).

`open_storage` opens one for ``xsearch run`` (creating it) or for a viewer (`report`, `export`,
`dashboard`: the file must exist); `run_storage` finds a study's storage in its run folder.
"""

from __future__ import annotations

import random
import re
import time
import urllib.parse
import warnings
from pathlib import Path

import optuna
import sqlalchemy.exc
from optuna.storages.journal import JournalFileBackend, JournalFileOpenLock

from xsearch.study.journal import check_journal, repair
from xsearch.study.optuna_private import HeartbeatGrpcStorage
from xsearch.study.retries import retry_interrupted

STORAGE_KINDS = (
    "postgresql://user@host/db, mysql+pymysql://user@host/db, sqlite:///path.db, grpc://host:port "
    "(xsearch storage-proxy), or a path ending in .journal"
)
PROXY_WAIT_S = 10.0
"""How long ``grpc://`` waits for its storage proxy to answer."""
RUN_STORAGES = ("study.journal", "study.db")
"""The storage files a run folder may hold, in the order they are looked for."""


def open_storage(
    url: str | None, out_dir: Path | None = None, heartbeat_interval: int = 30, create: bool = True
) -> optuna.storages.BaseStorage:
    """The study storage for ``url``: a database URL, a ``.journal`` path, or ``None`` for the run
    folder's journal ``<out_dir>/study.journal``.

    With ``create=False`` (the viewers) a journal or ``sqlite:///`` file that does not exist is an
    error (ValueError) rather than a new, empty storage, and so is a database without Optuna's tables
    (a viewer creates none). A damaged journal is an error, except a torn
    last line, which ``xsearch run`` (``create=True``) repairs first (`xsearch.study.journal`).
    """
    if url is None or url.endswith(".journal"):
        if url is not None:
            path = Path(url.removeprefix("journal:"))
        elif out_dir is not None:
            path = out_dir / RUN_STORAGES[0]
        else:
            raise ValueError("open_storage needs a storage URL or a run folder.")
        if not create and not path.is_file():
            raise ValueError(f"storage {path} does not exist: it is not a file.")
        if path.is_file():
            check_journal(path, repair=create)
        path.parent.mkdir(parents=True, exist_ok=True)
        return optuna.storages.JournalStorage(
            JournalFileBackend(str(path), lock_obj=JournalFileOpenLock(str(path)))
        )
    if "://" not in url:
        raise ValueError(f"storage {url!r} is not a URL: use {STORAGE_KINDS}.")
    scheme = url.split("://", 1)[0]
    if scheme == "grpc":
        return _grpc_storage(url, heartbeat_interval)
    if scheme.split("+", 1)[0] not in ("postgresql", "mysql", "sqlite"):
        raise ValueError(f"storage {redact(url)}: unknown scheme {scheme!r}: use {STORAGE_KINDS}.")
    if (
        not create
        and url.startswith("sqlite:///")
        and not Path(url.removeprefix("sqlite:///")).is_file()
    ):
        raise ValueError(
            f"storage {url} does not exist: {url.removeprefix('sqlite:///')} is not a file."
        )
    try:
        if not create and not _has_optuna_tables(url):
            raise LookupError
        return _rdb_storage(url, heartbeat_interval, create)
    except LookupError:
        raise ValueError(
            f"storage {redact(url)} holds no study: its database has no Optuna tables (nothing was run "
            "there); check the URL, or run `xsearch run --study NAME --storage URL` first."
        ) from None
    except Exception as error:  # sqlalchemy raises several kinds for bad or unreachable URLs
        reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ValueError(f"storage {redact(url)} cannot be opened: {reason}") from None


def study_name_from(study_name_or_path: str) -> str:
    """The study's name: the file name without ``.toml`` for a study file, else the name itself."""
    return (
        Path(study_name_or_path).stem
        if study_name_or_path.endswith(".toml")
        else study_name_or_path
    )


def run_storage(
    study_name_or_path: str, storage: str | None = None, out: str | Path | None = None
) -> str:
    """``storage`` when given, else the storage in the run folder (``out``, default ``runs/<study>``).

    Returns the ``study.journal`` path, or the ``sqlite:///`` URL of ``study.db``; raises
    ValueError naming the folder when it holds neither.
    """
    if storage:
        return storage
    folder = Path(out) if out is not None else Path("runs") / study_name_from(study_name_or_path)
    for file_name in RUN_STORAGES:
        path = (folder / file_name).resolve()
        if path.is_file():
            return str(path) if path.suffix == ".journal" else f"sqlite:///{path}"
    raise ValueError(
        f"study {study_name_from(study_name_or_path)!r} has no run folder storage: {folder} holds neither "
        f"{' nor '.join(RUN_STORAGES)}; run `xsearch run --study {study_name_or_path}` first, or pass "
        "the run folder or the storage URL."
    )


def load_study(storage: str, name: str) -> optuna.Study:
    """The study ``name`` in an existing ``storage`` (a URL or a ``.journal`` path), for the viewers.

    Raises ValueError when a file storage does not exist or holds no study of that name.
    """
    backend = open_storage(storage, create=False)
    try:
        return optuna.load_study(study_name=name, storage=backend)
    except KeyError:
        names = optuna.get_all_study_names(backend)
        raise ValueError(
            f"no study {name!r} in {storage}; it holds: {', '.join(names) or 'no study'}."
        ) from None


def repair_storage(storage: str) -> str:
    """``xsearch repair``: repair the journal file ``storage`` (`xsearch.study.journal.repair`); what was done."""
    path = Path(storage.removeprefix("journal:"))
    if path.suffix != ".journal":
        raise ValueError(
            f"storage {redact(storage)} is not a journal file: only a .journal file can be repaired "
            "(a database is repaired by its server)."
        )
    if not path.is_file():
        raise ValueError(f"storage {path} does not exist: it is not a file.")
    return repair(path)


def _proxy_address(url: str) -> tuple[str, int]:
    """The host and port of a ``grpc://host:port`` URL; ValueError for any other shape."""
    parts = urllib.parse.urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if (
        parts.scheme != "grpc"
        or not parts.hostname
        or port is None
        or not 0 < port < 65536
        or parts.path.strip("/")
        or parts.query
        or parts.username
    ):
        raise ValueError(
            f"storage {redact(url)}: a storage proxy's URL is grpc://HOST:PORT, e.g. grpc://127.0.0.1:13000."
        )
    return parts.hostname, port


def _grpc_storage(url: str, heartbeat_interval: int) -> HeartbeatGrpcStorage:
    """The client of the storage proxy at ``url``, with heartbeats; ValueError when no proxy answers there."""
    host, port = _proxy_address(url)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = HeartbeatGrpcStorage(
            host, port, heartbeat_interval, 3 * heartbeat_interval, retry_interrupted
        )
    try:
        storage.wait_server_ready(timeout=PROXY_WAIT_S)
    except ConnectionError:
        storage.close()
        raise ValueError(
            f"storage {url}: no storage proxy answers at {host}:{port} (waited {PROXY_WAIT_S:.0f} s); "
            f"start one there with `xsearch storage-proxy --storage DATABASE_URL --port {port}`."
        ) from None
    return storage


def _has_optuna_tables(url: str) -> bool:
    """Whether the database at ``url`` holds Optuna's tables (read without writing)."""
    engine = sqlalchemy.create_engine(url)
    try:
        return sqlalchemy.inspect(engine).has_table("studies")
    finally:
        engine.dispose()


def _rdb_storage(
    url: str, heartbeat_interval: int, create: bool = True, attempts: int = 5
) -> optuna.storages.RDBStorage:
    """Optuna's RDB storage with heartbeats; its tables are made only when ``create``.

    Machines that start at once on a new database race to create its tables; the losers get a
    duplicate-table or duplicate-type error and try again, when the tables are there.
    """
    for _ in range(attempts - 1):
        try:
            return _new_rdb_storage(url, heartbeat_interval, create)
        except (sqlalchemy.exc.IntegrityError, sqlalchemy.exc.ProgrammingError):
            time.sleep(0.2 + random.random())
    return _new_rdb_storage(url, heartbeat_interval, create)


def _new_rdb_storage(url: str, heartbeat_interval: int, create: bool) -> optuna.storages.RDBStorage:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.storages.RDBStorage(
            url,
            heartbeat_interval=heartbeat_interval,
            grace_period=3 * heartbeat_interval,
            heartbeat_stale_trial_callback=retry_interrupted,  # the retry runs before queued seed trials
            engine_kwargs={"pool_pre_ping": True} if not url.startswith("sqlite") else None,
            skip_table_creation=not create,
        )


def redact(url: str) -> str:
    """The URL without its password."""
    return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", url)
