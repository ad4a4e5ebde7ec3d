"""Atomic file writes: a crash or a full disk never leaves a half-written file under the final name."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A path that does not exist yet, in a private folder beside ``path`` (its name ends in ``suffix``),
    for the block to write; synced to disk and renamed over ``path`` when the block succeeds, deleted
    when it fails."""
    folder = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    temporary = folder / f"{path.stem}{suffix}"
    try:
        yield temporary
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@contextlib.contextmanager
def atomic_folder(path: Path) -> Iterator[Path]:
    """A folder path that does not exist yet, in a private folder beside ``path``, for the block to create and fill;
    its files synced to disk and the folder renamed to ``path`` when the block succeeds (an existing ``path`` is moved
    aside first and deleted after, or put back if the rename fails), deleted when the block fails."""
    private = Path(tempfile.mkdtemp(dir=path.parent, prefix=f".{path.name}."))
    temporary, aside = private / path.name, private / f"{path.name}.replaced"
    try:
        yield temporary
        for written in (file for file in temporary.rglob("*") if file.is_file()):
            with open(written, "rb+") as handle:
                os.fsync(handle.fileno())
        if path.exists():
            os.replace(path, aside)
        try:
            os.replace(temporary, path)
        except OSError:
            if aside.exists():
                os.replace(aside, path)
            raise
    finally:
        shutil.rmtree(private, ignore_errors=True)


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write ``data`` (text as UTF-8) to ``path`` through `atomic_path`."""
    payload = data.encode("utf-8") if isinstance(data, str) else data
    with atomic_path(path) as temporary:
        temporary.write_bytes(payload)


def check_writable(path: Path, what: str = "--out") -> None:
    """Raise ValueError unless ``path`` (a file or folder, which may not exist yet) can be written: its nearest
    existing ancestor must be a folder this process may write in. ``what`` names the option to change."""
    folder = next(
        parent for parent in (path.absolute().parent, *path.absolute().parents) if parent.exists()
    )
    if not folder.is_dir():
        raise ValueError(f"{path}: {folder} is a file, not a folder; choose another {what}.")
    if not os.access(folder, os.W_OK):
        raise ValueError(
            f"{path}: {folder} cannot be written (a read-only file system, or no permission); "
            f"choose another {what}."
        )
