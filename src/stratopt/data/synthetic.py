"""Seeded synthetic markets: regime-switching geometric Brownian motion.

Real data cannot ship with the service, but strategies need something with trends, ranges
and volatility bursts to be tested on. Log returns follow GBM whose drift and volatility
come from a hidden regime; regimes follow a Markov chain (stay with probability
``1 - bar/mean_duration``, otherwise jump uniformly to another regime), so trends last
weeks to months as in real markets. Open/high/low/close are consistent by construction
and the same seed always gives the same bars (with the same numpy version).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from stratopt.data.bars import Bars
from stratopt.data.timeframes import parse_timeframe
from stratopt.data.timestamps import NS_PER_SECOND, TimeLike, to_epoch_ns

DAY_SECONDS = 86_400
YEAR_SECONDS = 365.25 * DAY_SECONDS
#: 1970-01-01 was a Thursday; Monday is weekday 0 as in Python.
EPOCH_WEEKDAY = 3


@dataclass(frozen=True, slots=True)
class Regime:
    """One market state. ``drift`` and ``volatility`` are annualised (0.2 = 20 %/year)."""

    name: str
    drift: float
    volatility: float
    mean_duration_days: float
    volume_factor: float = 1.0


CRYPTO_REGIMES = (
    Regime("bull", drift=0.9, volatility=0.55, mean_duration_days=120, volume_factor=1.2),
    Regime("bear", drift=-0.8, volatility=0.70, mean_duration_days=70, volume_factor=1.1),
    Regime("sideways", drift=0.0, volatility=0.40, mean_duration_days=90, volume_factor=0.8),
    Regime("high_volatility", drift=0.0, volatility=1.2, mean_duration_days=20, volume_factor=1.8),
)
EQUITY_REGIMES = (
    Regime("bull", drift=0.18, volatility=0.12, mean_duration_days=400, volume_factor=0.9),
    Regime("bear", drift=-0.25, volatility=0.28, mean_duration_days=120, volume_factor=1.3),
    Regime("sideways", drift=0.03, volatility=0.14, mean_duration_days=250, volume_factor=0.9),
    Regime(
        "high_volatility", drift=-0.05, volatility=0.45, mean_duration_days=30, volume_factor=1.8
    ),
)


def regime_path(
    n: int, regimes: tuple[Regime, ...], bar_seconds: float, rng: np.random.Generator
) -> NDArray[np.int8]:
    """Regime index per bar: geometric run lengths, then a uniform jump to another regime."""
    leave = [min(1.0, bar_seconds / (r.mean_duration_days * DAY_SECONDS)) for r in regimes]
    path = np.empty(n, dtype=np.int8)
    state, filled = int(rng.integers(len(regimes))), 0
    while filled < n:
        length = int(rng.geometric(leave[state]))
        path[filled : filled + length] = state
        filled += length
        if len(regimes) > 1:
            state = (state + 1 + int(rng.integers(len(regimes) - 1))) % len(regimes)
    return path


def bar_times(n: int, start_ns: int, bar_seconds: int, *, weekdays_only: bool) -> NDArray[np.int64]:
    """``n`` bar open times from ``start_ns``, optionally skipping Saturdays and Sundays."""
    step = bar_seconds * NS_PER_SECOND
    if not weekdays_only:
        return start_ns + np.arange(n, dtype=np.int64) * step
    bars_per_day = max(1, DAY_SECONDS // bar_seconds)
    candidates = start_ns + np.arange(n * 7 // 5 + 3 * bars_per_day + 7, dtype=np.int64) * step
    weekday = (candidates // (DAY_SECONDS * NS_PER_SECOND) + EPOCH_WEEKDAY) % 7
    return np.ascontiguousarray(candidates[weekday < 5][:n])


def _round_prices(prices: NDArray[np.float64], decimals: int | None) -> NDArray[np.float64]:
    """Round to a tick; rounding is monotonic, so high >= close etc. survive it."""
    if decimals is None:
        return prices
    return np.maximum(np.round(prices, decimals), 10.0**-decimals)


def generate_with_regimes(
    n: int,
    *,
    start: TimeLike = "2020-01-01",
    timeframe: str | int = "1h",
    start_price: float = 100.0,
    seed: int = 0,
    regimes: tuple[Regime, ...] = CRYPTO_REGIMES,
    weekdays_only: bool = False,
    base_volume: float = 1_000.0,
    gap_volatility: float = 0.0,
    price_decimals: int | None = None,
) -> tuple[Bars, NDArray[np.int8]]:
    """Synthetic bars and the regime index of each bar (see :func:`generate_bars`)."""
    if n < 1 or start_price <= 0 or not regimes:
        raise ValueError("need n >= 1, start_price > 0 and at least one regime")
    bar_seconds = parse_timeframe(timeframe)
    rng = np.random.default_rng(seed)
    path = regime_path(n, regimes, bar_seconds, rng)
    # Fewer bars per year (weekdays only) must carry the same annual variance.
    dt = bar_seconds / YEAR_SECONDS * (7 / 5 if weekdays_only else 1)
    vol = np.array([r.volatility for r in regimes])[path] * np.sqrt(dt)
    drift = np.array([(r.drift - 0.5 * r.volatility**2) * dt for r in regimes])[path]
    shocks = rng.standard_normal(n)
    body = drift + vol * shocks
    gaps = gap_volatility * vol * rng.standard_normal(n)
    gaps[0] = 0.0
    log_close = np.log(start_price) + np.cumsum(gaps + body)
    close = np.exp(log_close)
    open_ = np.exp(log_close - body)
    high = np.maximum(open_, close) * np.exp(0.5 * vol * np.abs(rng.standard_normal(n)))
    low = np.minimum(open_, close) * np.exp(-0.5 * vol * np.abs(rng.standard_normal(n)))
    factor = np.array([r.volume_factor for r in regimes])[path]
    volume = base_volume * factor * np.exp(0.35 * rng.standard_normal(n)) * (1 + np.abs(shocks))
    ts = bar_times(n, to_epoch_ns(start), bar_seconds, weekdays_only=weekdays_only)
    prices = [_round_prices(p, price_decimals) for p in (open_, high, low, close)]
    o, h, lo, c = prices
    return Bars.from_arrays(ts, o, h, lo, c, np.round(volume, 4)), path


def generate_bars(
    n: int,
    *,
    start: TimeLike = "2020-01-01",
    timeframe: str | int = "1h",
    start_price: float = 100.0,
    seed: int = 0,
    regimes: tuple[Regime, ...] = CRYPTO_REGIMES,
    weekdays_only: bool = False,
    base_volume: float = 1_000.0,
    gap_volatility: float = 0.0,
    price_decimals: int | None = None,
) -> Bars:
    """``n`` valid synthetic bars; the same arguments always give identical bars.

    ``gap_volatility`` (fraction of a bar's volatility) moves each open away from the
    previous close, like overnight gaps in equities; ``price_decimals`` rounds to a tick.
    """
    bars, _ = generate_with_regimes(
        n,
        start=start,
        timeframe=timeframe,
        start_price=start_price,
        seed=seed,
        regimes=regimes,
        weekdays_only=weekdays_only,
        base_volume=base_volume,
        gap_volatility=gap_volatility,
        price_decimals=price_decimals,
    )
    return bars


@dataclass(frozen=True, slots=True)
class SampleDataset:
    """A sample dataset the server creates on first start (deterministic from its seed)."""

    dataset_id: str
    name: str
    symbol: str
    timeframe: str
    description: str
    n_bars: int
    start: str
    start_price: float
    seed: int
    regimes: tuple[Regime, ...]
    weekdays_only: bool = False
    base_volume: float = 1_000.0
    gap_volatility: float = 0.0
    price_decimals: int | None = 2

    def generate(self) -> Bars:
        return generate_bars(
            self.n_bars,
            start=self.start,
            timeframe=self.timeframe,
            start_price=self.start_price,
            seed=self.seed,
            regimes=self.regimes,
            weekdays_only=self.weekdays_only,
            base_volume=self.base_volume,
            gap_volatility=self.gap_volatility,
            price_decimals=self.price_decimals,
        )


def sample_datasets() -> tuple[SampleDataset, ...]:
    """The built-in synthetic samples: crypto hourly, equity daily, crypto 15-minute."""
    return (
        SampleDataset(
            dataset_id="SAMPLE-BTC",
            name="SAMPLE-BTC 1h 3 years",
            symbol="BTCUSD",
            timeframe="1h",
            description="Synthetic BTC-like market, hourly bars around the clock, 2021-2023.",
            n_bars=26_298,
            start="2021-01-01",
            start_price=29_000.0,
            seed=20_210_101,
            regimes=CRYPTO_REGIMES,
            base_volume=1_500.0,
        ),
        SampleDataset(
            dataset_id="SAMPLE-SPY",
            name="SAMPLE-SPY 1d 10 years",
            symbol="SPY",
            timeframe="1d",
            description="Synthetic S&P 500 ETF-like market, weekday daily bars with "
            "overnight gaps, 2014-2023.",
            n_bars=2_609,
            start="2014-01-02",
            start_price=183.0,
            seed=20_140_102,
            regimes=EQUITY_REGIMES,
            weekdays_only=True,
            base_volume=80_000_000.0,
            gap_volatility=0.3,
        ),
        SampleDataset(
            dataset_id="SAMPLE-ETH",
            name="SAMPLE-ETH 15m 1 year",
            symbol="ETHUSD",
            timeframe="15m",
            description="Synthetic ETH-like market, 15-minute bars around the clock, 2023.",
            n_bars=35_040,
            start="2023-01-01",
            start_price=1_200.0,
            seed=20_230_101,
            regimes=CRYPTO_REGIMES,
            base_volume=900.0,
        ),
    )
