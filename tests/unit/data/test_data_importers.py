from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stratopt.data import (
    Bars,
    BarValidationError,
    ImportFormatError,
    detect_format,
    import_bars,
    import_csv,
    import_parquet,
)
from stratopt.data.timestamps import format_ts

S = 1_000_000_000
#: 2024-03-01T10:00:00Z and one hour later
T0, T1 = 1_709_287_200 * S, 1_709_290_800 * S
ROWS = "100,101,99,100.5,7\n100.5,102,100,101,8\n"


def two_rows(
    first: str, second: str, header: str = "timestamp,open,high,low,close,volume"
) -> bytes:
    a, b = ROWS.splitlines()
    return f"{header}\n{first},{a}\n{second},{b}\n".encode()


def test_csv_round_trip_from_bytes_and_path(synthetic_1m: Bars, tmp_path: Path) -> None:
    text = synthetic_1m.to_frame().to_csv().encode()  # "2024-02-26 00:00:00+00:00" style
    assert import_csv(text).equals(synthetic_1m)
    path = tmp_path / "bars.csv"
    path.write_bytes(text)
    assert import_bars(path).equals(synthetic_1m)
    gz = tmp_path / "bars.csv.gz"
    gz.write_bytes(gzip.compress(text))
    assert import_bars(gz).equals(synthetic_1m)


def test_parquet_round_trip_with_index_and_with_column(synthetic_1m: Bars, tmp_path: Path) -> None:
    frame = synthetic_1m.to_frame()
    path = tmp_path / "bars.parquet"
    frame.to_parquet(path)
    assert import_bars(path).equals(synthetic_1m)
    as_column = frame.reset_index()
    as_column["ts"] = as_column["ts"].astype("int64") // 1_000_000  # epoch milliseconds
    data = as_column.rename(columns={"ts": "time"}).to_parquet()
    assert import_parquet(data).equals(synthetic_1m)
    assert import_bars(data).equals(synthetic_1m)


TIMESTAMPS = [
    ("naive ISO is UTC", "2024-03-01 10:00:00", "2024-03-01 11:00"),
    ("Z suffix", "2024-03-01T10:00:00Z", "2024-03-01T11:00:00Z"),
    ("offsets", "2024-03-01T12:00:00+02:00", "2024-03-01T06:00:00-05:00"),
    ("epoch seconds", "1709287200", "1709290800"),
    ("epoch seconds float", "1709287200.0", "1709290800.0"),
    ("epoch milliseconds", "1709287200000", "1709290800000"),
    ("epoch nanoseconds", str(T0), str(T1)),
]


@pytest.mark.parametrize(("case", "first", "second"), TIMESTAMPS)
def test_timestamp_formats(case: str, first: str, second: str) -> None:
    bars = import_csv(two_rows(first, second))
    assert bars.ts.tolist() == [T0, T1], case


def test_fractional_epoch_seconds_keep_precision() -> None:
    bars = import_csv(two_rows("1709287200.25", "1709287200.5"))
    assert bars.ts.tolist() == [T0 + 250_000_000, T0 + 500_000_000]


def test_yyyymmdd_dates_and_separate_date_time_columns() -> None:
    daily = import_csv(two_rows("20240301", "20240304", header="date,open,high,low,close,vol"))
    assert daily.ts.tolist() == [1_709_251_200 * S, 1_709_510_400 * S]
    split = "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<TICKVOL>\n"
    split += "2024.03.01\t10:00:00\t100\t101\t99\t100.5\t7\n"
    split += "2024.03.01\t11:00:00\t100.5\t102\t100\t101\t8\n"
    bars = import_csv(split.encode())
    assert bars.ts.tolist() == [T0, T1]
    assert bars.volume.tolist() == [7.0, 8.0]


@pytest.mark.parametrize(
    "header",
    [
        "Date,Open,High,Low,Close,Volume",
        "TIME,O,H,L,C,V",
        "datetime , open , high , low , close , vol",
        '"Timestamp","Open","High","Low","Close","Vol."',
    ],
)
def test_column_aliases(header: str) -> None:
    bars = import_csv(two_rows("2024-03-01T10:00:00Z", "2024-03-01T11:00:00Z", header=header))
    assert bars.close.tolist() == [100.5, 101.0]
    assert bars.volume.tolist() == [7.0, 8.0]


