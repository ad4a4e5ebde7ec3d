"""Trials that go wrong and bad input: recorded reasons, exit status 2, nothing changed."""

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

import xsearch.study.trainer
from tests.helpers import tiny_study_toml
from xsearch.cli import main
from xsearch.run.runner import run_study
from xsearch.study.failures import StudyStopped
from xsearch.study.spec import TrainingSpec
from xsearch.study.storage import open_storage

COMPLETE, FAIL = optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.FAIL


@pytest.mark.slow
def test_nan_loss_fails_the_trial_with_reason_nan(tmp_path, tiny_spec):
    exploding = TrainingSpec(
        epochs=2, batch_size=32, optimizer="sgd", learning_rate=1e30, augment=False
    )
    study = run_study(
        dataclasses.replace(tiny_spec, trials=2, training=exploding),
        tmp_path / "run",
        progress=False,
    )
    assert [t.state for t in study.trials] == [FAIL, FAIL]
    assert {t.user_attrs["failure_reason"] for t in study.trials} == {"nan"}
    table = (tmp_path / "run" / "trials.csv").read_text()
    assert "nan" in table.split("\n")[1]
    assert "failure_reason" in table.split("\n")[0]


@pytest.mark.slow
def test_out_of_memory_is_recorded_and_taught_to_the_sampler(tmp_path, tiny_spec, monkeypatch):
    import tensorflow as tf

    def out_of_memory(*args, **kwargs):
        raise tf.errors.ResourceExhaustedError(
            None, None, "OOM when allocating tensor with shape [4096,4096]"
        )

    monkeypatch.setattr(xsearch.study.trainer, "train_and_evaluate", out_of_memory)
    study = run_study(dataclasses.replace(tiny_spec, trials=2), tmp_path / "run", progress=False)
    for trial in study.trials:
        assert trial.state == COMPLETE  # told, so that the sampler learns the region is infeasible
        assert trial.user_attrs["failure_reason"] == "oom"
        assert trial.constraints["oom"] == 1.0
        assert trial.user_attrs["params"] > 0
        assert "ResourceExhaustedError" in trial.user_attrs["error"]
    assert study.best_trials == []


