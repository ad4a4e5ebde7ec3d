import json
import subprocess
import sys

import pytest

from xsearch.cli import main


@pytest.mark.slow
def test_help_lists_commands():
    done = subprocess.run([sys.executable, "-m", "xsearch.cli", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "describe" in done.stdout


def test_describe_paper_prints_costs(capsys):
    assert main(["describe", "--paper", "--no-summary"]) == 0
    out = capsys.readouterr().out
    assert "params: 22,910,480" in out and "MACs: 8,357,403,496 (8.357 G)" in out


def test_describe_config_with_summary_and_latency(tmp_path, capsys):
    path = tmp_path / "small.json"
    path.write_text(json.dumps({"middle_repeats": 1, "width": 0.25, "segments": 4}))
    assert main(["describe", "--config", str(path), "--image-size", "32", "--classes", "10", "--latency-batch", "2"]) == 0
    out = capsys.readouterr().out
    assert "block2_sepconv1_spatial" in out and "latency:" in out and "at batch 2 on cpu" in out


def test_describe_bad_config_exits_2_with_message(tmp_path, capsys):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"segments": 0}))
    assert main(["describe", "--config", str(path)]) == 2
    assert "segments must be an integer >= 1" in capsys.readouterr().err
    assert main(["describe", "--config", str(tmp_path / "missing.json")]) == 2
    assert "no such config file" in capsys.readouterr().err
    assert main(["describe", "--paper", "--latency-batch", "0"]) == 2
    assert "--latency-batch must be an integer >= 1; received 0" in capsys.readouterr().err
