"""Damaged journals: a torn last line repaired before any append (the damaged file kept), damage elsewhere refused."""

import json
from pathlib import Path

import optuna
import pytest

from xsearch.cli import main
from xsearch.study.journal import check_journal, find_damage
from xsearch.study.storage import open_storage


def _journal(folder: Path, trials: int = 3) -> Path:
    """A run folder's journal holding the study ``s`` with ``trials`` finished trials."""
    storage = open_storage(None, folder)
    study = optuna.create_study(study_name="s", storage=storage)
    for value in range(trials):
        study.enqueue_trial({"x": float(value)})
        study.optimize(lambda trial: trial.suggest_float("x", 0, 10), n_trials=1)
    return folder / "study.journal"


def _trials(path: Path) -> list[optuna.trial.FrozenTrial]:
    return optuna.load_study(study_name="s", storage=open_storage(str(path), create=False)).trials


def test_a_whole_journal_has_no_damage(tmp_path):
    path = _journal(tmp_path)
    assert find_damage(path) is None
    check_journal(path, repair=True)
    assert not list(tmp_path.glob("*.damaged-*"))


@pytest.mark.parametrize("tear", [b"", b'{"op_co', b"garbage\n"], ids=["cut", "partial", "garbage"])
def test_run_repairs_a_torn_last_line_and_keeps_the_damaged_file(tmp_path, capsys, tear):
    path = _journal(tmp_path)
    whole = path.read_bytes()
    damaged = whole[:-40] if not tear else whole + tear
    path.write_bytes(damaged)
    assert find_damage(path).torn
    storage = open_storage(None, tmp_path)  # as `xsearch run` opens it, before appending
    err = capsys.readouterr().err
    (backup,) = tmp_path.glob("study.journal.damaged-*")
    assert backup.read_bytes() == damaged
    assert f"the damaged file is kept as {backup}" in err
    assert "line " in err
    assert find_damage(path) is None
    assert path.read_bytes() == (whole if tear else whole[: whole.rstrip(b"\n").rfind(b"\n") + 1])
    study = optuna.load_study(study_name="s", storage=storage)
    study.optimize(lambda trial: trial.suggest_float("x", 0, 10), n_trials=1)  # appends cleanly
    assert len(_trials(path)) == 4
    assert find_damage(path) is None


def test_a_last_record_without_its_line_end_is_kept(tmp_path):
    path = _journal(tmp_path)
    whole = path.read_bytes()
    path.write_bytes(whole[:-1])
    open_storage(None, tmp_path)
    assert path.read_bytes() == whole


def test_viewers_read_a_torn_journal_without_writing(tmp_path, capsys):
    path = _journal(tmp_path)
    path.write_bytes(path.read_bytes()[:-40])
    damaged = path.read_bytes()
    assert main(["report", "--study", "s", "--out", str(tmp_path), "--format", "csv"]) == 0
    assert path.read_bytes() == damaged
    assert not list(tmp_path.glob("*.damaged-*"))
    assert "3 trials" in capsys.readouterr().out


def test_damage_before_the_last_line_exits_2_naming_the_line_and_the_repair(tmp_path, capsys):
    path = _journal(tmp_path)
    lines = path.read_bytes().split(b"\n")
    lines[4] = lines[4][:20]
    path.write_bytes(b"\n".join(lines))
    damaged = path.read_bytes()
    for command in (
        ["report", "--study", "s", "--out", str(tmp_path)],
        ["repair", "--study", "s", "--out", "/nonexistent"],
    ):
        status = main(command)
        err = capsys.readouterr().err
        assert status == 2
        assert "Traceback" not in err
    with pytest.raises(
        ValueError, match=r"line 5 of \d+ is not a complete JSON record.*xsearch repair --storage"
    ):
        open_storage(None, tmp_path)
    assert path.read_bytes() == damaged

    assert main(["repair", "--storage", str(path)]) == 0
    out = capsys.readouterr().out
    (backup,) = tmp_path.glob("study.journal.damaged-*")
    assert backup.read_bytes() == damaged
    assert "kept its 4 complete records" in out
    assert path.read_bytes() == b"".join(line + b"\n" for line in lines[:4])
    assert all(isinstance(json.loads(line), dict) for line in path.read_bytes().splitlines())
    assert main(["repair", "--storage", str(path)]) == 0
    assert "nothing to repair" in capsys.readouterr().out


def test_repair_refuses_a_database(tmp_path, capsys):
    assert main(["repair", "--storage", f"sqlite:///{tmp_path}/s.db"]) == 2
    assert "only a .journal file can be repaired" in capsys.readouterr().err
