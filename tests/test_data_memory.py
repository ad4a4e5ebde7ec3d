"""`benchmarks.data_memory`: its /proc readings, verdict and table, and (slow) a tiny end-to-end run."""

import json
import os
import subprocess
import sys

import pytest

from benchmarks import data_memory
from xsearch.study.spec import load_study_spec


def test_memory_readings_of_this_process_and_its_children():
    mine = data_memory.memory_mb(os.getpid())
    assert set(mine) == set(data_memory.FIELDS)
    assert 0 < mine["RssAnon"] < mine["VmHWM"]
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert child.pid in data_memory.children(os.getpid())
    finally:
        child.kill()
        child.wait()
    assert data_memory.memory_mb(child.pid) is None


def test_the_verdict_asks_for_flat_and_bounded_private_memory():
    def row(build, supervisor, workers):
        return {
            "build": {"RssAnon": build},
            "supervisor": {"RssAnon": supervisor},
            "workers": [{"RssAnon": w} for w in workers],
        }

    flat = data_memory.verdict([row(400, 330, [600, 650]), row(410, 331, [640, 700])])
    assert flat["meets_goal"]
    assert flat["largest_mb"] == {"build": 410, "supervisor": 331, "worker": 700}
    assert flat["spread"]["worker"] == pytest.approx(700 / 650 - 1)
    # grows with the data
    assert not data_memory.verdict([row(400, 330, [600]), row(400, 330, [900])])["meets_goal"]
    # too large
    assert not data_memory.verdict([row(2000, 330, [600]), row(2000, 330, [600])])["meets_goal"]


def test_the_study_file_is_a_valid_study(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text(data_memory.study_toml(tmp_path / "npz", 64, workers=2, epochs=1))
    (tmp_path / "space.toml").write_text(data_memory.SPACE)
    spec = load_study_spec(path)
    assert spec.trials == 2
    assert spec.data.source == "imagenet-npz"
    assert spec.data.data_dir == str(tmp_path / "npz")


@pytest.mark.slow
def test_a_tiny_run(tmp_path):
    report = data_memory.main(
        [
            "--sizes",
            "200",
            "400",
            "--val-images",
            "40",
            "--side",
            "8",
            "--workers",
            "1",
            "--work",
            str(tmp_path),
            "--json",
            str(tmp_path / "out.json"),
        ]
    )
    assert json.loads((tmp_path / "out.json").read_text()) == json.loads(json.dumps(report))
    assert [row["train_images"] for row in report["rows"]] == [200, 400]
    for row in report["rows"]:
        assert len(row["workers"]) == 1
        assert row["build"]["RssAnon"] > 0
        assert row["supervisor"]["RssAnon"] > 0
