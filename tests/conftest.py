"""Shared test set-up: quiet TensorFlow, a private data cache, a tiny study and a fresh PostgreSQL database."""

import os
import tempfile
import uuid
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["XSEARCH_CACHE_DIR"] = tempfile.mkdtemp(prefix="xsearch-test-cache-")

import pytest  # noqa: E402

from xsearch.study.spec import DataSpec, StudySpec, TrainingSpec  # noqa: E402

POSTGRES = "postgresql://postgres@127.0.0.1:5432"


@pytest.fixture(scope="session")
def tiny_spec() -> StudySpec:
    """A study whose trials take a few seconds on a CPU: tiny designs, 300 digits, 2 epochs."""
    return StudySpec(
        name="tiny", space="tiny", trials=3, seed=0, seed_trials=("paper",),
        data=DataSpec(source="digits", image_size=16, max_train=300, val_fraction=0.2, test_fraction=0.2),
        training=TrainingSpec(epochs=2, batch_size=32, learning_rate=3e-3, augment=False),
    )


@pytest.fixture(scope="session")
def tiny_run(tiny_spec, tmp_path_factory) -> Path:
    """The run folder of the finished tiny study, trained once per test session."""
    from xsearch.run.runner import run_study

    folder = tmp_path_factory.mktemp("tiny-run")
    run_study(tiny_spec, folder, progress=False)
    return folder


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
