"""Import bars from CSV and Parquet: whole files, in-memory bytes, or a chunked upload.

Every path ends in the same place: columns are matched by name (see
:mod:`stratopt.data.columns`), timestamps normalised to UTC epoch nanoseconds (see
:mod:`stratopt.data.tables`), newest-first data flipped, and the result validated, so an
imported dataset is always one the engine can run on.

Accepted timestamps: ISO 8601 text (naive = UTC, or with ``Z``/offsets), other date text
pandas understands (month-first when ambiguous, so prefer ISO), epoch seconds,
milliseconds, microseconds or nanoseconds (told apart by magnitude), ``YYYYMMDD`` integers,
separate date and time columns, Parquet/pandas datetime columns or a DatetimeIndex.
"""

from __future__ import annotations

import contextlib
import ctypes
import gzip
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from numpy.typing import ArrayLike, NDArray

from stratopt.data.bars import Bars
from stratopt.data.columns import POSITIONAL, resolve_columns
from stratopt.data.csv_reader import CsvLayout, read_block, read_csv_bytes, split_header
from stratopt.data.errors import (
    DataError,
    ImportFormatError,
    UploadBudgetError,
    UploadTooLargeError,
)
from stratopt.data.tables import RawColumns, TimestampDecoder, ascending, decode_frame

Source = str | os.PathLike[str] | bytes | bytearray | memoryview
FileFormat = Literal["csv", "parquet"]
UploadFormat = Literal["rows", "csv", "parquet"]

PARQUET_MAGIC = b"PAR1"
GZIP_MAGIC = b"\x1f\x8b"
CSV_SUFFIXES = {".csv", ".txt", ".tsv"}
PARQUET_SUFFIXES = {".parquet", ".pq"}

#: Default upload limits; the server passes its configured values.
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
DEFAULT_MAX_ROWS = 10_000_000
#: CSV uploads are parsed in blocks of about this many bytes of whole lines, so a bad
#: header or value fails the upload early instead of after the last chunk.
CSV_BLOCK_BYTES = 4 * 1024 * 1024
#: Memory per bar in rows mode: ts + five float columns.
BYTES_PER_ROW = 48


class MemoryBudget:
    """Bytes that all uploads in progress may hold together (thread-safe).

    Each upload reserves what it receives (raw bytes for CSV and Parquet, 48 bytes a bar for
    rows) and gives it all back when it finishes or fails; a chunk that does not fit fails
    its upload with UploadBudgetError instead of waiting, so uploads holding part of the
    budget can never wait on each other.
    """

    def __init__(self, limit_bytes: int) -> None:
        if limit_bytes < 1:
            raise ValueError("an upload memory budget needs at least one byte")
        self.limit = limit_bytes
        self._used = 0
        self._lock = threading.Lock()

    @property
    def used(self) -> int:
        return self._used

    def try_reserve(self, size: int) -> bool:
        with self._lock:
            if self._used + size > self.limit:
                return False
            self._used += size
            return True

    def release(self, size: int) -> None:
        with self._lock:
            self._used = max(0, self._used - size)


