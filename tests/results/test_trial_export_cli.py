"""`xsearch export` on a study that `xsearch run` produced: kept weights, card, refusals."""

import json

import pytest

from xsearch.cli import main
from xsearch.results.pareto import pick_trial
from xsearch.study.storage import load_study, run_storage


@pytest.mark.slow
def test_export_of_a_run_keeps_the_trained_weights(tiny_run, tmp_path, capsys):
    out = tmp_path / "knee.keras"
    arguments = [
        "export",
        "--study",
        "tiny",
        "--run-dir",
        str(tiny_run),
        "--pick",
        "knee",
        "--out",
        str(out),
    ]
    assert main(arguments) == 0
    assert "the trial's trained weights (sha256 checked)" in capsys.readouterr().out
    card = json.loads(out.with_name("knee.card.json").read_text())
    study = load_study(run_storage("tiny", out=tiny_run), "tiny")
    assert card["trial"] == pick_trial(study, "knee").number
    assert card["weights"] == "trained"

    assert main(arguments) == 2  # the file exists: refused without --force, file unchanged
    assert "--force" in capsys.readouterr().err
    assert main([*arguments, "--force"]) == 0
    assert main([*arguments[:-1], str(tmp_path / "model.h5")]) == 2
    assert ".keras" in capsys.readouterr().err
