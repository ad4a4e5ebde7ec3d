"""TensorBoard and MLflow tracking (`xsearch.study.tracking`): the spec and command line, the guard that keeps a failing
tracking server from hurting a study, and (slow) studies logged into a real `mlflow server` and read back through
MLflow's client and TensorBoard's own reader."""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest

from benchmarks.mlflow_server import mlflow_server, stop_server
from tests.helpers import tiny_study_toml
from xsearch.cli import main
from xsearch.study import tracking
from xsearch.study.record import is_repeat, repeat_of
from xsearch.study.repeats import setup_digest
from xsearch.study.spec import StudySpec, TrackingSpec, load_study_spec
from xsearch.study.storage import open_storage
from xsearch.study.tracking import Guard, MlflowLog, Tracker, metric_key, retry_root

HAS_MLFLOW = importlib.util.find_spec("mlflow") is not None
needs_mlflow = pytest.mark.skipif(
    not HAS_MLFLOW and os.environ.get("CI") != "true",
    reason="mlflow is not installed (pip install 'xsearch[tracking]'); CI installs it",
)
WARNING = "xsearch: warning: tracking to"


# --- the spec and the command line ----------------------------------------------------------------


def test_tracking_is_off_by_default_and_leaves_the_stored_spec_and_digest_as_they_were(tiny_spec):
    assert tiny_spec.tracking is None
    assert "tracking" not in tiny_spec.to_dict()
    tracked = dataclasses.replace(
        tiny_spec, tracking=TrackingSpec(tensorboard=True, mlflow_uri="http://127.0.0.1:5000")
    )
    assert setup_digest(tracked) == setup_digest(tiny_spec)  # tracking changes no result
    assert StudySpec.from_dict(tracked.to_dict()) == tracked
    assert not Tracker(tiny_spec, Path("unused")).enabled


def test_a_tracking_table_and_the_flags_are_read_and_layered(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text(
        tiny_study_toml() + '[tracking]\ntensorboard = true\nmlflow_uri = "file:///tmp/mlruns"\n'
    )
    spec = load_study_spec(path)
    assert spec.tracking == TrackingSpec(tensorboard=True, mlflow_uri="file:///tmp/mlruns")
    flagged = load_study_spec(path).override(tensorboard=False, mlflow_uri="http://127.0.0.1:5000")
    assert flagged.tracking == TrackingSpec(tensorboard=True, mlflow_uri="http://127.0.0.1:5000")
    assert StudySpec().override(tensorboard=True).tracking == TrackingSpec(tensorboard=True)
    assert StudySpec().override(tensorboard=False).tracking is None


def test_the_stored_spec_keeps_no_password_of_the_tracking_uri():
    spec = StudySpec(tracking=TrackingSpec(mlflow_uri="https://me:secret@mlflow.example.com"))
    assert spec.to_dict()["tracking"]["mlflow_uri"] == "https://me:***@mlflow.example.com"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        (
            'mlflow_uri = "ftp://host/x"',
            "tracking.mlflow_uri must be an MLflow tracking URI starting with http://",
        ),
        ('mlflow_uri = "127.0.0.1:5000"', "tracking.mlflow_uri must be an MLflow tracking URI"),
        ("tensorboard = 1", "tracking.tensorboard must be true or false; received 1"),
        ('mlflow_experiment = " "', "tracking.mlflow_experiment must be a non-empty string"),
        ("tensor_board = true", "tensor_board"),
    ],
)
def test_a_bad_tracking_table_is_refused_naming_the_key(tmp_path, table, message):
    path = tmp_path / "t.toml"
    path.write_text(tiny_study_toml() + f"[tracking]\n{table}\n")
    with pytest.raises(ValueError, match=r"t.toml") as error:
        load_study_spec(path)
    assert message in str(error.value)


