from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd
import pytest

from stratopt.data import Bars, BarValidationError, ImportFormatError

HOUR_NS = 3600 * 1_000_000_000


def test_constructor_normalises_layout_and_freezes_arrays() -> None:
    ts = np.array([1, 2, 3], dtype=np.int32)
    prices = np.array([[1.0, 2.0, 3.0]] * 2)[:, ::1].T[:, 0]  # a strided view
    bars = Bars(ts, prices, prices, prices, prices, [0, 0, 0])  # type: ignore[arg-type]
    for column in bars.columns():
        assert column.flags.c_contiguous
        assert not column.flags.writeable
    assert bars.ts.dtype == np.int64 and bars.volume.dtype == np.float64
    with pytest.raises(ValueError, match="read-only"):
        bars.close[0] = 5.0


def test_constructor_rejects_bad_shapes() -> None:
    one = np.ones(3)
    with pytest.raises(ValueError, match="differ in length"):
        Bars(np.arange(4), one, one, one, one, one)
    with pytest.raises(ValueError, match="1-D"):
        Bars(np.arange(3), np.ones((3, 1)), one, one, one, one)


def test_from_arrays_validates(make_simple: Callable[..., Bars]) -> None:
    bars = make_simple(5)
    high = np.array(bars.high)
    high[2] = 0.5
    with pytest.raises(BarValidationError, match="row 3"):
        Bars.from_arrays(bars.ts, bars.open, high, bars.low, bars.close, bars.volume)


def test_len_slice_and_first_last(make_simple: Callable[..., Bars]) -> None:
    bars = make_simple(10)
    part = bars.slice(2, 5)
    assert len(part) == 3
    assert part.first_ts == bars.ts[2] and part.last_ts == bars.ts[4]
    assert np.shares_memory(part.close, bars.close)
    assert len(bars.slice(8)) == 2


def test_between_is_half_open_and_accepts_strings(make_simple: Callable[..., Bars]) -> None:
    bars = make_simple(24)  # 2024-03-01 00:00 .. 23:00 UTC
    window = bars.between("2024-03-01T05:00:00Z", "2024-03-01T08:00:00Z")
    assert len(window) == 3
    assert window.first_ts == bars.ts[5]
    assert len(bars.between(bars.ts[5] + 1, None)) == 18
    assert len(bars.between(None, "2024-03-01 02:00")) == 2
    assert len(bars.between("2024-03-01T12:00:00+02:00")) == 14  # 10:00Z onwards
    assert len(bars.between("2024-03-02", "2024-03-01")) == 0
    with pytest.raises(ValueError, match="not a recognised"):
        bars.between("yesterday-ish")


def test_timeframe_is_median_spacing(make_simple: Callable[..., Bars]) -> None:
    bars = make_simple(10)
    assert bars.timeframe_seconds == 3600
    ts = np.array(bars.ts)
    ts[5:] += 5 * HOUR_NS  # one long gap must not change the answer
    gapped = Bars(ts, bars.open, bars.high, bars.low, bars.close, bars.volume)
    assert gapped.timeframe_seconds == 3600
    assert bars.slice(0, 1).timeframe_seconds == 0


def test_frame_round_trip(make_simple: Callable[..., Bars]) -> None:
    bars = make_simple(20)
    frame = bars.to_frame()
    assert str(frame.index.tz) == "UTC"
    assert frame.index[0] == pd.Timestamp("2024-03-01T00:00:00Z")
    assert list(frame.columns) == ["open", "high", "low", "close", "volume"]
    assert Bars.from_frame(frame).equals(bars)
    frame.iloc[0, 0] = 1.0  # the frame is a copy, not a window into read-only bars
    assert bars.open[0] == 99.5


def test_from_frame_accepts_aliases_naive_index_and_no_volume(
    make_simple: Callable[..., Bars],
) -> None:
    bars = make_simple(6)
    frame = pd.DataFrame(
        {"O": bars.open, "H": bars.high, "L": bars.low, "C": bars.close},
        index=pd.DatetimeIndex(bars.ts.view("datetime64[ns]")),  # naive => UTC
    )
    loaded = Bars.from_frame(frame)
    assert np.array_equal(loaded.ts, bars.ts)
    assert np.array_equal(loaded.close, bars.close)
    assert not loaded.volume.any()


def test_from_frame_with_timestamp_column_and_newest_first(
    make_simple: Callable[..., Bars],
) -> None:
    bars = make_simple(6)
    frame = bars.to_frame().reset_index().rename(columns={"ts": "Timestamp"}).iloc[::-1]
    assert Bars.from_frame(frame).equals(bars)


def test_from_frame_reports_source_rows(make_simple: Callable[..., Bars]) -> None:
    frame = make_simple(6).to_frame()
    frame.iloc[3, frame.columns.get_loc("low")] = 1000.0
    with pytest.raises(BarValidationError) as info:
        Bars.from_frame(frame)
    assert info.value.problems[0].row == 4


def test_from_frame_without_time_fails_clearly() -> None:
    frame = pd.DataFrame({"open": [1.0], "high": [1.0], "low": [1.0], "close": [1.0]})
    with pytest.raises(ImportFormatError, match="missing column"):
        Bars.from_frame(frame)


def test_equals_and_repr(make_simple: Callable[..., Bars]) -> None:
    bars = make_simple(3)
    assert bars.equals(make_simple(3))
    assert not bars.equals(make_simple(4))
    assert repr(bars) == ("Bars(n=3, 2024-03-01T00:00:00Z..2024-03-01T02:00:00Z, timeframe=3600s)")
    assert repr(bars.slice(0, 0)) == "Bars(n=0)"