def test_extra_columns_are_ignored_and_volume_is_optional() -> None:
    text = "Date,Open,High,Low,Close,Adj Close\n2024-03-01,1,2,0.5,1.5,1.4\n"
    bars = import_csv(text.encode())
    assert bars.close.tolist() == [1.5] and bars.volume.tolist() == [0.0]


@pytest.mark.parametrize("sep", [";", "\t", "|"])
def test_separators(sep: str) -> None:
    text = two_rows("2024-03-01T10:00:00Z", "2024-03-01T11:00:00Z").decode().replace(",", sep)
    assert import_csv(text.encode()).close.tolist() == [100.5, 101.0]


def test_headerless_binance_style_file() -> None:
    text = (
        "1709287200000,100,101,99,100.5,7,1709290799999,700,12,3,300,0\n"
        "1709290800000,100.5,102,100,101,8,1709294399999,800,13,4,400,0\n"
    )
    bars = import_csv(text.encode())
    assert bars.ts.tolist() == [T0, T1]
    assert bars.volume.tolist() == [7.0, 8.0]


def test_newest_first_file_is_flipped_and_errors_point_at_file_rows() -> None:
    bars = import_csv(two_rows("2024-03-01T11:00:00Z", "2024-03-01T10:00:00Z"))
    assert bars.ts.tolist() == [T0, T1]
    assert bars.close.tolist() == [101.0, 100.5]
    text = "ts,open,high,low,close\n" + "".join(
        f"2024-03-01T{h:02d}:00:00Z,10,{9 if h == 5 else 11},9,10\n" for h in range(9, -1, -1)
    )
    with pytest.raises(BarValidationError) as info:
        import_csv(text.encode())
    assert info.value.problems[0].row == 5  # 05:00 is the 5th data row of the file


def test_missing_columns_are_named_with_accepted_aliases() -> None:
    with pytest.raises(ImportFormatError) as info:
        import_csv(b"Date,Open,Low,Close\n2024-03-01,1,1,1\n")
    message = str(info.value)
    assert "missing column(s) high" in message
    assert "high: high, h" in message
    assert "Date, Open, Low, Close" in message


def test_ambiguous_columns_are_refused() -> None:
    with pytest.raises(ImportFormatError, match="all look like 'close'"):
        import_csv(b"ts,open,high,low,Close,close\n1,1,1,1,1,1\n")


def test_bad_values_are_reported_with_row_and_text() -> None:
    text = two_rows("2024-03-01T10:00:00Z", "2024-03-01T11:00:00Z").decode()
    text += "2024-03-01T12:00:00Z,101,10x2,100,101,8\n"
    text += "not a date,101,102,100,101,8\n"
    with pytest.raises(BarValidationError) as info:
        import_csv(text.encode())
    shown = [str(p) for p in info.value.problems]
    assert shown[0] == "row 3: high '10x2' is not a number"
    assert shown[1].startswith("row 4: ts 'not a date' is not a recognised date/time")
    assert info.value.total == 2


def test_blank_values_are_reported_as_missing() -> None:
    text = two_rows("2024-03-01T10:00:00Z", "2024-03-01T11:00:00Z").decode()
    text += "2024-03-01T12:00:00Z,101,102,100,,8\n"
    with pytest.raises(BarValidationError) as info:
        import_csv(text.encode())
    assert str(info.value) == "invalid bars: row 3 (2024-03-01T12:00:00Z): close is missing or NaN"


def test_rows_with_wrong_field_count_are_reported() -> None:
    text = two_rows("2024-03-01T10:00:00Z", "2024-03-01T11:00:00Z").decode()
    text += "2024-03-01T12:00:00Z,101,102,100\n"
    with pytest.raises(BarValidationError) as info:
        import_csv(text.encode())
    [problem] = info.value.problems
    assert problem.row == 3 and "expected 6 fields, found 4" in problem.message