@pytest.mark.slow
def test_an_exception_fails_one_trial_and_the_study_goes_on(tmp_path, tiny_spec, monkeypatch):
    real_build = xsearch.study.trainer.build_model
    calls = []

    def flaky_build(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("simulated crash in the builder")
        return real_build(*args, **kwargs)

    monkeypatch.setattr(xsearch.study.trainer, "build_model", flaky_build)
    study = run_study(dataclasses.replace(tiny_spec, trials=3), tmp_path / "run", progress=False)
    states = [t.state for t in study.trials]
    assert states.count(FAIL) == 1
    assert states.count(COMPLETE) == 2
    failed = study.trials[states.index(FAIL)]
    assert failed.user_attrs["failure_reason"] == "error"
    assert "simulated crash" in failed.user_attrs["error"]


@pytest.mark.slow
def test_repeated_failures_warn_loudly_and_stop_only_when_asked(
    tmp_path, tiny_spec, monkeypatch, capsys
):
    def broken(*args, **kwargs):
        raise RuntimeError("driver gone")

    monkeypatch.setattr(xsearch.study.trainer, "build_model", broken)
    study = run_study(dataclasses.replace(tiny_spec, trials=4), tmp_path / "a", progress=False)
    assert len(study.trials) == 4  # not asked to stop: the study goes on
    assert "3 trials in a row failed with reason 'error'" in capsys.readouterr().err
    with pytest.raises(StudyStopped, match=r"2 trials in a row failed .*--max-failures 2 reached"):
        run_study(
            dataclasses.replace(tiny_spec, trials=6, max_failures=2), tmp_path / "b", progress=False
        )
    # a restarted (or recycled) worker goes on with the streak: one more failure makes 3
    with pytest.raises(StudyStopped, match=r"3 trials in a row failed .*--max-failures 3 reached"):
        run_study(
            dataclasses.replace(tiny_spec, trials=6, max_failures=3), tmp_path / "b", progress=False
        )
    journal = tmp_path / "b" / "study.journal"
    assert (
        len(
            optuna.load_study(
                study_name="tiny", storage=open_storage(str(journal), journal.parent)
            ).trials
        )
        == 3
    )


def _snapshot(folder: Path) -> dict:
    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


TINY = tiny_study_toml(trials=1, seed_trials=[], data={"max_train": 200}, training={"epochs": 1})


@pytest.mark.parametrize(
    ("case", "files", "arguments", "message"),
    [
        (
            "unknown study",
            {},
            ["--study", "imagenet-smal"],
            "unknown study 'imagenet-smal'. Did you mean 'imagenet-small'?",
        ),
        (
            "malformed TOML",
            {"s.toml": "trials = \n"},
            ["--study", "{tmp}/s.toml"],
            "s.toml: malformed TOML: Invalid value (at line 1",
        ),
        (
            "unknown key",
            {"s.toml": "trails = 3\n"},
            ["--study", "{tmp}/s.toml"],
            "Did you mean 'trials'?",
        ),
        (
            "out of range",
            {"s.toml": TINY.replace("epochs = 1", "epochs = -1")},
            ["--study", "{tmp}/s.toml"],
            "training.epochs must be an integer in [1, 10000]; received -1",
        ),
        (
            "no valid design",
            {
                "s.toml": TINY.replace('"tiny"', '"{tmp}/space.toml"'),
                "space.toml": "[axes]\nsegments = [0]\n",
            },
            ["--study", "{tmp}/s.toml"],
            "segments must be an integer >= 1",
        ),
        (
            "empty image folder",
            {"s.toml": TINY.replace('"digits"', '"folder"'), "images/train/cats/readme.txt": "x"},
            ["--study", "{tmp}/s.toml", "--data-dir", "{tmp}/images"],
            "no images",
        ),
        (
            "unreachable storage",
            {"s.toml": TINY},
            [
                "--study",
                "{tmp}/s.toml",
                "--storage",
                "postgresql://postgres:secret@127.0.0.1:1/none",
            ],
            "storage postgresql://postgres:***@127.0.0.1:1/none cannot be opened",
        ),
        (
            "bad workers",
            {"s.toml": TINY},
            ["--study", "{tmp}/s.toml", "--workers", "many"],
            "--workers must be a positive integer or 'auto'; received 'many'",
        ),
        (
            "bad batch size",
            {"s.toml": TINY},
            ["--study", "{tmp}/s.toml", "--batch-size", "big"],
            "--batch-size big: training.batch_size must be an integer > 0 or 'auto'; received 'big'",
        ),
        (
            "unknown seed trial",
            {"s.toml": TINY.replace("seed_trials = []", 'seed_trials = ["nope"]')},
            ["--study", "{tmp}/s.toml"],
            "s.toml: seed_trials: unknown seed 'nope'; valid: 'paper', 'regular', 'segments-K'",
        ),
        (
            "seed table key",
            {"s.toml": TINY.replace("seed_trials = []", "seed_trials = [{depth=3}]")},
            ["--study", "{tmp}/s.toml"],
            "seed_trials: table {'depth': 3}: unknown key(s) depth; valid keys are middle_repeats",
        ),
        (
            "seed table value",
            {"s.toml": TINY.replace("seed_trials = []", "seed_trials = [{width=9.0}]")},
            ["--study", "{tmp}/s.toml"],
            "seed_trials: table {'width': 9.0}: XceptionConfig.width must be a number in (0, 4]",
        ),
        (
            "seeds not a list",
            {"s.toml": TINY.replace("seed_trials = []", 'seed_trials = "paper"')},
            ["--study", "{tmp}/s.toml"],
            "seed_trials must be a list, e.g. seed_trials = [",
        ),
        (
            "objectives not a list",
            {"s.toml": TINY.replace("trials = 1", 'trials = 1\nobjectives = "accuracy"')},
            ["--study", "{tmp}/s.toml"],
            'objectives must be a list, e.g. objectives = ["accuracy"',
        ),
        (
            "constraints not a table",
            {"s.toml": TINY.replace("trials = 1", "trials = 1\nconstraints = [1, 2]")},
            ["--study", "{tmp}/s.toml"],
            "constraints must be a table, e.g. constraints = { max_params = 5e6 }",
        ),
        (
            "image too small",
            {"s.toml": TINY.replace("image_size = 16", "image_size = 3")},
            ["--study", "{tmp}/s.toml"],
            "s.toml: data.image_size must be an integer in [7, 1024]; received 3",
        ),
        (
            "image too large",
            {"s.toml": TINY.replace("image_size = 16", "image_size = 100000")},
            ["--study", "{tmp}/s.toml"],
            "data.image_size must be an integer in [7, 1024]; received 100000",
        ),
        (
            "absurd epochs",
            {"s.toml": TINY.replace("epochs = 1", "epochs = 1000000000")},
            ["--study", "{tmp}/s.toml"],
            "training.epochs must be an integer in [1, 10000]; received 1000000000",
        ),
        (
            "negative weight decay",
            {"s.toml": TINY.replace("epochs = 1", "epochs = 1\nweight_decay = -5.0")},
            ["--study", "{tmp}/s.toml"],
            "training.weight_decay must be a number >= 0; received -5.0",
        ),
        (
            "warm-up beyond training",
            {"s.toml": TINY.replace("epochs = 1", "epochs = 2\nwarmup_epochs = 3")},
            ["--study", "{tmp}/s.toml"],
            "training.warmup_epochs must be an integer in [0, training.epochs = 2]; received 3",
        ),
        (
            "timeout nan",
            {"s.toml": TINY},
            ["--study", "{tmp}/s.toml", "--timeout", "nan"],
            "--timeout nan: timeout must be a number > 0; received nan",
        ),
        (
            "missing weights",
            {"s.toml": TINY},
            ["--study", "{tmp}/s.toml", "--weights", "{tmp}/none.h5"],
            "none.h5: no such weights file",
        ),
        (
            "weights not HDF5",
            {"s.toml": TINY, "fake.h5": "not weights"},
            ["--study", "{tmp}/s.toml", "--weights", "{tmp}/fake.h5"],
            "fake.h5: not an HDF5 weights file",
        ),
        (
            "space not a name",
            {"s.toml": TINY.replace('space = "tiny"', "space = 5")},
            ["--study", "{tmp}/s.toml"],
            "s.toml: space must be the name of a search space",
        ),
        (
            "seed not a number",
            {"s.toml": TINY.replace("trials = 1", 'trials = 1\nseed = "abc"')},
            ["--study", "{tmp}/s.toml"],
            "s.toml: seed must be an integer in [0, 2**32 - 1]; received 'abc'",
        ),
        (
            "no design meets max_params",
            {"s.toml": TINY.replace("trials = 1", "trials = 1\nconstraints = { max_params = 10 }")},
            ["--study", "{tmp}/s.toml"],
            "constraints.max_params = 10: no design of space 'tiny' meets it: the smallest",
        ),
        (
            "data dir for digits",
            {"s.toml": TINY},
            ["--study", "{tmp}/s.toml", "--data-dir", "{tmp}"],
            "source 'digits' reads no folder",
        ),
        (
            "data dir a file",
            {"s.toml": TINY.replace('"digits"', '"folder"')},
            ["--study", "{tmp}/s.toml", "--data-dir", "{tmp}/s.toml"],
            "s.toml is a file, not a folder",
        ),
        (
            "unknown storage scheme",
            {"s.toml": TINY},
            ["--study", "{tmp}/s.toml", "--storage", "redis://localhost/0"],
            "storage redis://localhost/0: unknown scheme 'redis': use postgresql://",
        ),
        (
            "out is a file",
            {"s.toml": TINY, "run": "a file"},
            ["--study", "{tmp}/s.toml", "--out", "{tmp}/run/inside"],
            "run is a file, not a folder; choose another --out",
        ),
    ],
)
def test_bad_input_exits_2_with_one_message_and_changes_nothing(
    tmp_path, capsys, case, files, arguments, message
):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text.replace("{tmp}", str(tmp_path)))
    out = tmp_path / "run"
    before = _snapshot(out)
    status = main(
        ["run", "--out", str(out), *[a.replace("{tmp}", str(tmp_path)) for a in arguments]]
    )
    err = capsys.readouterr().err
    assert status == 2, case
    assert message.lower() in err.lower(), err
    assert "Traceback" not in err
    assert err.count("\n") == 1
    assert _snapshot(out) == before