def test_a_bad_mlflow_uri_on_the_command_line_exits_2_before_anything_is_written(tmp_path, capsys):
    (tmp_path / "t.toml").write_text(tiny_study_toml())
    status = main(
        [
            "run",
            "--study",
            str(tmp_path / "t.toml"),
            "--out",
            str(tmp_path / "run"),
            "--mlflow",
            "localhost:5000",
        ]
    )
    err = capsys.readouterr().err
    assert status == 2
    assert "--mlflow localhost:5000: tracking.mlflow_uri must be an MLflow tracking URI" in err
    assert err.count("\n") == 1
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize(
    ("flags", "missing", "key"),
    [
        (
            ["--mlflow", "http://127.0.0.1:5000"],
            "mlflow",
            "tracking.mlflow_uri (--mlflow) needs the mlflow package",
        ),
        (
            ["--tensorboard"],
            "tensorboard",
            "tracking.tensorboard (--tensorboard) needs the tensorboard and tensorflow packages",
        ),
    ],
)
def test_a_missing_tracking_package_exits_2_naming_the_key_and_the_extra(
    tmp_path, capsys, monkeypatch, flags, missing, key
):
    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        tracking.importlib.util,
        "find_spec",
        lambda name, *a: None if name == missing else find_spec(name, *a),
    )
    (tmp_path / "t.toml").write_text(tiny_study_toml())
    status = main(
        ["run", "--study", str(tmp_path / "t.toml"), "--out", str(tmp_path / "run"), *flags]
    )
    err = capsys.readouterr().err
    assert status == 2, err
    assert key in err, err
    assert "pip install 'xsearch[tracking]'" in err, err
    assert not (tmp_path / "run" / "study.journal").exists()


# --- the guard: never raises, bounded in time, warns once -----------------------------------------


def test_the_guard_bounds_each_call_warns_once_and_then_stops_calling(capsys):
    guard, calls = Guard("MLflow at http://example", timeout_s=0.2), []
    started = time.monotonic()
    assert guard(lambda: calls.append(1) or time.sleep(3)) is None
    assert guard(lambda: calls.append(2)) is None
    assert guard(lambda: 1 / 0) is None
    assert time.monotonic() - started < 1.5
    assert calls == [1]
    err = capsys.readouterr().err
    assert err.count(WARNING) == 1
    assert "MLflow at http://example" in err
    assert "no answer within 0.2 s" in err
    assert guard.failed


def test_the_guard_turns_an_error_into_one_warning(capsys):
    guard = Guard("somewhere", threaded=False)
    assert guard(lambda: 1 / 0) is None
    assert guard(lambda: 1 / 0) is None
    assert capsys.readouterr().err.count("ZeroDivisionError") == 1


@needs_mlflow
def test_an_unreachable_mlflow_server_warns_once_naming_the_uri_and_costs_seconds_at_most(
    tiny_spec, capsys
):
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    uri = f"http://user:secret@127.0.0.1:{port}"
    log = MlflowLog(uri, "xsearch", "tiny@here", tiny_spec)
    started = time.monotonic()
    for _ in range(3):
        assert log.guard(log.parent) is None
    assert time.monotonic() - started < tracking.CALL_TIMEOUT_S + 2
    err = capsys.readouterr().err
    assert err.count(WARNING) == 1
    assert f"MLflow at http://user:***@127.0.0.1:{port}" in err
    assert "secret" not in err


def test_a_retry_belongs_to_the_trial_it_retries():
    study = optuna.create_study()
    for retry_of in (None, 0, None, 1):
        attrs = {} if retry_of is None else {"retry_of": retry_of}
        study.add_trial(
            optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs=attrs)
        )
    trials = study.get_trials()
    assert [retry_root(trials, n) for n in range(4)] == [0, 0, 2, 0]
    assert metric_key("latency_ms@litert-cpu") == "latency_ms_litert-cpu"


def test_a_retry_and_a_continuation_log_into_the_folder_of_the_trial_they_continue(
    tmp_path, tiny_spec
):
    spec = dataclasses.replace(tiny_spec, tracking=TrackingSpec(tensorboard=True))
    tracker = Tracker(spec, tmp_path)
    study = optuna.create_study()
    study.add_trial(
        optuna.trial.create_trial(state=optuna.trial.TrialState.FAIL, user_attrs={"epochs_done": 1})
    )
    study.add_trial(
        optuna.trial.create_trial(
            state=optuna.trial.TrialState.COMPLETE,
            value=0.0,
            user_attrs={"epochs_done": 1, "stopped_at_epoch": 1},
        )
    )
    retry, continuation = study.ask(), study.ask()
    retry.set_user_attr("retry_of", 0)
    continuation.set_user_attr("continues", 1)
    chosen = {}
    for trial, epoch in ((retry, 1), (continuation, 1), (continuation, 0)):
        callback = tracking.TensorBoardLog(tracker, trial)
        callback.on_epoch_begin(epoch)
        chosen[(trial.number, epoch)] = callback.folder.name
    assert chosen == {(2, 1): "trial-0", (3, 1): "trial-1", (3, 0): "trial-3"}
    (tmp_path / "tensorboard" / "trial-0" / "train").mkdir(parents=True)
    # a retry that trains from the start again
    tracking.TensorBoardLog(tracker, retry).on_epoch_begin(0)
    # ... replaces the log it would repeat
    assert not (tmp_path / "tensorboard" / "trial-0" / "train").exists()


