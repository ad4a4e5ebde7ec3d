"""Atomic writes: the file appears whole under its name, or not at all, and no temporary file is left."""

import os

import pytest

from xsearch.common.atomic import atomic_path, write_atomic


def test_write_atomic_writes_text_and_bytes_readable_by_all_and_leaves_no_temporary_file(tmp_path):
    write_atomic(tmp_path / "a.txt", "héllo")
    write_atomic(tmp_path / "b.bin", b"\0\1")
    assert (tmp_path / "a.txt").read_text(encoding="utf-8") == "héllo"
    assert (tmp_path / "b.bin").read_bytes() == b"\0\1"
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
    write_atomic(tmp_path / "a.txt", "again")  # replaces the file
    assert (tmp_path / "a.txt").read_text() == "again"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin"]


def test_a_failed_write_keeps_the_old_file_and_removes_the_temporary_one(tmp_path, monkeypatch):
    target = tmp_path / "report.csv"
    target.write_text("old")

    def write_half_then_crash():
        with atomic_path(target, suffix=".csv") as temporary:
            assert temporary.parent.parent == tmp_path
            assert temporary.name.endswith(".csv")
            assert not temporary.exists()
            temporary.write_text("half")
            raise RuntimeError("crash")

    with pytest.raises(RuntimeError, match="crash"):
        write_half_then_crash()
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.csv"]

    def disk_full(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", disk_full)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, "new")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["report.csv"]
