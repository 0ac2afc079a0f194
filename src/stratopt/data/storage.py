"""On-disk bar datasets: one self-describing binary file per dataset, memory-mapped on load.

File layout (``<root>/<dataset_id>.bars``, all little-endian)::

    b"STRATOPTBARS"            12-byte magic
    uint32 header_length       length of the JSON header that follows
    JSON header (UTF-8)        rows, columns, dtypes, data_offset, first/last ts,
                               timeframe, sha256 of the data; space-padded so the data
                               starts on a 64-byte boundary
    ts      int64[rows]        each column stored contiguously, in this order
    open, high, low, close, volume  float64[rows]

Why one file and not one ``.npy`` per column: a save is a single temp-file write plus one
``os.replace``, so replacing a dataset is atomic even while readers have the old version
mapped (they keep the old inode); a folder of columns cannot be swapped atomically. Why
columns and not a structured array: each column comes back as a C-contiguous view, which
is what the numba engine wants, with no copy. Loading is a header read plus one ``mmap``:
well under a millisecond for 1,000,000 bars (see ``bench/bench_data.py``); pages are read
lazily by the OS and shared between processes.
"""

from __future__ import annotations

import hashlib
import json
import mmap
import os
import re
import struct
import time
import uuid
from dataclasses import dataclass
from io import BufferedReader
from pathlib import Path
from typing import Any

import numpy as np

from stratopt.data.bars import Bars
from stratopt.data.errors import CorruptDatasetError, DatasetNotFoundError, InvalidDatasetIdError
from stratopt.data.validate import validate_bars

MAGIC = b"STRATOPTBARS"
PREFIX = struct.Struct("<12sI")
FORMAT_VERSION = 1
ALIGN = 64
SUFFIX = ".bars"
COLUMNS = ("ts", "open", "high", "low", "close", "volume")
DTYPES = ("<i8", "<f8", "<f8", "<f8", "<f8", "<f8")
BYTES_PER_ROW = 8 * len(COLUMNS)
#: Letters, digits, ``.``, ``_`` and ``-``; must start with a letter or digit (so no ``.``,
#: ``..`` or hidden files) and fit comfortably in a file name.
DATASET_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True, slots=True)
class StoredInfo:
    """What the store knows about a saved dataset without reading its bars."""

    dataset_id: str
    rows: int
    first_ts: int
    last_ts: int
    timeframe_seconds: int
    byte_size: int
    sha256: str


def check_dataset_id(dataset_id: str) -> str:
    """Return ``dataset_id`` if it is safe as a file name, else raise InvalidDatasetIdError."""
    if not isinstance(dataset_id, str) or not DATASET_ID.fullmatch(dataset_id):
        raise InvalidDatasetIdError(
            f"invalid dataset id {dataset_id!r}: use 1-128 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return dataset_id


def _data_checksum(columns: list[np.ndarray[Any, Any]]) -> str:
    digest = hashlib.sha256()
    for column in columns:
        digest.update(column.data.cast("B"))
    return digest.hexdigest()


def _encode_header(bars: Bars, columns: list[np.ndarray[Any, Any]]) -> tuple[bytes, dict[str, Any]]:
    header: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "rows": len(bars),
        "columns": list(COLUMNS),
        "dtypes": list(DTYPES),
        "first_ts": bars.first_ts,
        "last_ts": bars.last_ts,
        "timeframe_seconds": bars.timeframe_seconds,
        "sha256": _data_checksum(columns),
        "data_offset": 0,
    }
    # The offset is part of the header, so grow it until the header fits in front of it.
    offset = ALIGN
    while True:
        header["data_offset"] = offset
        body = json.dumps(header, separators=(",", ":")).encode()
        if PREFIX.size + len(body) <= offset:
            body = body.ljust(offset - PREFIX.size, b" ")
            return PREFIX.pack(MAGIC, len(body)) + body, header
        offset += ALIGN


def _read_header(file: BufferedReader, path: Path) -> dict[str, Any]:
    prefix = file.read(PREFIX.size)
    if len(prefix) != PREFIX.size:
        raise CorruptDatasetError(f"{path.name}: file is truncated")
    magic, length = PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise CorruptDatasetError(f"{path.name}: not a stratopt bars file")
    try:
        header: dict[str, Any] = json.loads(file.read(length))
    except ValueError as exc:
        raise CorruptDatasetError(f"{path.name}: unreadable header ({exc})") from exc
    if header.get("format_version") != FORMAT_VERSION or header.get("dtypes") != list(DTYPES):
        raise CorruptDatasetError(f"{path.name}: unsupported format {header.get('format_version')}")
    expected = header["data_offset"] + header["rows"] * BYTES_PER_ROW
    size = os.fstat(file.fileno()).st_size
    if size != expected:
        raise CorruptDatasetError(f"{path.name}: {size} bytes on disk, header says {expected}")
    return header


