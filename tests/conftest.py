"""Shared test set-up: quiet TensorFlow, a private data cache, the tiny study, the digits and a fresh PostgreSQL
database; and a check that keeps the fast tier fast: only tests marked slow may use the trained tiny study."""

import os
import shutil
import tempfile
import uuid
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["XSEARCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="xsearch-test-cache-")

import pytest

from tests.helpers import CHROMIUM, TINY_DATA, TINY_TRAINING
from xsearch.study.spec import DataSpec, StudySpec, TrainingSpec

POSTGRES = "postgresql://postgres@127.0.0.1:5432"
SLOW_ONLY_FIXTURES = ("tiny_run",)  # they train: a test that uses one belongs to the slow tier


def pytest_collection_modifyitems(config, items):
    """Refuse to run when a test not marked slow uses a fixture that trains (`pytest -m "not slow"` must stay fast)."""
    unmarked = [
        f"{item.nodeid} (uses {name})"
        for item in items
        for name in SLOW_ONLY_FIXTURES
        if name in getattr(item, "fixturenames", ()) and item.get_closest_marker("slow") is None
    ]
    if unmarked:
        raise pytest.UsageError("mark these tests @pytest.mark.slow: " + "; ".join(unmarked))


@pytest.fixture(scope="session")
def tiny_spec() -> StudySpec:
    """A study whose trials take a few seconds on a CPU: tiny designs, 300 digits, 2 epochs."""
    return StudySpec(
        name="tiny",
        space="tiny",
        trials=3,
        seed=0,
        seed_trials=("paper",),
        data=DataSpec(**TINY_DATA),
        training=TrainingSpec(**TINY_TRAINING, learning_rate=3e-3),
    )  # the settings of `tests.helpers.tiny_study_toml`


@pytest.fixture(scope="session")
def tiny_run(tiny_spec, tmp_path_factory) -> Path:
    """The run folder of the finished tiny study, trained once per test session (for slow tests only)."""
    from xsearch.run.runner import run_study

    folder = tmp_path_factory.mktemp("tiny-run")
    run_study(tiny_spec, folder, progress=False)
    return folder


@pytest.fixture(scope="session")
def digits() -> SimpleNamespace:
    """The digits at 16x16 for the plugins' own searches: the first 256 training images and the validation
    images, normalised to float32, with their labels (``x_train, y_train, x_val, y_val``) and ``num_classes``."""
    import numpy as np

    from xsearch.data import load_dataset

    data = load_dataset("digits", 16)
    normalise = lambda x: ((x - data.mean) / data.std).astype(np.float32)  # noqa: E731
    return SimpleNamespace(
        x_train=normalise(data.x_train[:256]),
        y_train=data.y_train[:256],
        x_val=normalise(data.x_val),
        y_val=data.y_val,
        num_classes=data.num_classes,
    )


@pytest.fixture
def postgres_url():
    """A fresh database on the local PostgreSQL server, dropped after the test (never skipped in CI)."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(f"{POSTGRES}/postgres", connect_timeout=3, autocommit=True)
    except psycopg.OperationalError as error:
        if os.environ.get("CI") == "true":
            raise
        pytest.skip(f"no PostgreSQL server on 127.0.0.1:5432 ({error})")
    name = f"xsearch_test_{uuid.uuid4().hex[:10]}"
    admin.execute(f"CREATE DATABASE {name}")
    yield f"{POSTGRES}/{name}"
    admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin.close()


@pytest.fixture
def tmpfs(tmp_path):
    """A factory of small tmpfs mounts (``tmpfs(size_kib, read_only=False, files={name: bytes})``), unmounted after
    the test: a full disk or a read-only file system. Needs root; skipped elsewhere, never under ``CI=true``."""
    import subprocess

    mounted = []

    def mount(size_kib: int, read_only: bool = False, files: dict | None = None) -> Path:
        folder = tmp_path / f"tmpfs{len(mounted)}"
        folder.mkdir()
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(folder)],
            capture_output=True,
            text=True,
        )
        if done.returncode:
            if os.environ.get("CI") == "true":
                raise RuntimeError(f"cannot mount a tmpfs: {done.stderr.strip()}")
            pytest.skip(
                f"a full disk or read-only file system needs a tmpfs mount, which needs root ({done.stderr.strip()})"
            )
        mounted.append(folder)
        for name, data in (files or {}).items():
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_bytes(data)
        if read_only:
            subprocess.run(["mount", "-o", "remount,ro", str(folder)], check=True)
        return folder

    yield mount
    for folder in mounted:
        subprocess.run(["umount", "-l", str(folder)], check=False)


@pytest.fixture
def require_browser() -> None:
    """Skip (fail under CI=true) without Playwright for Python or Debian's chromium."""
    try:
        import playwright.sync_api  # noqa: F401

        missing = (
            None if shutil.which(CHROMIUM) else f"{CHROMIUM} is missing (apt-get install chromium)"
        )
    except ImportError:
        missing = "playwright is missing (pip install playwright)"
    if missing and os.environ.get("CI") == "true":
        pytest.fail(f"{missing}: required under CI=true")
    if missing:
        pytest.skip(missing)