def test_rule_violations_in_files_use_file_rows() -> None:
    text = two_rows("2024-03-01T10:00:00Z", "2024-03-01T11:00:00Z").decode()
    text += "2024-03-01T12:00:00Z,101.3,101.2,100,101.5,8\n"
    with pytest.raises(BarValidationError) as info:
        import_csv(text.encode())
    assert str(info.value) == "invalid bars: row 3 (2024-03-01T12:00:00Z): high 101.2 < close 101.5"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"ts,open,high,low,close\n", "no data rows"),
        (b"just some words\nand more\n", "no column separator"),
        (b"\xff\xfe,\x00\n", "not UTF-8"),
    ],
)
def test_unusable_csv(data: bytes, message: str) -> None:
    with pytest.raises((ImportFormatError, BarValidationError), match=message):
        import_csv(data)


def test_bom_and_crlf_are_accepted() -> None:
    data = b"\xef\xbb\xbf" + two_rows("2024-03-01T10:00:00Z", "2024-03-01T11:00:00Z")
    assert import_csv(data.replace(b"\n", b"\r\n")).ts.tolist() == [T0, T1]


def test_format_detection(tmp_path: Path) -> None:
    assert detect_format(b"PAR1....") == "parquet"
    assert detect_format(b"ts,open") == "csv"
    assert detect_format(tmp_path / "x.PQ") == "parquet"
    assert detect_format(tmp_path / "x.csv.gz") == "csv"
    with pytest.raises(ImportFormatError, match="cannot tell the format"):
        detect_format(tmp_path / "x.xlsx")
    with pytest.raises(ImportFormatError, match="Parquet"):
        import_parquet(b"PAR1 but not really")


def test_parquet_with_naive_datetime_column(make_simple: Callable[..., Bars]) -> None:
    bars = make_simple(5)
    frame = bars.to_frame().reset_index()
    frame["ts"] = frame["ts"].dt.tz_localize(None)
    assert import_parquet(frame.to_parquet()).equals(bars)


def test_parquet_reports_bad_rows(make_simple: Callable[..., Bars]) -> None:
    frame = make_simple(5).to_frame()
    frame.iloc[2, frame.columns.get_loc("high")] = np.nan
    with pytest.raises(BarValidationError, match=r"row 3 \(2024-03-01T02:00:00Z\): high is"):
        import_parquet(frame.to_parquet())


def test_string_ts_column_in_parquet() -> None:
    frame = pd.DataFrame(
        {
            "Date": ["2024-03-01T10:00:00Z", "2024-03-01T11:00:00Z"],
            "Open": [1.0, 1.0],
            "High": [2.0, 2.0],
            "Low": [0.5, 0.5],
            "Close": [1.5, 1.5],
        }
    )
    assert import_parquet(frame.to_parquet()).ts.tolist() == [T0, T1]


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        # month-first when every value allows it
        ("03/01/2024 10:00", "03/02/2024 10:00", ["2024-03-01T10:00:00Z", "2024-03-02T10:00:00Z"]),
        # day-first when some day is above 12
        ("28/02/2024 10:00", "01/03/2024 10:00", ["2024-02-28T10:00:00Z", "2024-03-01T10:00:00Z"]),
    ],
)
def test_slash_dates_are_read_consistently(first: str, second: str, expected: list[str]) -> None:
    bars = import_csv(two_rows(first, second))
    assert [format_ts(t) for t in bars.ts.tolist()] == expected


def test_uploads_share_one_memory_budget() -> None:
    from stratopt.data.errors import UploadBudgetError
    from stratopt.data.importers import BarStreamImporter, MemoryBudget

    budget = MemoryBudget(1_000)
    first = BarStreamImporter("csv", budget=budget)
    second = BarStreamImporter("csv", budget=budget)
    first.feed_bytes(b"ts,open,high,low,close,volume\n" + b"1,1,1,1,1,1\n" * 40)
    assert budget.used > 0
    with pytest.raises(UploadBudgetError):
        second.feed_bytes(b"x" * 800)
    assert second.buffered_bytes == 0  # the refused upload dropped what it held
    first.close()
    assert budget.used == 0
    third = BarStreamImporter("csv", budget=budget)
    third.feed_bytes(b"x" * 800)  # room again
    third.close()
    assert budget.used == 0
