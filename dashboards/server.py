"""`xsearch dashboard`: optuna-dashboard on a study's storage, with xsearch's figures attached."""

from __future__ import annotations

import ipaddress
import sys
from pathlib import Path

import optuna
from optuna_dashboard import run_server

from xsearch.results.figures import attach_figures

RUN_STORAGES = ("study.journal", "study.db")


def study_name_from(study_name_or_path: str) -> str:
    """The study's name: the file name without ``.toml`` for a study file, else the name itself."""
    return Path(study_name_or_path).stem if study_name_or_path.endswith(".toml") else study_name_or_path


def dashboard_storage(study_name_or_path: str, storage: str | None = None, out: str | Path | None = None) -> str:
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
    """The study ``name`` in ``storage`` (a URL or a ``.journal`` path), opened as `xsearch run` opens it.

    Raises ValueError when a file storage does not exist or holds no study of that name.
    """
    backend = open_storage(storage)
    try:
        return optuna.load_study(study_name=name, storage=backend)
    except KeyError:
        names = optuna.get_all_study_names(backend)
        raise ValueError(f"no study {name!r} in {storage}; it holds: {', '.join(names) or 'no study'}.") from None


def open_storage(storage: str) -> optuna.storages.BaseStorage | str:
    """A ``.journal`` path as a journal storage (with the file lock `xsearch run` uses), else the URL.

    Raises ValueError when a journal or ``sqlite:///`` file does not exist (rather than creating it).
    """
    journal = storage.endswith(".journal")
    path = Path(storage.removeprefix("journal:") if journal else storage.removeprefix("sqlite:///"))
    if (journal or storage.startswith("sqlite:///")) and not path.is_file():
        raise ValueError(f"storage {storage} does not exist: {path} is not a file.")
    if not journal:
        return storage
    lock = optuna.storages.journal.JournalFileOpenLock(str(path))
    return optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path), lock_obj=lock))


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
    if not is_loopback(host):
        print(f"xsearch: warning: the dashboard has no authentication; anyone who can reach {host}:{port} "
              "can read and edit the study.", file=sys.stderr)
    print(f"xsearch: dashboard of study {study_name!r} at http://{host}:{port}/dashboard/studies/{study._study_id}"
          " (Ctrl-C stops it)", file=sys.stderr)
    run_server(open_storage(storage), host=host, port=port)
