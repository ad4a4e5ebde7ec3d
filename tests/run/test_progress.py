"""The progress of `xsearch run`: one display read from the storage, one plain line per finished trial off a
terminal, and a terminal quiet of the libraries' logs unless ``xsearch --verbose``."""

import datetime
import io
import json
import os
import re
import subprocess
import sys
import textwrap
import warnings

import optuna
import pytest
from optuna.distributions import IntDistribution
from optuna.trial import TrialState, create_trial
from rich.console import Console

from study_fakes import DIRECTIONS, METRICS
from tests.helpers import tiny_study_toml
from xsearch.cli import main
from xsearch.common.quiet import VERBOSE
from xsearch.run import workers
from xsearch.run.progress import Progress, trial_line
from xsearch.study.record import FailureReason, TrialAttr

START = datetime.datetime(2025, 1, 1, 12, 0, 0)


def _study() -> optuna.Study:
    study = optuna.create_study(directions=DIRECTIONS)  # in memory
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        study.set_metric_names(METRICS)
    return study


def _add(
    study: optuna.Study,
    state: TrialState = TrialState.COMPLETE,
    accuracy: float = 0.9,
    params: int = 1_370_000,
    seconds: float = 12.0,
    **attrs,
) -> None:
    complete = state == TrialState.COMPLETE
    trial = create_trial(
        state=state,
        values=[accuracy, params, 5.0] if complete else None,
        params={"middle_repeats": len(study.trials) % 9},
        distributions={"middle_repeats": IntDistribution(0, 8)},
        user_attrs={
            **({TrialAttr.VAL_ACCURACY: accuracy} if complete else {}),
            TrialAttr.PARAMS: params,
            **attrs,
        },
    )
    trial.datetime_start, trial.datetime_complete = (
        START,
        START + datetime.timedelta(seconds=seconds),
    )
    study.add_trial(trial)


def _lines(renderable) -> list[str]:
    console = Console(file=io.StringIO(), width=120, color_system=None)
    console.print(renderable)
    return [line.rstrip() for line in console.file.getvalue().splitlines()]


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_display_shows_counts_eta_running_epochs_best_and_front():
    study, clock = _study(), _Clock()
    _add(study, accuracy=0.90, params=1_000_000)
    _add(study, accuracy=0.95, params=3_000_000)  # the front: 0 and 1
    _add(study, accuracy=0.80, params=3_500_000)  # dominated by 1
    _add(study, accuracy=0.95, params=3_000_000, **{TrialAttr.REPEAT_OF: 1})  # not counted
    _add(study, accuracy=0.70, params=2_000_000, **{TrialAttr.STOPPED_AT_EPOCH: 2})
    running = study.ask()
    progress = Progress(
        study, total_trials=10, epochs=6, console=Console(file=io.StringIO()), clock=clock
    )
    with progress:
        clock.now = 120.0
        running.set_user_attr(
            TrialAttr.EPOCH_LOGS, {"epoch": 3, "loss": 0.41234, "accuracy": 0.8721}
        )
        study.ask()  # another worker's trial, before its first epoch
        progress.refresh()
        lines = _lines(progress.render())
    # half a trial in 120 s; 5.5 trials left
    assert re.search(r"^trials .*━.* 4/10  ETA 22:00$", lines[0])
    assert re.search(r"^trial 5 .*━.* epoch 3/6  loss 0\.4123  acc 0\.872$", lines[1])
    assert re.search(r"^trial 6 .* starting$", lines[2])
    assert (
        lines[3]
        == "best val acc 0.9500  front 2  1 repeated designs not retrained  1 stopped early (dominated)"
    )
    assert progress.eta() == pytest.approx(120 / 0.5 * 5.5)


def test_without_progress_yet_the_eta_is_unknown_and_done_trials_show_none():
    study = _study()
    progress = Progress(study, total_trials=1, epochs=2, console=Console(file=io.StringIO()))
    with progress:
        assert progress.eta() is None
        assert _lines(progress.render())[0].endswith(" 0/1  ETA -")
        _add(study)
        progress.refresh()
        assert _lines(progress.render())[0].endswith(" 1/1")


