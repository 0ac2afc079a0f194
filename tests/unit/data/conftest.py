"""Shared fixtures for the data package tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from stratopt.data import Bars, generate_bars

HOUR_NS = 3600 * 1_000_000_000
#: 2024-03-01T00:00:00Z
START_NS = 1_709_251_200_000_000_000


def simple_bars(n: int = 10, *, start_ns: int = START_NS, step_ns: int = HOUR_NS) -> Bars:
    """Hand-made valid bars with round numbers, so messages are predictable."""
    close = 100.0 + np.arange(n, dtype=np.float64)
    open_ = close - 0.5
    return Bars(
        ts=start_ns + np.arange(n, dtype=np.int64) * step_ns,
        open=open_,
        high=close + 1.0,
        low=open_ - 1.0,
        close=close,
        volume=np.full(n, 10.0),
    )


@pytest.fixture
def make_simple() -> Callable[..., Bars]:
    return simple_bars


@pytest.fixture(scope="session")
def synthetic_1m() -> Bars:
    """A few days of 1-minute bars with a varied shape for round trips and resampling."""
    return generate_bars(6_000, start="2024-02-26T00:00:00Z", timeframe="1m", seed=7)