def return_freed_memory() -> None:
    """Ask glibc to hand freed heap pages back to the system. A big upload is parsed in
    worker threads, each with its own malloc arena; without this the freed megabytes stay
    in the process (issue 14 measured 1.9 GB held after four uploads). A no-op elsewhere."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _to_bars(arrays: RawColumns) -> Bars:
    arrays, rows = ascending(arrays)
    return Bars.from_arrays(*arrays.columns(), rows=rows)


def _read_source(source: Source) -> bytes | bytearray | memoryview:
    if isinstance(source, bytes | bytearray | memoryview):
        return source
    path = Path(source)
    data = path.read_bytes()
    return gzip.decompress(data) if path.suffix == ".gz" else data


def _parquet_arrays(data: bytes | bytearray | memoryview) -> RawColumns:
    try:
        frame = pq.read_table(pa.BufferReader(pa.py_buffer(data))).to_pandas(
            date_as_object=False, split_blocks=True, self_destruct=True
        )
    except (pa.ArrowException, OSError) as exc:
        raise ImportFormatError(f"not a readable Parquet file: {exc}") from exc
    index_has_time = isinstance(frame.index, pd.DatetimeIndex)
    frame = frame.rename(columns=str)
    columns = resolve_columns(list(frame.columns), index_has_time=index_has_time)
    return decode_frame(frame, columns, TimestampDecoder())


def import_csv(source: Source) -> Bars:
    """Validated bars from a CSV path (``.gz`` is decompressed) or CSV bytes.

    The separator (comma, semicolon, tab, ``|``) is detected from the first line; a first
    line of numbers means there is no header and columns are ts, open, high, low, close,
    volume in that order. Fields containing line breaks are not supported.
    """
    return _to_bars(read_csv_bytes(_read_source(source)))


def import_parquet(source: Source) -> Bars:
    """Validated bars from a Parquet path or Parquet bytes."""
    return _to_bars(_parquet_arrays(_read_source(source)))


def detect_format(source: Source) -> FileFormat:
    """``parquet`` or ``csv`` from the file name, or from the content for bytes."""
    if isinstance(source, bytes | bytearray | memoryview):
        return "parquet" if bytes(source[:4]) == PARQUET_MAGIC else "csv"
    suffixes = [s.lower() for s in Path(source).suffixes if s.lower() != ".gz"]
    suffix = suffixes[-1] if suffixes else ""
    if suffix in PARQUET_SUFFIXES:
        return "parquet"
    if suffix in CSV_SUFFIXES:
        return "csv"
    raise ImportFormatError(
        f"cannot tell the format of {os.fspath(source)!r} from its name; "
        "use .csv, .tsv, .txt, .parquet or .pq (optionally .gz for text)"
    )


def import_bars(source: Source, format: FileFormat | None = None) -> Bars:
    """Validated bars from a file or bytes, detecting the format when not given."""
    chosen = format or detect_format(source)
    return import_parquet(source) if chosen == "parquet" else import_csv(source)


def _rows_to_arrays(rows: Sequence[Sequence[float]] | NDArray[np.generic]) -> RawColumns:
    """Row tuples or a (k, 6) array -> columns, keeping integer timestamps exact."""
    if isinstance(rows, np.ndarray):
        if rows.dtype.names is not None:
            rec: Any = rows
            return _columns_to_arrays([rec[name] for name in POSITIONAL])
        if rows.ndim != 2 or rows.shape[1] != len(POSITIONAL):
            raise ImportFormatError(f"row arrays must have shape (n, 6), got {rows.shape}")
        ts = rows[:, 0] if rows.dtype.kind in "iu" else np.rint(rows[:, 0])
        return _columns_to_arrays([ts, *(rows[:, i] for i in range(1, 6))])
    if not len(rows):
        return RawColumns.concat([])
    try:
        columns = list(zip(*rows, strict=True))
        if len(columns) != len(POSITIONAL):
            raise ValueError
        ts = np.array(columns[0], dtype=np.int64)
        values = [np.array(col, dtype=np.float64) for col in columns[1:]]
    except (ValueError, TypeError, OverflowError) as exc:
        raise ImportFormatError(
            "every row must be 6 numbers: (ts epoch ns as int, open, high, low, close, volume)"
        ) from exc
    return _columns_to_arrays([ts, *values])


def _columns_to_arrays(cols: Sequence[Any]) -> RawColumns:
    ts, o, h, lo, c, v = (np.asarray(x) for x in cols)
    f = np.float64
    return RawColumns(
        ts.astype(np.int64), o.astype(f), h.astype(f), lo.astype(f), c.astype(f), v.astype(f)
    )


class BarStreamImporter:
    """Builds bars from a client-streaming upload, within a byte and row budget.

    Declare the format up front: ``"rows"`` (feed row tuples/arrays or column arrays),
    ``"csv"`` or ``"parquet"`` (feed raw byte chunks split anywhere, even inside a line or
    a UTF-8 character). CSV is parsed in blocks as whole lines arrive, so memory holds the
    parsed columns plus at most one block of text; Parquet needs its footer, so its bytes
    are buffered (bounded by ``max_bytes``) and parsed by :meth:`finish`. Rows mode counts
    48 bytes per bar against ``max_bytes``. After :meth:`finish` or any error the importer
    refuses more input.
    """

    def __init__(
        self,
        format: UploadFormat,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_rows: int = DEFAULT_MAX_ROWS,
        budget: MemoryBudget | None = None,
    ) -> None:
        if format not in get_args(UploadFormat):
            raise ValueError(f"unknown upload format {format!r}; use rows, csv or parquet")
        self.format: UploadFormat = format
        self.max_bytes = max_bytes
        self.max_rows = max_rows
        self.bytes_received = 0
        self.rows_received = 0
        self._parts: list[RawColumns] = []
        self._pending = bytearray()
        self._layout: CsvLayout | None = None
        self._decoder = TimestampDecoder()
        self._closed = False
        self._budget = budget
        self._reserved = 0

    @property
    def buffered_bytes(self) -> int:
        """Raw bytes held but not parsed yet (a partial CSV block, or a whole Parquet file)."""
        return len(self._pending)

    def feed_bytes(self, chunk: bytes | bytearray | memoryview) -> None:
        """Add the next chunk of a CSV or Parquet upload."""
        self._expect("csv", "parquet")
        self._guarded(lambda: self._take_bytes(chunk))

    def feed_rows(self, rows: Sequence[Sequence[float]] | NDArray[np.generic]) -> None:
        """Add bars as (ts_ns, open, high, low, close, volume) tuples or a (k, 6) array.

        Integer timestamps stay exact; a float (k, 6) array rounds ts to float64 precision
        (about 256 ns today), so prefer :meth:`feed_arrays` for sub-microsecond data.
        """
        self._expect("rows")
        self._guarded(lambda: self._add_rows(_rows_to_arrays(rows)))

    def feed_arrays(
        self,
        ts: ArrayLike,
        open: ArrayLike,
        high: ArrayLike,
        low: ArrayLike,
        close: ArrayLike,
        volume: ArrayLike,
    ) -> None:
        """Add a batch of bars given as columns (the cheapest form for a gRPC batch)."""
        self._expect("rows")

        def add() -> None:
            prices = [np.asarray(c, dtype=np.float64).ravel() for c in (open, high, low, close)]
            volumes = np.asarray(volume, dtype=np.float64).ravel()
            arrays = _columns_to_arrays([np.asarray(ts, dtype=np.int64).ravel(), *prices, volumes])
            if len({c.size for c in arrays.columns()}) != 1:
                raise ImportFormatError("ts, open, high, low, close and volume differ in length")
            self._add_rows(arrays)

        self._guarded(add)

    def finish(self) -> Bars:
        """Parse what is left and return the validated bars."""
        self._expect(*get_args(UploadFormat))
        try:
            if self.format == "parquet":
                self._add_parsed(_parquet_arrays(self._pending))
            elif self.format == "csv":
                self._flush_csv(final=True)
            return _to_bars(RawColumns.concat(self._parts))
        finally:
            self.close()

    def close(self) -> None:
        """Drop what the upload holds and give its memory budget back (idempotent); for an
        upload abandoned midway, e.g. by a client that went away."""
        self._closed = True
        self._parts, self._pending = [], bytearray()
        if self._budget is not None and self._reserved:
            self._budget.release(self._reserved)
        self._reserved = 0

    # -- internals -------------------------------------------------------------------

    def _expect(self, *formats: str) -> None:
        if self._closed:
            raise RuntimeError("this upload is already finished or failed; start a new one")
        if self.format not in formats:
            raise ImportFormatError(
                f"this upload was declared as {self.format!r}; it cannot take this kind of data"
            )

    def _guarded(self, action: Callable[[], None]) -> None:
        """Run ``action``; after a failure the upload is dead and its memory released."""
        try:
            action()
        except (DataError, ValueError):
            self.close()
            raise

    def _count_bytes(self, size: int) -> None:
        self.bytes_received += size
        if self.bytes_received > self.max_bytes:
            raise UploadTooLargeError(
                f"upload is larger than the limit of {self.max_bytes} bytes; "
                "send fewer bars or resample them first"
            )
        if self._budget is not None:
            if not self._budget.try_reserve(size):
                raise UploadBudgetError(
                    "the server is busy with other uploads (their memory budget is in use); "
                    "retry shortly"
                )
            self._reserved += size

    def _add_parsed(self, arrays: RawColumns) -> None:
        self.rows_received += arrays.size
        if self.rows_received > self.max_rows:
            raise UploadTooLargeError(
                f"upload has more than the limit of {self.max_rows} bars; "
                "send fewer bars or resample them first"
            )
        if arrays.size:
            self._parts.append(arrays)

    def _add_rows(self, arrays: RawColumns) -> None:
        self._count_bytes(arrays.size * BYTES_PER_ROW)
        self._add_parsed(arrays)

    def _take_bytes(self, chunk: bytes | bytearray | memoryview) -> None:
        self._count_bytes(len(chunk))
        before = len(self._pending)
        self._pending += chunk
        magic = len(PARQUET_MAGIC)
        if (
            self.format == "parquet"
            and before < magic <= len(self._pending)
            and bytes(self._pending[:magic]) != PARQUET_MAGIC
        ):
            raise ImportFormatError("this is not a Parquet file (it does not start with PAR1)")
        if self.format == "csv":
            self._flush_csv(final=False)

    def _flush_csv(self, *, final: bool) -> None:
        if self._layout is None and not self._read_header(final=final):
            return
        assert self._layout is not None
        if final:
            cut = len(self._pending)
        elif len(self._pending) >= CSV_BLOCK_BYTES:
            cut = self._pending.rfind(b"\n") + 1
        else:
            return
        if cut:
            block = bytes(self._pending[:cut])
            del self._pending[:cut]
            first_row = self.rows_received + 1
            self._add_parsed(read_block(block, self._layout, self._decoder, first_row=first_row))

    def _read_header(self, *, final: bool) -> bool:
        if final and not self._pending.strip():
            raise ImportFormatError("the CSV upload is empty")
        found = split_header(self._pending + b"\n" if final else self._pending)
        if found is None:
            return False
        self._layout, start = found
        del self._pending[:start]
        return True
