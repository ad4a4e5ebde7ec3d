"""Arrays in `.npy` files and `.npz` archives, a block of rows at a time: no whole array is ever in memory.

`NpyFile` writes rows at any positions of a new `.npy` file, leaving out holes at the end; `array_shape` and
`array_blocks` read an array of a `.npy` file (memory-mapped) or of an `.npz` archive (streamed from
the zip member, compressed or not).
"""

from __future__ import annotations

import os
import struct
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import numpy as np

HEADER_BYTES = 128  # a fixed .npy (version 1.0) header, padded: rows start 64-byte aligned
COMPACT_ROWS = 1024
# a .npy file (key None) or an .npz archive and the key of one of its arrays
ArraySource = tuple[Path, str | None]


class NpyFile:
    """A new `.npy` file of ``rows`` rows of ``row_shape`` and ``dtype``, its rows written at any positions, in any
    order (`write`); `close` leaves out the rows that were never to be filled, writes the header and syncs the file.

    Rows go to the file with ``os.pwrite``, not through a memory map, so the writing process holds none of them.
    """

    def __init__(
        self, path: Path, rows: int, row_shape: tuple[int, ...], dtype: np.dtype | type
    ) -> None:
        self.path = path
        self.rows = rows
        self.row_shape = tuple(row_shape)
        self.dtype = np.dtype(dtype)
        self.row_bytes = int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        os.ftruncate(self._fd, HEADER_BYTES + rows * self.row_bytes)

    def write(self, positions: np.ndarray, rows: np.ndarray) -> None:
        """Writes ``rows[i]`` at row ``positions[i]``: one system call for each run of consecutive positions."""
        if (
            rows.shape[1:] != self.row_shape
            or rows.dtype != self.dtype
            or len(rows) != len(positions)
        ):
            raise ValueError(
                f"{self.path.name}: rows must be {self.dtype} of shape (n, {self.row_shape}), one per "
                f"position; received {rows.dtype} {rows.shape} for {len(positions)} positions."
            )
        if not len(positions):
            return
        breaks = np.flatnonzero(np.diff(positions) != 1) + 1
        for run, part in zip(np.split(positions, breaks), np.split(rows, breaks)):
            self._write_at(np.ascontiguousarray(part).data.cast("B"), self._offset(int(run[0])))

    def close(self, holes: np.ndarray | None = None) -> int:
        """Leaves out the rows at positions `holes` (moving the later rows up), writes the header, syncs and closes
        the file; returns the number of rows it holds."""
        kept = self.rows if holes is None or not len(holes) else self._compact(holes)
        os.ftruncate(self._fd, self._offset(kept))
        self._write_at(memoryview(npy_header((kept, *self.row_shape), self.dtype)), 0)
        os.fsync(self._fd)
        os.close(self._fd)
        return kept

    def _compact(self, holes: np.ndarray) -> int:
        """Moves the rows that are not holes up, in order, a block at a time; returns how many there are."""
        keep = np.ones(self.rows, bool)
        keep[holes] = False
        kept = 0
        for start in range(0, self.rows, COMPACT_ROWS):
            mask = keep[start : start + COMPACT_ROWS]
            data = os.pread(self._fd, len(mask) * self.row_bytes, self._offset(start))
            if len(data) != len(mask) * self.row_bytes:
                raise OSError(f"{self.path}: a short read at row {start} while leaving out holes.")
            block = np.frombuffer(data, np.uint8).reshape(len(mask), self.row_bytes)[mask]
            # at or before the rows just read
            self._write_at(np.ascontiguousarray(block).data.cast("B"), self._offset(kept))
            kept += len(block)
        return kept

    def _offset(self, row: int) -> int:
        return HEADER_BYTES + row * self.row_bytes

    def _write_at(self, data: memoryview, offset: int) -> None:
        while data:
            written = os.pwrite(self._fd, data, offset)
            data, offset = data[written:], offset + written


def npy_header(shape: tuple[int, ...], dtype: np.dtype) -> bytes:
    """A `.npy` version 1.0 header of exactly `HEADER_BYTES` bytes for a C-ordered array."""
    text = repr(
        {"descr": np.lib.format.dtype_to_descr(dtype), "fortran_order": False, "shape": shape}
    )
    body = text.ljust(HEADER_BYTES - len(np.lib.format.MAGIC_PREFIX) - 4 - 1) + "\n"
    return (
        np.lib.format.MAGIC_PREFIX
        + bytes([1, 0])
        + struct.pack("<H", len(body))
        + body.encode("latin1")
    )


