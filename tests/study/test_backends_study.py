"""A short study on each Keras backend, on the CPU (the backend is fixed per process)."""

import os
import subprocess
import sys

import optuna
import pytest

from tests.helpers import tiny_study_toml
from xsearch.study.storage import open_storage

STUDY = tiny_study_toml(trials=2, data={"max_train": 200})
CLI = "import sys, runpy; sys.argv = ['xsearch'] + sys.argv[1:]; runpy.run_module('xsearch.cli', run_name='__main__')"
NO_TENSORFLOW = """
import sys
class NoTensorFlow:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == "tensorflow":
            raise ImportError("TensorFlow is not installed here (like on a JAX-only GPU machine)")
sys.meta_path.insert(0, NoTensorFlow())
"""


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
@pytest.mark.slow
def test_short_study_on_each_backend(tmp_path, backend):
    pytest.importorskip(backend)
    (tmp_path / "b.toml").write_text(STUDY)
    # JAX: the data path and trials need no TensorFlow
    code = (NO_TENSORFLOW if backend == "jax" else "") + CLI
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "JAX_PLATFORMS": "cpu",
        "XSEARCH_SUPERVISED": "1",
    }  # the trials run in this process, under the import guard
    env.pop("KERAS_BACKEND", None)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "--backend",
            backend,
            "run",
            "--study",
            str(tmp_path / "b.toml"),
            "--out",
            str(tmp_path / "run"),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    journal = tmp_path / "run" / "study.journal"
    study = optuna.load_study(study_name="b", storage=open_storage(str(journal), journal.parent))
    complete = study.get_trials(states=(optuna.trial.TrialState.COMPLETE,))
    assert len(complete) == 2
    for trial in complete:
        assert trial.user_attrs["backend"] == backend
        assert trial.user_attrs["precision"] == "float32"
        assert trial.user_attrs["backend_version"]
        assert trial.user_attrs["device"].startswith("cpu")
