"""`serve_dashboard` on a synthetic study in a run folder's journal, with optuna-dashboard's server faked: the
storage left as it was, the study's address, the warning off loopback, a port in use; and how the viewers find
and open a run's storage (`test_dashboard_browser.py` opens the real dashboard on a trained study, in the slow tier)."""

import json
import socket
import warnings

import optuna
import pytest

import dashboards
import dashboards.server
from dashboards.server import is_loopback, serve_dashboard
from xsearch.cli import main
from xsearch.study.storage import load_study, open_storage, run_storage

DISTRIBUTIONS = {"segments": optuna.distributions.CategoricalDistribution(["4", "depthwise"])}


def _run_folder(folder):
    """A run folder whose journal holds the study "tiny" with two trials shaped like xsearch's."""
    study = optuna.create_study(
        study_name="tiny",
        storage=open_storage(None, folder),
        directions=["maximize", "minimize", "minimize"],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(["val_accuracy", "params", "latency_ms"])
    for number, segments in enumerate(["4", "depthwise"]):
        config = {
            "middle_repeats": 1,
            "width": 0.5,
            "depth_multiplier": 1,
            "segments": segments,
            "intermediate_activation": "none",
            "residual": True,
        }
        values = [0.6 + number / 10, 1e5 * (2 - number), 2.0]
        study.add_trial(
            optuna.trial.create_trial(
                values=values,
                params={"segments": segments},
                distributions=DISTRIBUTIONS,
                user_attrs={
                    "config": json.dumps(config),
                    "val_accuracy": values[0],
                    "params": values[1],
                    "latency_ms": values[2],
                },
            )
        )
    return folder


@pytest.mark.parametrize(
    ("host", "warned"), [("127.0.0.1", False), ("localhost", False), ("0.0.0.0", True)]
)
def test_serve_dashboard_writes_nothing_and_warns_off_loopback(
    tmp_path, monkeypatch, capsys, host, warned
):
    storage = run_storage("tiny", out=_run_folder(tmp_path / "run"))
    journal = (tmp_path / "run" / "study.journal").read_bytes()
    served = []
    monkeypatch.setattr(
        dashboards.server,
        "run_server",
        lambda backend, host, port: served.append((backend, host, port)),
    )
    serve_dashboard(storage, "tiny", host=host, port=_free_port())

    ((backend, served_host, port),) = served
    assert served_host == host
    assert optuna.get_all_study_names(backend) == ["tiny"]
    study_id = backend.get_study_id_from_name("tiny")
    err = capsys.readouterr().err
    assert f"http://{host}:{port}/dashboard/studies/{study_id}" in err
    assert ("no authentication" in err) == warned
    assert is_loopback(host) != warned
    # the runner attaches the figures
    assert (tmp_path / "run" / "study.journal").read_bytes() == journal
    assert dashboards.serve_dashboard is serve_dashboard
    assert dashboards.is_loopback is is_loopback


def test_a_port_in_use_exits_2_before_the_study_is_read(tmp_path, capsys):
    _run_folder(tmp_path / "run")
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        assert (
            main(
                [
                    "dashboard",
                    "--study",
                    "tiny",
                    "--out",
                    str(tmp_path / "run"),
                    "--port",
                    str(port),
                ]
            )
            == 2
        )
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port} is in use: pass another --port" in err
    assert "Traceback" not in err


def _free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        return probe.getsockname()[1]


def test_loopback_hosts():
    assert [is_loopback(h) for h in ("127.0.0.1", "127.0.0.2", "::1", "localhost")] == [True] * 4
    assert [is_loopback(h) for h in ("0.0.0.0", "::", "10.0.0.1", "gpu-box.example.org")] == [
        False
    ] * 4


def test_the_viewers_find_a_runs_storage_and_name_what_is_missing(tmp_path, monkeypatch):
    folder = _run_folder(tmp_path / "runs" / "tiny")
    journal = run_storage("tiny", out=folder)
    assert journal == str((folder / "study.journal").resolve())
    assert run_storage("tiny", storage="postgresql://db/x") == "postgresql://db/x"
    monkeypatch.chdir(tmp_path)
    assert run_storage("studies/tiny.toml") == journal  # runs/<study name> by default
    with pytest.raises(
        ValueError, match=r"'other' has no run folder storage: runs/other holds neither"
    ):
        run_storage("other")
    assert load_study(journal, "tiny").metric_names == ["val_accuracy", "params", "latency_ms"]
    with pytest.raises(ValueError, match=r"no study 'other' in .*; it holds: tiny"):
        load_study(journal, "other")
    with pytest.raises(ValueError, match="does not exist"):
        load_study(str(tmp_path / "missing.journal"), "tiny")

    database = tmp_path / "db-run"
    database.mkdir()
    optuna.create_study(study_name="tiny", storage=f"sqlite:///{database / 'study.db'}")
    assert run_storage("tiny", out=database) == f"sqlite:///{(database / 'study.db').resolve()}"
    with pytest.raises(ValueError, match="does not exist"):
        load_study(f"sqlite:///{tmp_path / 'missing.db'}", "tiny")
