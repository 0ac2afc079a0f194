"""Feed validation: each bad bar is rejected with a message naming its problem, alone."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from stratopt.live.bars import BarRejected, FeedValidator, LiveBar, bar_problem, format_ts

T0 = 1_700_000_000 * 1_000_000_000
HOUR = 3_600 * 1_000_000_000


def bar(ts: int = T0, symbol: str = "BTCUSDT", **prices: float) -> LiveBar:
    """A valid bar (open 100, high 102, low 99, close 101, volume 5) with some overrides."""
    v = {"open": 100.0, "high": 102.0, "low": 99.0, "close": 101.0, "volume": 5.0, **prices}
    return LiveBar(symbol, ts, v["open"], v["high"], v["low"], v["close"], v["volume"])


@pytest.mark.parametrize(
    ("prices", "message"),
    [
        ({"open": math.nan}, "open is NaN"),
        ({"close": math.inf}, "close is inf, not finite"),
        ({"volume": -math.inf}, "volume is -inf, not finite"),
        ({"low": -1.0}, "low -1.0 must be > 0"),
        ({"open": 0.0, "low": 0.0}, "open 0.0 must be > 0"),
        ({"volume": -0.5}, "volume -0.5 must be >= 0"),
        ({"high": 98.0}, "high 98.0 is below low 99.0"),
        ({"open": 103.0}, "open 103.0 is outside the bar's range [low 99.0, high 102.0]"),
        ({"close": 98.5}, "close 98.5 is outside the bar's range [low 99.0, high 102.0]"),
    ],
)
def test_bad_prices_are_named(prices: dict[str, float], message: str) -> None:
    bad = bar(T0, "BTCUSDT", **prices)
    assert bar_problem(bad) == message
    feed = FeedValidator(["BTCUSDT"])
    with pytest.raises(BarRejected) as caught:
        feed.accept(bad)
    assert caught.value.reason == message
    assert str(caught.value).startswith("BTCUSDT bar at 2023-11-14T22:13:20Z rejected: ")
    assert feed.last_ts("BTCUSDT") is None  # nothing remembered from a rejected bar


def test_types_are_checked() -> None:
    assert bar_problem(replace(bar(), ts=1.5)) == (  # type: ignore[arg-type]
        "timestamp must be integer epoch nanoseconds, got 1.5"
    )
    assert bar_problem(replace(bar(), ts=True)) is not None
    assert bar_problem(replace(bar(), volume="5")) == "volume must be a number, got '5'"  # type: ignore[arg-type]
    # numpy scalars, as a dataset replay produces them, are fine.
    numpy_bar = replace(bar(), ts=np.int64(T0), close=np.float64(101.0))  # type: ignore[arg-type]
    assert bar_problem(numpy_bar) is None


def test_valid_bar_passes_and_flat_bar_is_valid() -> None:
    assert bar_problem(bar()) is None
    assert bar_problem(bar(open=5.0, high=5.0, low=5.0, close=5.0, volume=0.0)) is None


def test_unknown_symbol() -> None:
    feed = FeedValidator(["BTCUSDT", "ETHUSDT"])
    with pytest.raises(
        BarRejected, match=r"unknown symbol 'AAPL'; this feed carries BTCUSDT, ETHUSDT"
    ):
        feed.accept(bar(symbol="AAPL"))


def test_timestamps_must_increase_per_symbol() -> None:
    feed = FeedValidator(["BTCUSDT", "ETHUSDT"])
    feed.accept(bar(T0))
    feed.accept(bar(T0, symbol="ETHUSDT"))  # another symbol has its own clock
    assert feed.problem(bar(T0)) == (
        "timestamp 2023-11-14T22:13:20Z repeats the last accepted bar "
        "(2023-11-14T22:13:20Z); bars must arrive in strictly increasing time"
    )
    assert "is earlier than the last accepted bar" in (feed.problem(bar(T0 - HOUR)) or "")
    feed.accept(bar(T0 + HOUR))
    assert feed.last_ts("BTCUSDT") == T0 + HOUR


def test_rejected_bar_affects_nothing_else() -> None:
    feed = FeedValidator(["BTCUSDT"])
    feed.accept(bar(T0))
    # A bad bar far in the future must not move the clock and block the good ones.
    with pytest.raises(BarRejected):
        feed.accept(bar(T0 + 10 * HOUR, high=1.0))
    assert feed.last_ts("BTCUSDT") == T0
    feed.accept(bar(T0 + HOUR))
    feed.accept(bar(T0 + 2 * HOUR))


def test_validator_state_round_trips() -> None:
    feed = FeedValidator(["BTCUSDT", "ETHUSDT"])
    feed.accept(bar(T0))
    again = FeedValidator(["BTCUSDT", "ETHUSDT"])
    again.restore(feed.snapshot())
    assert again.problem(bar(T0)) is not None and again.problem(bar(T0 + 1)) is None
    with pytest.raises(ValueError, match="unknown symbols"):
        again.restore({"AAPL": T0})
    with pytest.raises(ValueError, match="at least one symbol"):
        FeedValidator([])


def test_format_ts() -> None:
    assert format_ts(T0) == "2023-11-14T22:13:20Z"
    assert format_ts(T0 + 5) == "2023-11-14T22:13:20.000000005Z"
    assert format_ts("x") == "'x'"