def save_npy(path: Path, array: np.ndarray) -> None:
    """Writes a small array to a new `.npy` file, synced to disk."""
    file = NpyFile(path, len(array), array.shape[1:], array.dtype)
    file.write(np.arange(len(array)), array)
    file.close()


def npz_keys(path: Path) -> list[str]:
    """The array names of an `.npz` archive; ValueError naming the file when it is not one."""
    try:
        with zipfile.ZipFile(path) as archive:
            return [name[: -len(".npy")] for name in archive.namelist() if name.endswith(".npy")]
    except (OSError, zipfile.BadZipFile) as err:
        raise ValueError(
            f"{path} is not an .npz file (a zip of .npy arrays, as numpy.savez writes): {err}"
        ) from err


def array_shape(source: ArraySource) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of an array, read from its header only."""
    path, key = source
    if key is None:
        array = _memmap(path)
        return array.shape, array.dtype
    with _npz_member(path, key) as member:
        shape, dtype, _ = _member_header(path, key, member)
    return shape, dtype


def read_array(source: ArraySource) -> np.ndarray:
    """A whole (small) array: labels, class names."""
    path, key = source
    try:
        if key is None:
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as archive:
            return archive[key]
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(
            f"{source_name(source)} could not be read as a numpy array: {err}"
        ) from err


def array_blocks(source: ArraySource, rows: int) -> Iterator[np.ndarray]:
    """Consecutive blocks of at most ``rows`` rows of an array, in order (the last may be shorter)."""
    path, key = source
    if key is None:
        array = _memmap(path)
        for start in range(0, len(array), rows):
            yield np.asarray(array[start : start + rows])
        return
    with _npz_member(path, key) as member:
        shape, dtype, fortran = _member_header(path, key, member)
        if fortran:
            raise ValueError(
                f"{source_name(source)} is stored in Fortran order, which cannot be read a block at a time; "
                "save it C-ordered (numpy.ascontiguousarray) and try again."
            )
        row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
        for start in range(0, shape[0], rows):
            count = min(rows, shape[0] - start)
            data = member.read(count * row_bytes)
            if len(data) != count * row_bytes:
                raise ValueError(
                    f"{source_name(source)} is truncated: it ends before row {start + len(data) // max(1, row_bytes)} "
                    f"of {shape[0]}."
                )
            yield np.frombuffer(data, dtype).reshape(count, *shape[1:])


def _memmap(path: Path) -> np.ndarray:
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise ValueError(f"{path} could not be read as a .npy array: {err}") from err


def _npz_member(path: Path, key: str) -> IO[bytes]:
    if key not in npz_keys(path):
        raise ValueError(
            f"{path} has no {key!r} array; it holds {', '.join(npz_keys(path)) or 'no arrays'}."
        )
    archive = zipfile.ZipFile(path)
    member = archive.open(f"{key}.npy")
    archive.close()  # the member keeps the file open until it is closed
    return member


def _member_header(
    path: Path, key: str, member: IO[bytes]
) -> tuple[tuple[int, ...], np.dtype, bool]:
    """(shape, dtype, fortran order) from the `.npy` header at the start of an open `.npz` member."""
    try:
        version = np.lib.format.read_magic(member)
        read = {
            (1, 0): np.lib.format.read_array_header_1_0,
            (2, 0): np.lib.format.read_array_header_2_0,
        }[version]
        shape, fortran, dtype = read(member)
    except (KeyError, ValueError) as err:
        raise ValueError(
            f"{path}: the {key!r} array has an unreadable .npy header (numpy.save writes version 1.0 "
            f"or 2.0): {err}"
        ) from err
    if dtype.hasobject:
        raise ValueError(
            f"{path}: the {key!r} array holds Python objects; save numbers (uint8, float, int) instead."
        )
    return shape, dtype, fortran


def source_name(source: ArraySource) -> str:
    """How errors name an array: the file, and the key within an .npz."""
    path, key = source
    return str(path) if key is None else f"{path} [{key!r}]"