@pytest.mark.parametrize(
    ("case", "files", "arguments", "message"),
    [
        (
            "no design meets max_params",
            {"s.toml": TINY.replace("trials = 1", "trials = 1\nconstraints = { max_params = 10 }")},
            [],
            "constraints.max_params = 10: no design of space 'tiny' meets it: the smallest",
        ),
        (
            "empty image folder",
            {"s.toml": TINY.replace('"digits"', '"folder"'), "images/train/cats/readme.txt": "x"},
            ["--data-dir", "{tmp}/images"],
            "no images",
        ),
        (
            "unknown storage scheme",
            {"s.toml": TINY},
            ["--storage", "redis://localhost/0"],
            "unknown scheme 'redis'",
        ),
    ],
)
def test_an_error_found_after_loading_the_study_file_starts_with_its_path(
    tmp_path, capsys, case, files, arguments, message
):
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    study = tmp_path / "s.toml"
    status = main(
        [
            "run",
            "--study",
            str(study),
            "--out",
            str(tmp_path / "run"),
            *[a.replace("{tmp}", str(tmp_path)) for a in arguments],
        ]
    )
    err = capsys.readouterr().err
    assert status == 2, case
    assert err.startswith(f"xsearch: error: {study}: "), err
    assert message in err, err
    assert err.count(f"{study}:") == 1, err
    assert "Traceback" not in err
    assert err.count("\n") == 1


