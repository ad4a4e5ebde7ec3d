"""`--storage grpc://` and `xsearch storage-proxy`: a real proxy in front of a real PostgreSQL database."""

import dataclasses
import socket
import subprocess
import sys
import time

import optuna
import pytest
from optuna.trial import TrialState

from xsearch.cli import main
from xsearch.study import storage as storage_module
from xsearch.study.optuna_private import HEARTBEAT_ATTR, enqueued_params
from xsearch.study.storage import open_storage
from xsearch.study.storage_proxy import serve_proxy


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def proxy(postgres_url, tmp_path):
    """`xsearch storage-proxy` in front of a fresh PostgreSQL database: its ``grpc://`` URL and what it printed."""
    port, log = _free_port(), tmp_path / "proxy.log"
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "xsearch.cli",
            "storage-proxy",
            "--storage",
            postgres_url,
            "--port",
            str(port),
        ],
        stderr=log.open("w"),
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while "storage proxy for" not in log.read_text():
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.1)
        # announced only once it listens
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        yield f"grpc://127.0.0.1:{port}", log.read_text()
    finally:
        process.terminate()
        process.wait(timeout=30)


@pytest.mark.slow
def test_a_study_runs_through_the_proxy_into_postgresql(proxy, postgres_url, tiny_spec, tmp_path):
    from xsearch.run.runner import run_study

    url, printed = proxy
    assert f"storage proxy for {postgres_url} at {url}: run workers with --storage {url}" in printed
    run_study(
        dataclasses.replace(tiny_spec, trials=2), tmp_path / "run", storage=url, progress=False
    )
    # the database itself
    study = optuna.load_study(study_name="tiny", storage=open_storage(postgres_url))
    trials = study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
    # the workers' heartbeats went through the proxy
    assert all(HEARTBEAT_ATTR in t.system_attrs for t in trials)
    assert (
        main(
            [
                "report",
                "--study",
                "tiny",
                "--storage",
                url,
                "--out",
                str(tmp_path / "run"),
                "--format",
                "csv",
            ]
        )
        == 0
    )


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
def test_the_trial_of_a_dead_worker_is_failed_by_heartbeat_and_retried_through_the_proxy(proxy):
    url = proxy[0]
    dead = open_storage(url, heartbeat_interval=1)
    trial = optuna.create_study(study_name="s", storage=dead).ask(
        {"x": optuna.distributions.FloatDistribution(0, 1)}
    )
    # its last heartbeat, as its worker's heartbeat thread wrote it
    dead.record_heartbeat(trial._trial_id)
    live = optuna.load_study(study_name="s", storage=open_storage(url, heartbeat_interval=1))
    optuna.storages.fail_stale_trials(live)
    assert live.trials[0].state == TrialState.RUNNING  # within the grace period (3 heartbeats)
    time.sleep(3.5)
    optuna.storages.fail_stale_trials(live)
    failed, retry = live.trials
    assert failed.state == TrialState.FAIL
    assert retry.state == TrialState.WAITING
    assert retry.user_attrs["retry_of"] == 0
    assert enqueued_params(retry) == failed.params


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("grpc://127.0.0.1", "a storage proxy's URL is grpc://HOST:PORT"),
        ("grpc://127.0.0.1:99999", "a storage proxy's URL is grpc://HOST:PORT"),
        ("grpc://127.0.0.1:13000/db", "a storage proxy's URL is grpc://HOST:PORT"),
        (
            "grpc://127.0.0.1:{port}",
            "no storage proxy answers at 127.0.0.1:{port} (waited 1 s); start one there with "
            "`xsearch storage-proxy --storage DATABASE_URL --port {port}`",
        ),
    ],
)
def test_a_bad_or_silent_proxy_url_is_one_clear_error(tmp_path, capsys, monkeypatch, url, message):
    monkeypatch.setattr(storage_module, "PROXY_WAIT_S", 1.0)
    port = _free_port()
    status = main(
        [
            "report",
            "--study",
            "s",
            "--storage",
            url.format(port=port),
            "--out",
            str(tmp_path / "run"),
        ]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert message.format(port=port) in err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (
            ["--storage", "runs/s/study.journal"],
            "--storage runs/s/study.journal: the storage proxy serves a database: "
            "use postgresql://user@host/db, mysql+pymysql://user@host/db or sqlite:///path.db",
        ),
        (
            ["--storage", "grpc://127.0.0.1:13000"],
            "--storage grpc://127.0.0.1:13000: the storage proxy serves a database",
        ),
        (
            ["--storage", "sqlite:///{tmp}/s.db", "--port", "70000"],
            "--port must be an integer in [1, 65535]; received 70000",
        ),
        (
            ["--storage", "sqlite:///{tmp}/s.db", "--port", "{busy}"],
            "--host/--port 127.0.0.1:{busy} cannot be bound",
        ),
        (
            ["--storage", "sqlite:///{tmp}/s.db", "--host", "256.0.0.1"],
            "--host/--port 256.0.0.1:13000 cannot be bound",
        ),
        (
            ["--storage", "postgresql://postgres:secret@127.0.0.1:1/none", "--port", "{free}"],
            "--storage: storage postgresql://postgres:***@127.0.0.1:1/none cannot be opened",
        ),
    ],
)
def test_bad_proxy_input_exits_2_naming_the_flag_and_writes_nothing(
    tmp_path, capsys, arguments, message
):
    with socket.create_server(("127.0.0.1", 0)) as busy:
        values = {"tmp": tmp_path, "busy": busy.getsockname()[1], "free": _free_port()}
        status = main(["storage-proxy", *(argument.format(**values) for argument in arguments)])
    err = capsys.readouterr().err
    assert status == 2, err
    assert message.format(**values) in err, err
    assert err.count("\n") == 1, err
    assert not (tmp_path / "s.db").exists()
    with pytest.raises(ValueError, match="the storage proxy serves a database"):
        serve_proxy(str(tmp_path / "study.journal"))
