"""Supervised workers: every `xsearch run` trains in a worker process, restarted when it crashes and
recycled after its share of trials, so that memory does not grow."""

import os
import subprocess
import sys

import optuna
import pytest

from xsearch.storage import open_storage
from xsearch.workers import worker_count

STUDY = ('space = "tiny"\ntrials = 3\nseed_trials = []\nsampler = "random"\n[data]\nsource = "digits"\n'
         'image_size = 16\nmax_train = 200\n[training]\nepochs = 1\nbatch_size = 32\naugment = false\n')


def _command(tmp_path):
    return [sys.executable, "-m", "xsearch.cli", "run", "--study", str(tmp_path / "w.toml"), "--out", str(tmp_path / "run")]


def _study(tmp_path):
    journal = tmp_path / "run" / "study.journal"
    return optuna.load_study(study_name="w", storage=open_storage(str(journal), journal.parent))


def test_supervised_worker_is_recycled_and_the_study_completes(tmp_path):
    (tmp_path / "w.toml").write_text(STUDY)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "XSEARCH_TRIALS_PER_WORKER": "1"}
    done = subprocess.run(_command(tmp_path), env=env, capture_output=True, text=True, timeout=600)  # no --workers
    assert done.returncode == 0, done.stderr[-2000:]
    trials = _study(tmp_path).get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 3
    assert len({t.user_attrs["worker_pid"] for t in trials}) == 3  # a fresh process per trial
    assert "crashed" not in done.stderr


def test_worker_count():
    assert worker_count("3") == 3
    assert worker_count("auto") >= 1
    with pytest.raises(ValueError, match="received '0'"):
        worker_count("0")
