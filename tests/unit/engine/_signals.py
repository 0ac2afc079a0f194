"""Signal functions for engine tests, standing in for the strategy library.

They follow the INTERFACES.md signal contract so the engine can be tested without
``stratopt.strategies`` (written concurrently and not a dependency of the engine).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def _sma(values: np.ndarray, window: int) -> np.ndarray:
    n = values.shape[0]
    out = np.full(n, np.nan)
    if window < 1 or window > n:
        return out
    total = 0.0
    for i in range(n):
        total += values[i]
        if i >= window:
            total -= values[i - window]
        if i >= window - 1:
            out[i] = total / window
    return out


@njit(cache=True, nogil=True)
def sma_cross_signal(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    params: np.ndarray,
) -> np.ndarray:
    """+1 while SMA(fast) > SMA(slow), -1 while below, 0 during warm-up."""
    fast = _sma(close, int(params[0]))
    slow = _sma(close, int(params[1]))
    n = close.shape[0]
    out = np.zeros(n, dtype=np.int8)
    for i in range(n):
        if np.isnan(fast[i]) or np.isnan(slow[i]):
            continue
        if fast[i] > slow[i]:
            out[i] = 1
        elif fast[i] < slow[i]:
            out[i] = -1
    return out


@dataclass(frozen=True)
class Violation:
    field: str
    description: str


@dataclass(frozen=True)
class SmaCross:
    """Duck-typed strategy: the engine only needs signal, to_vector, defaults, validate."""

    name: str = "test_sma_cross"
    names: tuple[str, ...] = ("fast", "slow")
    default_values: dict[str, float] = field(default_factory=lambda: {"fast": 10, "slow": 30})

    @property
    def signal(self) -> Any:
        return sma_cross_signal

    def defaults(self) -> dict[str, float]:
        return dict(self.default_values)

    def validate(self, params: dict[str, Any]) -> list[Violation]:
        merged = {**self.default_values, **params}
        if merged["fast"] >= merged["slow"]:
            return [Violation("fast", "fast must be < slow")]
        return []

    def to_vector(self, params: dict[str, Any]) -> np.ndarray:
        merged = {**self.default_values, **params}
        return np.array([float(merged[n]) for n in self.names], dtype=np.float64)


def random_walk_bars(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Valid OHLCV arrays of a geometric random walk with hourly timestamps."""
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, n)))
    open_ = np.empty(n)
    open_[0] = close[0]
    open_[1:] = close[:-1] * np.exp(rng.normal(0.0, 0.002, n - 1))
    high = np.maximum(open_, close) * (1.0 + rng.uniform(0.0, 0.01, n))
    low = np.minimum(open_, close) * (1.0 - rng.uniform(0.0, 0.01, n))
    volume = rng.uniform(1.0, 100.0, n)
    ts = (
        np.datetime64("2024-01-01T00:00", "ns").astype(np.int64)
        + np.arange(n, dtype=np.int64) * 3_600_000_000_000
    )
    return {"ts": ts, "open": open_, "high": high, "low": low, "close": close, "volume": volume}


Prices = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def price_arrays(bars: dict[str, np.ndarray], start: int = 0, stop: int | None = None) -> Prices:
    """(open, high, low, close, volume) of ``bars[start:stop]``, in signal-argument order."""
    part = slice(start, stop)
    return (
        bars["open"][part],
        bars["high"][part],
        bars["low"][part],
        bars["close"][part],
        bars["volume"][part],
    )