def _fsync_dir(path: Path) -> None:
    """Make a rename durable; not possible (nor needed) on every platform."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


class DatasetStore:
    """Saves, loads and deletes bar datasets under ``root`` (created if missing).

    Safe for concurrent readers and writers in one or several processes on one machine:
    writes go to a unique temp file renamed into place; the last save of an id wins.
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, dataset_id: str) -> Path:
        """The file that holds ``dataset_id`` (validated, always inside ``root``)."""
        return self.root / f"{check_dataset_id(dataset_id)}{SUFFIX}"

    def save(self, dataset_id: str, bars: Bars) -> StoredInfo:
        """Validate and store ``bars`` atomically, replacing any previous version."""
        target = self.path(dataset_id)
        validate_bars(bars)
        columns = [
            np.ascontiguousarray(col, dtype=dt)
            for col, dt in zip(bars.columns(), DTYPES, strict=True)
        ]
        head, header = _encode_header(bars, columns)
        temp = self.root / f".{dataset_id}.{uuid.uuid4().hex}.tmp"
        try:
            with temp.open("wb") as file:
                file.write(head)
                for column in columns:
                    file.write(column.data.cast("B"))
                file.flush()
                os.fsync(file.fileno())
            os.replace(temp, target)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        _fsync_dir(self.root)
        return self._info(dataset_id, header, target.stat().st_size)

    def load(self, dataset_id: str, *, mmap: bool = True, verify: bool = False) -> Bars:
        """The stored bars; read-only memory-mapped views unless ``mmap=False``.

        ``verify`` re-computes the checksum (reads every byte, ~50 ms per million bars).
        """
        path = self.path(dataset_id)
        try:
            file = path.open("rb")
        except FileNotFoundError:
            raise DatasetNotFoundError(f"dataset {dataset_id!r} does not exist") from None
        with file:
            header = _read_header(file, path)
            buffer = self._map(file, mmap)
        rows, start = header["rows"], header["data_offset"]
        columns = [
            np.frombuffer(buffer, dtype=dtype, count=rows, offset=start + i * rows * 8)
            for i, dtype in enumerate(DTYPES)
        ]
        if verify and _data_checksum(columns) != header["sha256"]:
            raise CorruptDatasetError(f"{path.name}: checksum mismatch")
        return Bars(*columns)

    @staticmethod
    def _map(file: BufferedReader, use_mmap: bool) -> mmap.mmap | bytearray:
        size = os.fstat(file.fileno()).st_size
        if use_mmap:
            if size == 0:
                return bytearray()
            return mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ)
        file.seek(0)
        buffer = bytearray(size)
        file.readinto(buffer)
        return buffer

    def info(self, dataset_id: str) -> StoredInfo:
        """Metadata from the file header only (cheap)."""
        path = self.path(dataset_id)
        try:
            with path.open("rb") as file:
                header = _read_header(file, path)
                return self._info(dataset_id, header, os.fstat(file.fileno()).st_size)
        except FileNotFoundError:
            raise DatasetNotFoundError(f"dataset {dataset_id!r} does not exist") from None

    def exists(self, dataset_id: str) -> bool:
        return self.path(dataset_id).is_file()

    def delete(self, dataset_id: str) -> None:
        """Remove a dataset; readers that have it mapped keep working until they drop it."""
        try:
            self.path(dataset_id).unlink()
        except FileNotFoundError:
            raise DatasetNotFoundError(f"dataset {dataset_id!r} does not exist") from None

    def list_ids(self) -> list[str]:
        """Ids of all stored datasets, sorted."""
        return sorted(
            p.name.removesuffix(SUFFIX)
            for p in self.root.glob(f"*{SUFFIX}")
            if DATASET_ID.fullmatch(p.name.removesuffix(SUFFIX))
        )

    def remove_stale_temp_files(self, max_age_seconds: float = 3600.0) -> int:
        """Delete temp files left by saves that crashed; returns how many were removed.

        Only old files are touched, so a save in progress in another process survives.
        """
        cutoff = time.time() - max_age_seconds
        removed = 0
        for temp in self.root.glob(".*.tmp"):
            try:
                if temp.stat().st_mtime < cutoff:
                    temp.unlink()
                    removed += 1
            except FileNotFoundError:
                continue
        return removed

    @staticmethod
    def _info(dataset_id: str, header: dict[str, Any], byte_size: int) -> StoredInfo:
        fields = {k: header[k] for k in ("rows", "first_ts", "last_ts", "timeframe_seconds")}
        return StoredInfo(
            dataset_id=dataset_id, byte_size=byte_size, sha256=header["sha256"], **fields
        )