# --- a real MLflow server -------------------------------------------------------------------------


def _command(tmp_path: Path, *flags: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "xsearch.cli",
        "run",
        "--study",
        str(tmp_path / "w.toml"),
        "--out",
        str(tmp_path / "run"),
        *flags,
    ]


def _study(tmp_path: Path) -> optuna.Study:
    journal = tmp_path / "run" / "study.journal"
    return optuna.load_study(study_name="w", storage=open_storage(str(journal), journal.parent))


def _a_trial_between_epochs(tmp_path: Path, epochs: int) -> bool:
    if not (tmp_path / "run" / "study.journal").exists():
        return False
    try:
        trials = _study(tmp_path).get_trials(deepcopy=False)
    except KeyError:
        return False
    return any(
        t.state == optuna.trial.TrialState.RUNNING
        and 1 <= t.user_attrs.get("epochs_done", 0) < epochs - 1
        for t in trials
    )


def _a_trial_finished(tmp_path: Path) -> bool:
    if not (tmp_path / "run" / "study.journal").exists():
        return False
    try:
        return any(t.state.is_finished() for t in _study(tmp_path).get_trials(deepcopy=False))
    except KeyError:
        return False


def _scalar_steps(folder: Path, tag: str) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    events.Reload()
    return [event.step for event in events.Tensors(tag)] if tag in events.Tags()["tensors"] else []


def _session(folder: Path) -> dict:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    events = EventAccumulator(str(folder), size_guidance={"tensors": 0})
    events.Reload()
    content = events.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.SESSION_START_INFO_TAG]
    start = metadata.parse_session_start_info_plugin_data(content)
    return {key: value.WhichOneof("kind") for key, value in start.hparams.items()}