@pytest.mark.slow
def test_reopening_with_other_objectives_exits_2_and_keeps_the_study(tmp_path, capsys):
    study_file = tmp_path / "s.toml"
    study_file.write_text(TINY)
    assert main(["run", "--study", str(study_file), "--out", str(tmp_path / "run")]) == 0
    before = _snapshot(tmp_path / "run")
    study_file.write_text(
        TINY.replace("trials = 1", 'trials = 1\nobjectives = ["accuracy", "flops"]')
    )
    assert main(["run", "--study", str(study_file), "--out", str(tmp_path / "run")]) == 2
    assert "was created with objectives" in capsys.readouterr().err
    assert _snapshot(tmp_path / "run") == before


def test_a_binary_study_file_exits_2_naming_it(tmp_path, capsys):
    (tmp_path / "s.toml").write_bytes(b"trials = 3\n\xf0\x28\x8c\x28\n")
    assert main(["run", "--study", str(tmp_path / "s.toml"), "--out", str(tmp_path / "run")]) == 2
    assert "s.toml: not a TOML text file: byte 11 is not UTF-8 text" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_debug_shows_the_traceback(tmp_path):
    with pytest.raises(KeyError):
        main(["--debug", "run", "--study", "nope"])


def _run_cli(*arguments: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, "-m", "xsearch.cli", *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_a_torn_journal_is_repaired_on_resume_and_every_finished_trial_is_kept(tmp_path):
    (tmp_path / "s.toml").write_text(
        TINY.replace("trials = 1", "trials = 2").replace("seed_trials = []", 'sampler = "random"')
    )
    run = ["run", "--study", str(tmp_path / "s.toml"), "--out", str(tmp_path / "run")]
    assert _run_cli(*run).returncode == 0
    journal = tmp_path / "run" / "study.journal"
    journal.write_bytes(journal.read_bytes()[:-40])  # a write cut short: the last line is torn
    damaged = journal.read_bytes()

    resumed = _run_cli(*run, "--trials", "3")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    (backup,) = (tmp_path / "run").glob("study.journal.damaged-*")
    assert backup.read_bytes() == damaged
    assert f"repaired {journal}: line" in resumed.stderr
    assert f"the damaged file is kept as {backup}" in resumed.stderr
    report = _run_cli("report", "--study", "s", "--out", str(tmp_path / "run"), "--format", "csv")
    assert report.returncode == 0
    assert "study 's': 3 trials (COMPLETE 3)" in report.stdout
    # every complete record kept as it was
    assert journal.read_bytes().startswith(damaged[: damaged.rfind(b"\n") + 1])


@pytest.mark.slow
def test_a_full_disk_ends_the_run_with_exit_2_and_a_readable_study(tmp_path, tmpfs):
    (tmp_path / "s.toml").write_text(TINY)
    full = tmpfs(64)
    done = _run_cli("run", "--study", str(tmp_path / "s.toml"), "--out", str(full / "run"))
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"xsearch: error: no space left on {full / 'run'}: free some space" in done.stderr
    assert "crashed" not in done.stderr
    assert "Should not reach" not in done.stderr
    assert "Exception ignored" not in done.stderr
    assert "Traceback" not in done.stderr  # h5py's release errors: dropped
    assert done.stderr.strip().count("\n") == 0, done.stderr[-2000:]  # xsearch's message only
    report = _run_cli(
        "report",
        "--study",
        "s",
        "--storage",
        str(full / "run" / "study.journal"),
        "--out",
        str(tmp_path),
    )
    assert report.returncode == 0, report.stderr
