"""CSV text to bar arrays, one block of whole lines at a time.

Parsing goes through pyarrow's multi-threaded CSV reader with the price columns typed as
float64 (fast path). If that fails (a stray word in a price column, a row with the wrong
number of fields) the block is read again as text, single-threaded, so every bad value and
malformed row can be reported with its row number instead of pyarrow's bare message.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.csv as pacsv

from stratopt.data.columns import POSITIONAL, ColumnMap, resolve_columns
from stratopt.data.errors import BarValidationError, ImportFormatError, Problem
from stratopt.data.tables import RawColumns, TimestampDecoder, decode_frame

DELIMITERS = (",", ";", "\t", "|")
BOM = b"\xef\xbb\xbf"
Buffer = bytes | bytearray | memoryview


@dataclass(frozen=True, slots=True)
class CsvLayout:
    """What the first line told us: separator, column names and their meaning."""

    delimiter: str
    names: tuple[str, ...]
    has_header: bool
    columns: ColumnMap


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _unique(names: list[str]) -> tuple[str, ...]:
    """pyarrow needs distinct names; extra unrelated columns may repeat (e.g. two blanks)."""
    seen: dict[str, int] = {}
    result = []
    for name in names:
        seen[name] = seen.get(name, 0) + 1
        result.append(name if seen[name] == 1 else f"{name}__{seen[name]}")
    return tuple(result)


def sniff_layout(first_line: bytes) -> CsvLayout:
    """Work out separator, header and column mapping from the first line of a file.

    A first line whose fields after the first are all numbers is data, not a header (for
    example Binance kline dumps); such files are read positionally as
    ts, open, high, low, close[, volume, ...].
    """
    try:
        text = first_line.removeprefix(BOM).decode("utf-8").strip("\r\n")
    except UnicodeDecodeError as exc:
        raise ImportFormatError(f"the CSV is not UTF-8 text ({exc})") from exc
    delimiter = max(DELIMITERS, key=text.count)
    if text.count(delimiter) == 0:
        raise ImportFormatError(
            "no column separator (comma, semicolon, tab or |) found in the first line: "
            f"{text[:200]!r}"
        )
    fields = next(csv.reader([text], delimiter=delimiter))
    if len(fields) >= 5 and all(_is_number(f) for f in fields[1:]):
        names = [*POSITIONAL, *(f"extra_{i}" for i in range(len(fields) - len(POSITIONAL)))]
        names = names[: len(fields)]
        return CsvLayout(delimiter, tuple(names), False, resolve_columns(names))
    names = [field.strip() for field in fields]
    return CsvLayout(delimiter, _unique(names), True, resolve_columns(names))


def _arrow_read(data: pa.Buffer, layout: CsvLayout, *, as_text: bool) -> pa.Table:
    wanted = layout.columns.source_columns()
    # ColumnMap holds the header's original names; pyarrow sees the de-duplicated ones,
    # which are identical for every column the map can point at.
    numeric = [c for c in wanted if c not in (layout.columns.ts, layout.columns.time_of_day)]
    types = dict.fromkeys(wanted, pa.string()) if as_text else dict.fromkeys(numeric, pa.float64())
    invalid: list[Problem] = []

    def on_invalid_row(row: pacsv.InvalidRow) -> str:
        where = None if row.number is None else int(row.number)
        message = f"expected {row.expected_columns} fields, found {row.actual_columns}: "
        invalid.append(Problem(where, None, "row", message + repr(row.text[:200])))
        return "skip"

    table = pacsv.read_csv(
        pa.BufferReader(data),
        read_options=pacsv.ReadOptions(column_names=list(layout.names), use_threads=not as_text),
        parse_options=pacsv.ParseOptions(
            delimiter=layout.delimiter, invalid_row_handler=on_invalid_row if as_text else None
        ),
        convert_options=pacsv.ConvertOptions(
            column_types=types, include_columns=wanted, strings_can_be_null=True
        ),
    )
    if invalid:
        raise BarValidationError(invalid, len(invalid))
    return table


def _offset_rows(error: BarValidationError, first_row: int) -> BarValidationError:
    problems = [
        Problem(None if p.row is None else p.row + first_row - 1, p.ts, p.field, p.message)
        for p in error.problems
    ]
    return BarValidationError(problems, error.total)


def read_block(
    data: Buffer, layout: CsvLayout, decoder: TimestampDecoder, *, first_row: int = 1
) -> RawColumns:
    """Parse whole CSV lines (no header) into bar arrays.

    ``first_row`` is the data-row number of the block's first line within the upload.
    """
    buffer = pa.py_buffer(data)
    if _is_blank(buffer):
        return RawColumns.concat([])
    try:
        table = _arrow_read(buffer, layout, as_text=False)
    except pa.ArrowInvalid:
        try:
            table = _arrow_read(buffer, layout, as_text=True)
        except BarValidationError as exc:
            raise _offset_rows(exc, first_row) from None
        except pa.ArrowInvalid as exc:
            raise ImportFormatError(f"CSV parse error: {exc}") from exc
    frame = table.to_pandas(date_as_object=False, split_blocks=True, self_destruct=True)
    return decode_frame(frame, layout.columns, decoder, first_row=first_row)


def _is_blank(buffer: pa.Buffer) -> bool:
    """Only whitespace (checks a small prefix first so real blocks are not copied)."""
    return not bytes(buffer[:4096]).strip() and not bytes(buffer).strip()


#: A header longer than this is not a header; it is a file without line breaks.
MAX_HEADER_BYTES = 1 << 20


def split_header(data: Buffer) -> tuple[CsvLayout, int] | None:
    """The layout and the offset where data starts, or None if no full line arrived yet."""
    end = bytes(memoryview(data)[:MAX_HEADER_BYTES]).find(b"\n")
    if end < 0:
        if len(data) >= MAX_HEADER_BYTES:
            raise ImportFormatError(
                f"no line break in the first {MAX_HEADER_BYTES} bytes; is this really a CSV file?"
            )
        return None
    layout = sniff_layout(bytes(data[: end + 1]))
    start = end + 1 if layout.has_header else (3 if bytes(data[:3]) == BOM else 0)
    return layout, start


def read_csv_bytes(data: Buffer) -> RawColumns:
    """Parse a complete CSV document held in memory."""
    found = split_header(data)
    if found is None:
        if not bytes(data).strip():
            raise ImportFormatError("the CSV is empty")
        found = split_header(bytes(data) + b"\n")
        assert found is not None
    layout, start = found
    return read_block(memoryview(data)[start:], layout, TimestampDecoder())