@needs_mlflow
@pytest.mark.slow
def test_two_workers_a_killed_worker_and_its_retry_log_one_parent_and_one_run_per_trial_without_duplicates(
    tmp_path,
):
    from mlflow.tracking import MlflowClient

    epochs = 6
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    with mlflow_server(tmp_path / "mlflow") as (uri, _):
        text = tiny_study_toml(
            trials=3,
            seed_trials=["paper", "regular"],
            sampler="random",
            data={"max_train": 200},
            training={"epochs": epochs},
        )
        (tmp_path / "w.toml").write_text(text)
        run = subprocess.Popen(
            _command(tmp_path, "--workers", "2", "--tensorboard", "--mlflow", uri),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            deadline = time.time() + 400
            while time.time() < deadline and not _a_trial_between_epochs(tmp_path, epochs):
                time.sleep(0.2)
            run.kill()  # the supervisor: its workers die with it, mid-trial
            run.communicate(timeout=120)
        finally:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
        done = subprocess.run(
            _command(tmp_path, "--workers", "2", "--tensorboard", "--mlflow", uri),
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert WARNING not in done.stderr
        trials = _study(tmp_path).get_trials()
        interrupted = [t for t in trials if t.user_attrs.get("failure_reason") == "interrupted"]
        finished = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
        assert interrupted
        assert len(finished) >= 3
        retries = [t for t in finished if "retry_of" in t.user_attrs]
        assert any(_resumed_and_joined(t, trials[t.user_attrs["retry_of"]]) for t in retries)
        roots = {retry_root(trials, t.number) for t in finished}

        client = MlflowClient(uri)
        experiment = client.get_experiment_by_name("xsearch")
        # MLflow's UI opens on the runs
        assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
        runs = client.search_runs([experiment.experiment_id], max_results=1000)
        parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        assert len(parents) == 1
        assert parents[0].data.tags["xsearch.study"].startswith("w@")
        children = [
            r for r in runs if r.data.tags.get("mlflow.parentRunId") == parents[0].info.run_id
        ]
        keys = sorted(int(r.data.tags["xsearch.trial"]) for r in children)
        assert keys == sorted(roots) == sorted(set(keys)), (
            keys,
            roots,
        )  # one run per trial, a retry in its trial's run
        for child in children:
            trial = trials[int(child.data.tags["xsearch.trial_number"])]
            assert child.info.status == "FINISHED"
            assert child.data.tags["xsearch.state"] == "COMPLETE"
            assert child.data.params["setup_digest"] == trial.user_attrs["setup_digest"]
            assert {
                "width",
                "middle_repeats",
                "segments",
                "residual",
                "seed",
            } <= child.data.params.keys()
            assert child.data.metrics["final.val_accuracy"] == pytest.approx(
                trial.user_attrs["val_accuracy"]
            )
            if is_repeat(trial):  # the random draw hit a trained design: its results, no training
                assert child.data.tags["xsearch.repeat_of"] == str(repeat_of(trial))
                assert "xsearch.model_artifact_id" not in child.data.tags
                assert not client.get_metric_history(child.info.run_id, "val_accuracy")
                continue
            assert (
                child.data.tags["xsearch.model_artifact_id"]
                == trial.user_attrs["model_artifact_id"]
            )
            steps = sorted(
                m.step for m in client.get_metric_history(child.info.run_id, "val_accuracy")
            )
            assert steps == sorted(set(steps)), steps  # per epoch, none twice
            assert steps[-1] == epochs - 1, steps
            assert len(client.get_metric_history(child.info.run_id, "learning_rate")) == len(steps)

        board = tmp_path / "run" / "tensorboard"
        trained = {retry_root(trials, t.number) for t in finished if not is_repeat(t)}
        for root in trained:  # a repeat trains nothing, so logs no epochs and no session
            steps = _scalar_steps(board / f"trial-{root}" / "validation", "epoch_accuracy")
            assert steps == sorted(set(steps)), (root, steps)
            assert steps[-1] == epochs - 1, (root, steps)
            assert _scalar_steps(board / f"trial-{root}" / "train", "epoch_time_s")
            assert _scalar_steps(board / f"trial-{root}" / "train", "epoch_learning_rate")
            assert _session(board / f"trial-{root}") == {
                "middle_repeats": "number_value",
                "width": "number_value",
                "depth_multiplier": "number_value",
                "segments": "string_value",
                "intermediate_activation": "string_value",
                "residual": "bool_value",
            }
            assert _scalar_steps(board / f"trial-{root}", "objective/val_accuracy")


@needs_mlflow
@pytest.mark.slow
def test_a_server_that_stops_mid_study_costs_one_warning_and_the_study_finishes(tmp_path):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    (tmp_path / "w.toml").write_text(
        tiny_study_toml(
            trials=3,
            seed_trials=[],
            sampler="random",
            data={"max_train": 200},
            training={"epochs": 2},
        )
    )
    with mlflow_server(tmp_path / "mlflow") as (uri, server):
        run = subprocess.Popen(
            _command(tmp_path, "--mlflow", uri),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        )
        try:
            deadline = time.time() + 400
            while time.time() < deadline and not _a_trial_finished(tmp_path):
                time.sleep(0.5)
            stop_server(server)  # between or during the trials that follow
            out, err = run.communicate(timeout=600)
        finally:
            if run.poll() is None:
                os.killpg(run.pid, signal.SIGKILL)
    assert run.returncode == 0, err[-3000:]
    assert err.count(WARNING) == 1, err[-3000:]
    assert f"MLflow at {uri}" in err, err[-3000:]
    assert "study 'w': 3 trials finished" in out
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in _study(tmp_path).get_trials())


def _resumed_and_joined(retry, failed) -> bool:
    """Whether ``retry`` resumed from ``failed``'s checkpoint, its curves starting with ``failed``'s epochs."""
    done = int(failed.user_attrs.get("epochs_done", 0))
    before = (failed.user_attrs.get("curves_so_far") or {}).get("val_accuracy", [])
    return done >= 1 and retry.user_attrs["curves"]["val_accuracy"][:done] == before[:done]
