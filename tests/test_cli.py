import json
import subprocess
import sys

import optuna
import pytest

from tests.helpers import tiny_study_toml
from xsearch.cli import main


@pytest.mark.slow
def test_help_lists_commands():
    done = subprocess.run(
        [sys.executable, "-m", "xsearch.cli", "--help"], capture_output=True, text=True
    )
    assert done.returncode == 0
    assert "describe" in done.stdout


def test_describe_paper_prints_costs(capsys):
    assert main(["describe", "--paper", "--no-summary"]) == 0
    out = capsys.readouterr().out
    assert "params: 22,910,480" in out
    assert "MACs: 8,357,403,496 (8.357 G)" in out


def test_describe_config_with_summary_and_latency(tmp_path, capsys):
    path = tmp_path / "small.json"
    path.write_text(json.dumps({"middle_repeats": 1, "width": 0.25, "segments": 4}))
    assert (
        main(
            [
                "describe",
                "--config",
                str(path),
                "--image-size",
                "32",
                "--classes",
                "10",
                "--latency-batch",
                "2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "block2_sepconv1_spatial" in out
    assert "latency:" in out
    assert "at batch 2 on cpu" in out


def test_describe_bad_config_exits_2_with_message(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"segments": 0}))
    assert main(["describe", "--config", str(path)]) == 2
    assert "segments must be an integer >= 1" in capsys.readouterr().err
    assert main(["describe", "--config", str(tmp_path / "missing.json")]) == 2
    assert "no such config file" in capsys.readouterr().err
    assert main(["describe", "--paper", "--latency-batch", "0"]) == 2
    assert "--latency-batch must be an integer >= 1; received 0" in capsys.readouterr().err


def test_a_read_only_file_system_exits_2_naming_the_path_and_changes_nothing(
    tmp_path, tmpfs, capsys
):
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "study.journal"))
    )
    study = optuna.create_study(study_name="s", storage=storage)
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    read_only = tmpfs(
        256, read_only=True, files={"run/study.journal": (tmp_path / "study.journal").read_bytes()}
    )
    journal = read_only / "run" / "study.journal"
    study_file = tmp_path / "s.toml"
    study_file.write_text(tiny_study_toml(trials=1, seed_trials=[]))
    for command, message in [
        (
            ["report", "--study", "s", "--out", str(read_only / "run")],
            f"report.html: {read_only / 'run'} cannot be written",
        ),
        (
            [
                "export",
                "--study",
                "s",
                "--storage",
                str(journal),
                "--trial",
                "0",
                "--out",
                str(read_only / "m.keras"),
            ],
            f"m.keras: {read_only} cannot be written (a read-only file system",
        ),
        (
            ["run", "--study", str(study_file), "--out", str(read_only / "new")],
            f"{read_only} cannot be written",
        ),
        (
            ["run", "--study", str(study_file), "--out", str(tmp_path / "s.toml" / "run")],
            "s.toml is a file, not a folder",
        ),
    ]:
        assert main(command) == 2, command
        err = capsys.readouterr().err
        assert message in err, err
        assert "Traceback" not in err, err
        assert err.count("\n") == 1, err
    assert journal.read_bytes() == (tmp_path / "study.journal").read_bytes()
    assert sorted(p.name for p in read_only.rglob("*")) == ["run", "study.journal"]


def test_version_is_the_package_version(capsys):
    import importlib.metadata

    import xsearch

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"xsearch {xsearch.__version__}"
    assert importlib.metadata.version("xsearch") == xsearch.__version__