def test_off_a_terminal_each_finished_trial_gets_one_plain_line():
    study, out = _study(), io.StringIO()
    _add(study)  # finished before this run: no line
    with Progress(study, total_trials=5, epochs=6, console=Console(file=out, width=40)) as progress:
        _add(study, accuracy=0.9512, params=1_370_000, seconds=12.04)
        _add(study, accuracy=0.95, seconds=0.01, **{TrialAttr.REPEAT_OF: 1})
        progress.refresh()
        progress.refresh()  # nothing new: nothing printed
        _add(
            study,
            TrialState.FAIL,
            params=9_870_000,
            seconds=75,
            **{TrialAttr.FAILURE_REASON: FailureReason.NAN},
        )
        _add(study, TrialState.PRUNED, **{TrialAttr.SURPLUS: True})  # never ran: no line
    assert out.getvalue().splitlines() == [  # no display, and no wrapping at the console's width
        "trial 1  COMPLETE  val acc 0.9512  params 1.37M  12.0 s",
        "trial 2  COMPLETE (repeat of 1)  val acc 0.9500  params 1.37M  0.0 s",
        "trial 3  FAIL (nan)  params 9.87M  1:15",
    ]


def test_on_a_terminal_the_lines_print_above_the_live_display():
    study, out = _study(), io.StringIO()
    console = Console(file=out, width=100, force_terminal=True, color_system=None)
    with Progress(study, total_trials=2, epochs=6, console=console) as progress:
        assert progress.live
        _add(study, **{TrialAttr.STOPPED_AT_EPOCH: 3})
        progress.refresh()
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out.getvalue())
    assert "trial 0  COMPLETE (stopped at epoch 3)" in text
    assert text.rstrip().endswith("best val acc 0.9000  front 1  1 stopped early (dominated)")


def test_a_trial_line_names_its_state_and_reason():
    study = _study()
    _add(
        study,
        TrialState.COMPLETE,
        accuracy=0.0,
        params=12_000_000,
        **{TrialAttr.FAILURE_REASON: "constraint"},
    )
    assert (
        trial_line(study.trials[0])
        == "trial 0  COMPLETE (constraint)  val acc 0.0000  params 12.00M  12.0 s"
    )
    _add(study, accuracy=0.5, **{TrialAttr.CONTINUES: 0, TrialAttr.STOPPED_AT_EPOCH: 2})
    assert trial_line(study.trials[1]).startswith(
        "trial 1  COMPLETE (continues 0, stopped at epoch 2)  val acc 0.5000"
    )


FAKE_WORKER = textwrap.dedent("""
    import json, os
    with open(os.environ["FAKE_WORKER_LOG"], "a") as log:
        log.write(json.dumps({k: os.environ.get(k) for k in ("XSEARCH_VERBOSE", "TF_CPP_MIN_LOG_LEVEL")}) + "\\n")
""")


@pytest.mark.parametrize("verbose", [False, True])
def test_verbose_is_a_global_flag_that_reaches_the_workers(tmp_path, monkeypatch, verbose):
    (tmp_path / "w.toml").write_text(tiny_study_toml(seed_trials=()))
    (tmp_path / "fake_worker.py").write_text(FAKE_WORKER)
    monkeypatch.setattr(
        workers, "WORKER_COMMAND", (sys.executable, str(tmp_path / "fake_worker.py"))
    )
    monkeypatch.setenv("FAKE_WORKER_LOG", str(tmp_path / "log.jsonl"))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")  # both restored after the test
    monkeypatch.delenv(VERBOSE, raising=False)
    monkeypatch.delenv(workers.SUPERVISED, raising=False)
    flags = ["--verbose"] if verbose else []
    assert (
        main([*flags, "run", "--study", str(tmp_path / "w.toml"), "--out", str(tmp_path / "run")])
        == 0
    )
    seen = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    expected = (
        {"XSEARCH_VERBOSE": "1", "TF_CPP_MIN_LOG_LEVEL": "0"}
        if verbose
        else {"XSEARCH_VERBOSE": None, "TF_CPP_MIN_LOG_LEVEL": "3"}
    )
    assert seen == [expected]


@pytest.mark.slow
def test_a_real_run_prints_no_library_logs_and_one_line_per_trial(tmp_path):
    (tmp_path / "tiny.toml").write_text(tiny_study_toml())
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", VERBOSE)}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "xsearch.cli",
            "run",
            "--study",
            str(tmp_path / "tiny.toml"),
            "--out",
            str(tmp_path / "run"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    output = done.stdout + done.stderr
    noisy = [
        line
        for line in output.splitlines()
        if any(word in line for word in ("absl", "oneDNN", "cuda", "[I "))
    ]
    assert not noisy, noisy
    trials = [line for line in done.stdout.splitlines() if re.match(r"trial \d+  ", line)]
    assert len(trials) == 3, done.stdout  # the supervisor's alone
    assert all("COMPLETE" in line for line in trials), done.stdout
    assert "3 trials finished" in done.stdout
