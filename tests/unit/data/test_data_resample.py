from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from stratopt.data import (
    Bars,
    TimeframeError,
    format_timeframe,
    generate_bars,
    parse_timeframe,
    resample,
    validate_bars,
)

AGG = {"open": "first", "high": "max", "low": "min", "close": "last", "volume": "sum"}


def pandas_resample(bars: Bars, rule: str, origin: str = "epoch") -> pd.DataFrame:
    frame = bars.to_frame()
    ref = frame.resample(rule, origin=origin, label="left", closed="left").agg(AGG)  # type: ignore[arg-type]
    return ref.dropna(subset=["open"])


@pytest.fixture(scope="module")
def gappy_minutes() -> Bars:
    """1-minute bars with random holes, starting mid-bin, so partial and empty bins occur."""
    bars = generate_bars(20_000, start="2024-02-28T13:37:00Z", timeframe="1m", seed=11)
    keep = np.random.default_rng(0).random(len(bars)) > 0.2
    keep[:2] = True
    return Bars(*(column[keep] for column in bars.columns()))


@pytest.mark.parametrize(
    ("timeframe", "rule"),
    [("5m", "5min"), ("15m", "15min"), ("1h", "1h"), ("4h", "4h"), ("1d", "24h"), (7200, "2h")],
)
def test_matches_pandas(gappy_minutes: Bars, timeframe: str | int, rule: str) -> None:
    ours = resample(gappy_minutes, timeframe).to_frame()
    pd.testing.assert_frame_equal(ours, pandas_resample(gappy_minutes, rule), check_freq=False)


def test_weeks_start_on_monday(gappy_minutes: Bars) -> None:
    ours = resample(gappy_minutes, "1w").to_frame()
    ref = pandas_resample(gappy_minutes, "168h", origin="1970-01-05T00:00:00Z")
    pd.testing.assert_frame_equal(ours, ref, check_freq=False)
    assert (ours.index.day_of_week == 0).all()


def test_result_is_valid_and_aligned(gappy_minutes: Bars) -> None:
    hourly = resample(gappy_minutes, "1h")
    validate_bars(hourly)
    assert hourly.timeframe_seconds == 3600
    assert not (hourly.ts % (3600 * 10**9)).any()
    assert hourly.volume.sum() == pytest.approx(gappy_minutes.volume.sum())


def test_same_timeframe_is_identity(gappy_minutes: Bars) -> None:
    assert resample(gappy_minutes, "1m").equals(gappy_minutes)


def test_refuses_finer_and_non_multiple_targets() -> None:
    hourly = generate_bars(100, timeframe="1h")
    with pytest.raises(TimeframeError, match="cannot resample 1h bars to 15m: the target is finer"):
        resample(hourly, "15m")
    with pytest.raises(TimeframeError, match="whole multiple"):
        resample(hourly, "90m")


def test_empty_and_single_bar() -> None:
    one = generate_bars(1, start="2024-01-01T00:10:00Z", timeframe="1m")
    assert resample(one, "1h").ts.tolist() == [1_704_067_200 * 10**9]
    assert len(resample(one.slice(0, 0), "1h")) == 0


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30s", 30),
        ("1m", 60),
        ("15m", 900),
        ("15min", 900),
        ("1h", 3600),
        (" 4H ", 14_400),
        ("1d", 86_400),
        ("2 days", 172_800),
        ("1w", 604_800),
        ("900", 900),
        (60, 60),
    ],
)
def test_parse_timeframe(text: str | int, seconds: int) -> None:
    assert parse_timeframe(text) == seconds


@pytest.mark.parametrize("text", ["1M", "0m", "", "m", "1y", "1.5h", "-5m", "fast", True])
def test_parse_timeframe_rejects(text: str) -> None:
    with pytest.raises(TimeframeError):
        parse_timeframe(text)


def test_format_timeframe_round_trips() -> None:
    for seconds in (1, 45, 60, 900, 3600, 5400, 14_400, 86_400, 604_800):
        assert parse_timeframe(format_timeframe(seconds)) == seconds
    assert format_timeframe(5400) == "90m"
    assert format_timeframe(86_400) == "1d"
