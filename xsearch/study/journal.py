"""A journal file storage's integrity: every line one complete JSON record.

A write cut short (a full disk, a killed process) leaves a torn last line, which Optuna's reader
skips but its next append would glue onto, losing the study. `check_journal` finds the damage
before anything reads or appends: `xsearch run` repairs a torn last line at once
(`repair_journal`: the damaged file is kept beside the journal), while damage before the last line
is an error that names the file and the line and says how to repair it (``xsearch repair``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import shutil
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from optuna.storages.journal import JournalFileOpenLock

from xsearch.common.atomic import atomic_path


@dataclasses.dataclass(frozen=True)
class JournalDamage:
    """Where a journal stops being whole: its first bad ``line`` (1-based) of ``lines``.

    ``records`` complete records (``good_bytes`` bytes) come before it, or up to its end when it
    is ``unterminated``: a last record complete but for its line end.
    """

    path: Path
    line: int
    lines: int
    records: int
    good_bytes: int
    unterminated: bool = False

    @property
    def torn(self) -> bool:
        """Whether only the last line is damaged (a write cut short)."""
        return self.line == self.lines

    def describe(self) -> str:
        what = "is not a complete JSON record" if not self.unterminated else "lacks its line end"
        return f"{self.path}: line {self.line} of {self.lines} {what}"


def find_damage(path: Path) -> JournalDamage | None:
    """The first line of the journal at ``path`` that is not one complete JSON record, if any."""
    records = good_bytes = 0
    damage: tuple[int, bool] | None = None
    with open(path, "rb") as handle:
        for number, line in enumerate(handle, start=1):
            if damage is None:
                record = _record(line.rstrip(b"\n"))
                if record:
                    records, good_bytes = records + 1, good_bytes + len(line)
                if not (record and line.endswith(b"\n")):
                    damage = (number, record)
            last = number
    if damage is None:
        return None
    return JournalDamage(path, damage[0], last, records, good_bytes, unterminated=damage[1])


def check_journal(path: Path, repair: bool) -> None:
    """Raise ValueError when the journal at ``path`` is damaged, except a torn last line.

    With ``repair`` (``xsearch run``, which appends) a torn last line is repaired first, under the
    journal's lock (a line another process is still writing is not torn), and the repair is
    reported on stderr; without it (the viewers, which only read) a torn last line is skipped, as
    Optuna's reader does.
    """
    damage = find_damage(path)
    if damage is None or (damage.torn and not repair):
        return
    if damage.torn:
        with _locked(path):
            damage = find_damage(path)
            if damage is not None and damage.torn:
                print(f"xsearch: {repair_journal(damage)}", file=sys.stderr, flush=True)
        if damage is None or damage.torn:
            return
    raise ValueError(
        f"{damage.describe()}, so the study cannot be read past it. `xsearch repair --storage {path}` keeps a "
        f"copy of the damaged file beside it and keeps the {damage.records} records before line {damage.line} "
        f"(the {damage.lines - damage.line + 1} lines from there on are dropped); or restore the journal from a backup."
    )


def repair(path: Path) -> str:
    """``xsearch repair``: `repair_journal` wherever the journal at ``path`` is damaged; what was done."""
    with _locked(path):
        damage = find_damage(path)
        return f"{path} is whole: nothing to repair." if damage is None else repair_journal(damage)


def repair_journal(damage: JournalDamage) -> str:
    """Keep a copy of the damaged journal beside it, then cut the journal to its complete records; what was done.

    A last record complete but for its line end is kept (the line end is added).
    """
    path = damage.path
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = next(
        candidate
        for index in range(1000)
        if not (
            candidate := path.with_name(
                f"{path.name}.damaged-{stamp}" + (f"-{index}" if index else "")
            )
        ).exists()
    )
    try:
        with atomic_path(backup) as temporary:
            shutil.copyfile(path, temporary)
        with open(path, "r+b") as handle:
            handle.truncate(damage.good_bytes)
            if damage.unterminated:
                handle.seek(0, os.SEEK_END)
                handle.write(b"\n")
            handle.flush()
            os.fsync(handle.fileno())
    except OSError as error:
        if error.errno == errno.ENOSPC:
            raise ValueError(
                f"no space left on {path.parent} to repair {path} (a copy of it is kept first): "
                "free some space and run again."
            ) from None
        raise
    kept, dropped = damage.records, damage.lines - damage.records
    cause = " (a write cut short)" if damage.torn else ""
    ends = ", added its line end" if damage.unterminated else ""
    return (
        f"repaired {damage.describe()}{cause}: kept its {kept} complete records{ends}, dropped "
        f"{dropped} line{'s' * (dropped != 1)}; the damaged file is kept as {backup}."
    )


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold the journal's lock, the one Optuna's writers take to append."""
    lock = JournalFileOpenLock(str(path))
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def _record(text: bytes) -> bool:
    """Whether ``text`` is one JSON object (every journal record is one)."""
    try:
        return isinstance(json.loads(text), dict)
    except ValueError:  # json.JSONDecodeError, UnicodeDecodeError
        return False
