from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stratopt.data import (
    Bars,
    BarStreamImporter,
    BarValidationError,
    ImportFormatError,
    UploadTooLargeError,
    generate_bars,
    import_csv,
)
from stratopt.data import importers as importers_module

SMALL = generate_bars(40, start="2024-03-01", timeframe="1h", seed=3, price_decimals=2)
SMALL_CSV = SMALL.to_frame().to_csv().encode()
SMALL_PARQUET = SMALL.to_frame().to_parquet()


@pytest.fixture
def tiny_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Parse CSV uploads every ~64 bytes so block boundaries land everywhere."""
    monkeypatch.setattr(importers_module, "CSV_BLOCK_BYTES", 64)


def upload(data: bytes, cuts: list[int], fmt: str = "csv", **limits: int) -> Bars:
    importer = BarStreamImporter(fmt, **limits)  # type: ignore[arg-type]
    bounds = [0, *sorted(cuts), len(data)]
    for lo, hi in itertools.pairwise(bounds):
        importer.feed_bytes(data[lo:hi])
    return importer.finish()


@pytest.mark.usefixtures("tiny_blocks")
def test_csv_split_at_every_byte_position() -> None:
    bars = SMALL.slice(0, 8)
    data = bars.to_frame().to_csv().encode()
    for cut in range(len(data) + 1):
        assert upload(data, [cut]).equals(bars), cut
    crlf_without_final_newline = data.replace(b"\n", b"\r\n").rstrip()
    for cut in range(0, len(crlf_without_final_newline) + 1, 5):
        assert upload(crlf_without_final_newline, [cut]).equals(bars), cut


@pytest.mark.usefixtures("tiny_blocks")
@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, len(SMALL_CSV)), max_size=30))
def test_csv_split_at_random_positions(cuts: list[int]) -> None:
    assert upload(SMALL_CSV, cuts).equals(SMALL)


@pytest.mark.usefixtures("tiny_blocks")
def test_csv_split_inside_multibyte_characters() -> None:
    header = "timestamp,open,high,low,close,volume,remarque_été\n"
    data = header.encode() + b"".join(
        line + ",été\n".encode() for line in SMALL_CSV.splitlines()[1:]
    )
    for cut in range(0, len(data), 7):
        assert upload(data, [cut, cut + 1]).equals(SMALL)


@pytest.mark.usefixtures("tiny_blocks")
def test_headerless_epoch_ms_stream_keeps_one_unit_across_blocks() -> None:
    ms = SMALL.ts // 1_000_000
    lines = [
        f"{t},{o},{h},{lo},{c},{v}"
        for t, o, h, lo, c, v in zip(ms, *SMALL.columns()[1:], strict=True)
    ]
    data = ("\n".join(lines) + "\n").encode()
    assert upload(data, [5, 100, 333]).equals(SMALL)


@pytest.mark.usefixtures("tiny_blocks")
def test_stream_errors_report_rows_of_the_whole_upload() -> None:
    lines = SMALL_CSV.decode().splitlines()
    fields = lines[30].split(",")
    fields[4] = "oops"  # close of data row 30
    lines[30] = ",".join(fields)
    data = ("\n".join(lines) + "\n").encode()
    with pytest.raises(BarValidationError, match="row 30: close 'oops' is not a number"):
        upload(data, [])
    with pytest.raises(BarValidationError, match="row 30"):
        import_csv(data)


@pytest.mark.usefixtures("tiny_blocks")
def test_bad_header_fails_on_the_first_chunk() -> None:
    importer = BarStreamImporter("csv")
    with pytest.raises(ImportFormatError, match="missing column"):
        importer.feed_bytes(b"when,open,high,low\n1,2,3,4\n")
    with pytest.raises(RuntimeError, match="already finished or failed"):
        importer.feed_bytes(b"more")


def test_csv_memory_stays_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(importers_module, "CSV_BLOCK_BYTES", 4096)
    bars = generate_bars(3000, seed=5)
    data = bars.to_frame().to_csv().encode()
    importer = BarStreamImporter("csv")
    peak = 0
    for start in range(0, len(data), 1000):
        importer.feed_bytes(data[start : start + 1000])
        peak = max(peak, importer.buffered_bytes)
    assert peak < 4096 + 1000
    assert importer.finish().equals(bars)


def test_parquet_chunks() -> None:
    for cut in range(0, len(SMALL_PARQUET), 97):
        assert upload(SMALL_PARQUET, [cut, cut + 3], fmt="parquet").equals(SMALL)


def test_parquet_magic_checked_early() -> None:
    importer = BarStreamImporter("parquet")
    importer.feed_bytes(b"PA")
    with pytest.raises(ImportFormatError, match="not a Parquet file"):
        importer.feed_bytes(b"RX rest")


def test_byte_cap() -> None:
    importer = BarStreamImporter("csv", max_bytes=len(SMALL_CSV) - 1)
    with pytest.raises(UploadTooLargeError, match=f"limit of {len(SMALL_CSV) - 1} bytes"):
        for start in range(0, len(SMALL_CSV), 100):
            importer.feed_bytes(SMALL_CSV[start : start + 100])
    assert importer.buffered_bytes == 0  # memory released on failure
    assert upload(SMALL_CSV, [50], max_bytes=len(SMALL_CSV)).equals(SMALL)


@pytest.mark.usefixtures("tiny_blocks")
def test_row_cap_csv_and_parquet() -> None:
    with pytest.raises(UploadTooLargeError, match="limit of 39 bars"):
        upload(SMALL_CSV, [], max_rows=39)
    with pytest.raises(UploadTooLargeError, match="limit of 39 bars"):
        upload(SMALL_PARQUET, [], fmt="parquet", max_rows=39)
    assert len(upload(SMALL_CSV, [], max_rows=40)) == 40


def rows_of(bars: Bars) -> Iterator[tuple[int, float, float, float, float, float]]:
    ts, *rest = (col.tolist() for col in bars.columns())
    yield from zip(ts, *rest, strict=True)


def test_rows_mode_tuples_arrays_and_columns() -> None:
    rows = list(rows_of(SMALL))
    importer = BarStreamImporter("rows")
    importer.feed_rows(rows[:10])
    importer.feed_rows(np.array(rows[10:20], dtype=np.int64).astype(np.float64))  # float array
    structured = np.array(
        rows[20:30],
        dtype=[
            (n, "i8" if n == "ts" else "f8")
            for n in ("ts", "open", "high", "low", "close", "volume")
        ],
    )
    importer.feed_rows(structured)
    importer.feed_arrays(*(col[30:] for col in SMALL.columns()))
    assert importer.rows_received == 40
    result = importer.finish()
    assert result.ts.tolist() == SMALL.ts.tolist()
    assert np.array_equal(result.close[:10], SMALL.close[:10])
    assert np.array_equal(result.close[20:], SMALL.close[20:])


def test_rows_mode_validates_and_caps() -> None:
    rows = list(rows_of(SMALL))
    importer = BarStreamImporter("rows", max_rows=20)
    importer.feed_rows(rows[:20])
    with pytest.raises(UploadTooLargeError):
        importer.feed_rows(rows[20:21])
    importer = BarStreamImporter("rows", max_bytes=48 * 10)
    with pytest.raises(UploadTooLargeError, match="bytes"):
        importer.feed_rows(rows[:11])
    importer = BarStreamImporter("rows")
    importer.feed_rows(rows[5:10])
    importer.feed_rows(rows[:5])
    with pytest.raises(BarValidationError, match=r"row 6 .*earlier than row 5"):
        importer.finish()


@pytest.mark.parametrize(
    "call",
    [
        lambda imp: imp.feed_rows([(1, 2.0, 3.0)]),
        lambda imp: imp.feed_rows([("2024-01-01", 1, 1, 1, 1, 1)]),
        lambda imp: imp.feed_rows(np.ones((3, 5))),
        lambda imp: imp.feed_arrays([1, 2], [1.0], [1.0], [1.0], [1.0], [1.0]),
    ],
)
def test_rows_mode_rejects_malformed_batches(call: Callable[[BarStreamImporter], None]) -> None:
    with pytest.raises(ImportFormatError):
        call(BarStreamImporter("rows"))


def test_format_is_enforced() -> None:
    with pytest.raises(ValueError, match="unknown upload format"):
        BarStreamImporter("json")  # type: ignore[arg-type]
    with pytest.raises(ImportFormatError, match="declared as 'rows'"):
        BarStreamImporter("rows").feed_bytes(b"ts,open")
    with pytest.raises(ImportFormatError, match="declared as 'csv'"):
        BarStreamImporter("csv").feed_rows([])


def test_empty_uploads() -> None:
    with pytest.raises(ImportFormatError, match="empty"):
        BarStreamImporter("csv").finish()
    with pytest.raises(BarValidationError, match="no data rows"):
        upload(b"ts,open,high,low,close\n", [3])
    with pytest.raises(BarValidationError, match="no data rows"):
        BarStreamImporter("rows").finish()


def test_finish_only_once() -> None:
    importer = BarStreamImporter("csv")
    importer.feed_bytes(SMALL_CSV)
    assert importer.finish().equals(SMALL)
    with pytest.raises(RuntimeError):
        importer.finish()
