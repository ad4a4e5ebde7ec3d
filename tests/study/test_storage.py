"""The viewers open a database storage without writing to it: a database without Optuna's tables holds no study."""

import pytest
import sqlalchemy

from xsearch.cli import main


def _tables(url: str) -> list[str]:
    engine = sqlalchemy.create_engine(url)
    try:
        return sqlalchemy.inspect(engine).get_table_names()
    finally:
        engine.dispose()


def _refused_without_tables(url: str, tmp_path, capsys) -> None:
    for command in (
        ["report", "--study", "s", "--storage", url, "--out", str(tmp_path / "run")],
        [
            "export",
            "--study",
            "s",
            "--storage",
            url,
            "--trial",
            "0",
            "--out",
            str(tmp_path / "m.keras"),
        ],
        ["dashboard", "--study", "s", "--storage", url, "--port", "0"],
    ):
        assert main(command) == 2, command
        err = capsys.readouterr().err
        assert "holds no study: its database has no Optuna tables" in err
        assert "Traceback" not in err
    assert _tables(url) == []
    assert not (tmp_path / "run").exists()


def test_viewers_create_no_tables_in_an_empty_sqlite_file(tmp_path, capsys):
    (tmp_path / "empty.db").touch()
    _refused_without_tables(f"sqlite:///{tmp_path / 'empty.db'}", tmp_path, capsys)
    assert (tmp_path / "empty.db").read_bytes() == b""


@pytest.mark.slow
def test_viewers_create_no_tables_in_an_empty_postgresql_database(postgres_url, tmp_path, capsys):
    _refused_without_tables(postgres_url, tmp_path, capsys)
