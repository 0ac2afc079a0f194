"""Indicator kernels against independent plain-Python/pandas references.

The references are transliterations of the TradingView formulas (loops over Python floats,
pandas rolling windows), written without looking at the kernels' structure, so a shared
mistake would have to be made twice in two different styles.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pandas as pd
import pytest

from stratopt.engine import indicators as ind

F64 = npt.NDArray[np.float64]
NAN = float("nan")
RTOL = ATOL = 1e-9


# ----------------------------------------------------------------------------- data


def random_bars(seed: int, n: int = 700) -> tuple[F64, F64, F64, F64]:
    rng = np.random.default_rng(seed)
    close = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.015, n)))
    open_ = np.concatenate(([close[0]], close[:-1])) * (1 + rng.normal(0, 0.002, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0.0, 0.01, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0.0, 0.01, n))
    return open_, high, low, close


SEEDS = [1, 2, 3]


# ----------------------------------------------------------------------------- references


def ref_sma(x: F64, p: int) -> F64:
    return pd.Series(x).rolling(p).mean().to_numpy()


def ref_smooth(x: F64, p: int, alpha: float) -> F64:
    """Seed with the mean of the first p valid values, then recurse; skip leading NaN."""
    out = [NAN] * len(x)
    vals = [float(v) for v in x]
    start = next((i for i, v in enumerate(vals) if not math.isnan(v)), len(vals))
    if start + p > len(vals):
        return np.array(out)
    prev = sum(vals[start : start + p]) / p
    out[start + p - 1] = prev
    for i in range(start + p, len(vals)):
        prev = alpha * vals[i] + (1 - alpha) * prev
        out[i] = prev
    return np.array(out)


def ref_ema(x: F64, p: int) -> F64:
    return ref_smooth(x, p, 2.0 / (p + 1))


def ref_rma(x: F64, p: int) -> F64:
    return ref_smooth(x, p, 1.0 / p)


def ref_wma(x: F64, p: int) -> F64:
    weights = np.arange(1, p + 1, dtype=float)
    return (
        pd.Series(x).rolling(p).apply(lambda w: float(np.dot(w, weights) / weights.sum()), raw=True)
    ).to_numpy()


def ref_stdev(x: F64, p: int) -> F64:
    return pd.Series(x).rolling(p).std(ddof=0).to_numpy()


def ref_tr(high: F64, low: F64, close: F64, first_bar_range: bool) -> F64:
    out = [NAN] * len(close)
    if first_bar_range:
        out[0] = high[0] - low[0]
    for i in range(1, len(close)):
        out[i] = max(high[i] - low[i], abs(high[i] - close[i - 1]), abs(low[i] - close[i - 1]))
    return np.array(out)


def ref_atr(high: F64, low: F64, close: F64, p: int) -> F64:
    return ref_rma(ref_tr(high, low, close, True), p)


def ref_rsi(x: F64, p: int) -> F64:
    diff = pd.Series(x).diff()
    up = ref_rma(diff.clip(lower=0).to_numpy(), p)
    down = ref_rma((-diff).clip(lower=0).to_numpy(), p)
    out = []
    for u, d in zip(up, down, strict=True):
        if math.isnan(u):
            out.append(NAN)
        elif d == 0:
            out.append(100.0)
        elif u == 0:
            out.append(0.0)
        else:
            out.append(100 - 100 / (1 + u / d))
    return np.array(out)


def ref_stoch(high: F64, low: F64, close: F64, kp: int, sk: int, dp: int) -> tuple[F64, F64]:
    hh = pd.Series(high).rolling(kp).max()
    ll = pd.Series(low).rolling(kp).min()
    raw = 100 * (pd.Series(close) - ll) / (hh - ll)
    k = raw.rolling(sk).mean()
    return k.to_numpy(), k.rolling(dp).mean().to_numpy()


def ref_cci(x: F64, p: int) -> F64:
    s = pd.Series(x)
    mean = s.rolling(p).mean()
    dev = s.rolling(p).apply(lambda w: float(np.mean(np.abs(w - w.mean()))), raw=True)
    return ((s - mean) / (0.015 * dev)).to_numpy()


def ref_dmi(high: F64, low: F64, close: F64, di_len: int, adx_len: int) -> tuple[F64, F64, F64]:
    """Pine's `ta.dmi` reference script, line by line."""
    n = len(close)
    plus_dm, minus_dm = [NAN] * n, [NAN] * n
    for i in range(1, n):
        up = high[i] - high[i - 1]
        down = -(low[i] - low[i - 1])
        plus_dm[i] = up if up > down and up > 0 else 0.0
        minus_dm[i] = down if down > up and down > 0 else 0.0
    trur = ref_rma(ref_tr(high, low, close, False), di_len)
    plus = 100 * ref_rma(np.array(plus_dm), di_len) / trur
    minus = 100 * ref_rma(np.array(minus_dm), di_len) / trur
    total = plus + minus
    dx = np.abs(plus - minus) / np.where(total == 0, 1.0, total)
    return plus, minus, 100 * ref_rma(dx, adx_len)


def ref_supertrend(high: F64, low: F64, close: F64, atr_len: int, factor: float) -> tuple[F64, F64]:
    """Pine's `pine_supertrend` reference script (Pine direction: -1 = up), None for na."""

    def nz(v: float | None) -> float:
        return 0.0 if v is None or math.isnan(v) else v

    atr = ref_atr(high, low, close, atr_len)
    n = len(close)
    line, direction = [NAN] * n, [NAN] * n
    upper_prev: float | None = None
    lower_prev: float | None = None
    st_prev: float | None = None
    for i in range(n):
        src = (high[i] + low[i]) / 2
        upper = src + factor * atr[i]
        lower = src - factor * atr[i]
        prev_lower, prev_upper = nz(lower_prev), nz(upper_prev)
        close_prev = close[i - 1] if i > 0 else NAN
        lower = lower if (lower > prev_lower or close_prev < prev_lower) else prev_lower
        upper = upper if (upper < prev_upper or close_prev > prev_upper) else prev_upper
        if i == 0 or math.isnan(atr[i - 1]):
            d = 1
        elif st_prev == prev_upper:
            d = -1 if close[i] > upper else 1
        else:
            d = 1 if close[i] < lower else -1
        st = lower if d == -1 else upper
        line[i], direction[i] = st, d
        upper_prev, lower_prev, st_prev = upper, lower, st
    return np.array(line), np.array(direction, dtype=float)


# ----------------------------------------------------------------------------- helpers


def assert_matches(actual: F64, expected: F64, warmup: int) -> None:
    """Same values after warm-up, NaN exactly during it."""
    assert actual.dtype == np.float64
    assert actual.shape == expected.shape
    assert np.isnan(actual[:warmup]).all(), "warm-up must be NaN"
    assert not np.isnan(actual[warmup:]).any(), "no NaN after warm-up"
    np.testing.assert_allclose(actual[warmup:], expected[warmup:], rtol=RTOL, atol=ATOL)


# ----------------------------------------------------------------------------- moving averages


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("period", [1, 2, 14, 50])
def test_moving_averages_match_references(seed: int, period: int) -> None:
    close = random_bars(seed)[3]
    assert_matches(ind.sma(close, period), ref_sma(close, period), period - 1)
    assert_matches(ind.ema(close, period), ref_ema(close, period), period - 1)
    assert_matches(ind.rma(close, period), ref_rma(close, period), period - 1)
    assert_matches(ind.wma(close, period), ref_wma(close, period), period - 1)


def test_small_hand_computed_values() -> None:
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(ind.sma(x, 2), [NAN, 1.5, 2.5, 3.5, 4.5])
    # EMA(3): alpha 0.5, seeded with mean(1, 2, 3) = 2.
    np.testing.assert_allclose(ind.ema(x, 3), [NAN, NAN, 2.0, 3.0, 4.0])
    # WMA(3) at bar 2: (1*1 + 2*2 + 3*3) / 6.
    np.testing.assert_allclose(ind.wma(x, 3), [NAN, NAN, 14 / 6, 20 / 6, 26 / 6])
    np.testing.assert_allclose(ind.stdev(x, 2), [NAN, 0.5, 0.5, 0.5, 0.5])


def test_ema_skips_leading_nan_and_seeds_after_period_values() -> None:
    x = np.array([NAN, NAN, 2.0, 4.0, 6.0, 8.0])
    np.testing.assert_allclose(ind.ema(x, 2), ref_ema(x, 2))
    assert np.isnan(ind.ema(x, 2)[:3]).all()
    assert ind.ema(x, 2)[3] == pytest.approx(3.0)


def test_nan_inside_a_window_poisons_only_that_window() -> None:
    x = np.arange(10, dtype=float)
    x[4] = NAN
    out = ind.sma(x, 3)
    assert np.isnan(out[[0, 1, 4, 5, 6]]).all()
    np.testing.assert_allclose(out[[2, 3, 7, 8, 9]], [1.0, 2.0, 6.0, 7.0, 8.0])


def test_series_shorter_than_period_is_all_nan() -> None:
    x = np.array([1.0, 2.0])
    for fn in (ind.sma, ind.ema, ind.rma, ind.wma, ind.stdev, ind.rsi):
        assert np.isnan(fn(x, 5)).all()


def test_period_below_one_is_rejected() -> None:
    with pytest.raises(ValueError):
        ind.sma(np.ones(5), 0)


# ----------------------------------------------------------------------------- oscillators


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("period", [2, 14, 30])
def test_rsi_matches_reference(seed: int, period: int) -> None:
    close = random_bars(seed)[3]
    assert_matches(ind.rsi(close, period), ref_rsi(close, period), period)


def test_rsi_extremes() -> None:
    rising = np.arange(1.0, 30.0)
    assert ind.rsi(rising, 14)[14:] == pytest.approx(100.0)
    assert ind.rsi(rising[::-1].copy(), 14)[14:] == pytest.approx(0.0)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("fast", "slow", "signal"), [(12, 26, 9), (5, 35, 5), (3, 4, 2)])
def test_macd_matches_reference(seed: int, fast: int, slow: int, signal: int) -> None:
    close = random_bars(seed)[3]
    line, sig, hist = ind.macd(close, fast, slow, signal)
    ref_line = ref_ema(close, fast) - ref_ema(close, slow)
    ref_sig = ref_ema(ref_line, signal)
    assert_matches(line, ref_line, slow - 1)
    assert_matches(sig, ref_sig, slow + signal - 2)
    assert_matches(hist, ref_line - ref_sig, slow + signal - 2)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("kp", "sk", "dp"), [(14, 3, 3), (5, 1, 1), (21, 5, 4)])
def test_stochastic_matches_reference(seed: int, kp: int, sk: int, dp: int) -> None:
    _, high, low, close = random_bars(seed)
    k, d = ind.stochastic(high, low, close, kp, sk, dp)
    ref_k, ref_d = ref_stoch(high, low, close, kp, sk, dp)
    assert_matches(k, ref_k, kp + sk - 2)
    assert_matches(d, ref_d, kp + sk + dp - 3)
    assert ((k[kp + sk :] >= 0) & (k[kp + sk :] <= 100)).all()


def test_stochastic_flat_range_is_nan_not_a_division_error() -> None:
    flat = np.full(10, 5.0)
    k, _ = ind.stochastic(flat, flat, flat, 3, 1, 1)
    assert np.isnan(k).all()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("period", [1, 10, 25])
def test_roc_and_momentum_match_reference(seed: int, period: int) -> None:
    close = random_bars(seed)[3]
    s = pd.Series(close)
    assert_matches(ind.momentum(close, period), (s - s.shift(period)).to_numpy(), period)
    ref_roc = (100 * (s - s.shift(period)) / s.shift(period)).to_numpy()
    assert_matches(ind.roc(close, period), ref_roc, period)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("period", [5, 20])
def test_cci_matches_reference(seed: int, period: int) -> None:
    _, high, low, close = random_bars(seed)
    typical = (high + low + close) / 3
    assert_matches(ind.cci(typical, period), ref_cci(typical, period), period - 1)


# ----------------------------------------------------------------------------- bands, channels


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("period", "mult"), [(20, 2.0), (5, 1.5), (50, 3.0)])
def test_bollinger_matches_reference(seed: int, period: int, mult: float) -> None:
    close = random_bars(seed)[3]
    mid, upper, lower = ind.bollinger(close, period, mult)
    sd = ref_stdev(close, period)
    assert_matches(mid, ref_sma(close, period), period - 1)
    assert_matches(upper, ref_sma(close, period) + mult * sd, period - 1)
    assert_matches(lower, ref_sma(close, period) - mult * sd, period - 1)


def test_stdev_is_accurate_far_from_zero() -> None:
    """A running sum of squares would lose these digits; the two-pass kernel must not."""
    x = 1e8 + np.array([0.0, 1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(ind.stdev(x, 3)[2:], math.sqrt(2 / 3), rtol=1e-9)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("period", [1, 20, 55])
def test_donchian_matches_reference(seed: int, period: int) -> None:
    _, high, low, _ = random_bars(seed)
    upper, lower, mid = ind.donchian(high, low, period)
    ref_upper = pd.Series(high).rolling(period).max().to_numpy()
    ref_lower = pd.Series(low).rolling(period).min().to_numpy()
    assert_matches(upper, ref_upper, period - 1)
    assert_matches(lower, ref_lower, period - 1)
    assert_matches(mid, (ref_upper + ref_lower) / 2, period - 1)


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("ema_p", "atr_p", "mult"), [(20, 10, 2.0), (5, 30, 1.0)])
def test_keltner_matches_reference(seed: int, ema_p: int, atr_p: int, mult: float) -> None:
    _, high, low, close = random_bars(seed)
    mid, upper, lower = ind.keltner(high, low, close, ema_p, atr_p, mult)
    warm = max(ema_p, atr_p) - 1
    width = mult * ref_atr(high, low, close, atr_p)
    assert_matches(mid, ref_ema(close, ema_p), ema_p - 1)
    assert_matches(upper, ref_ema(close, ema_p) + width, warm)
    assert_matches(lower, ref_ema(close, ema_p) - width, warm)


# ----------------------------------------------------------------------------- volatility, trend


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("period", [1, 14, 40])
def test_atr_matches_reference(seed: int, period: int) -> None:
    _, high, low, close = random_bars(seed)
    assert_matches(ind.atr(high, low, close, period), ref_atr(high, low, close, period), period - 1)


def test_true_range_first_bar_conventions() -> None:
    _, high, low, close = random_bars(9, 20)
    assert ind.true_range(high, low, close, True)[0] == pytest.approx(high[0] - low[0])
    assert np.isnan(ind.true_range(high, low, close, False)[0])
    np.testing.assert_allclose(
        ind.true_range(high, low, close, True)[1:],
        ref_tr(high, low, close, False)[1:],
        rtol=RTOL,
        atol=ATOL,
    )


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("di_p", "adx_p"), [(14, 14), (5, 20), (20, 3)])
def test_adx_matches_reference(seed: int, di_p: int, adx_p: int) -> None:
    _, high, low, close = random_bars(seed)
    plus, minus, strength = ind.adx(high, low, close, di_p, adx_p)
    ref_plus, ref_minus, ref_adx = ref_dmi(high, low, close, di_p, adx_p)
    assert_matches(plus, ref_plus, di_p)
    assert_matches(minus, ref_minus, di_p)
    assert_matches(strength, ref_adx, di_p + adx_p - 1)
    assert ((strength[di_p + adx_p :] >= 0) & (strength[di_p + adx_p :] <= 100)).all()


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize(("atr_p", "factor"), [(10, 3.0), (2, 1.0), (30, 4.5)])
def test_supertrend_matches_reference(seed: int, atr_p: int, factor: float) -> None:
    _, high, low, close = random_bars(seed)
    line, trend = ind.supertrend(high, low, close, atr_p, factor)
    ref_line, ref_dir = ref_supertrend(high, low, close, atr_p, factor)
    assert_matches(line, ref_line, atr_p - 1)
    assert_matches(trend, -ref_dir, atr_p - 1)
    assert set(np.unique(trend[atr_p - 1 :])) <= {-1.0, 1.0}
    assert len(np.unique(trend[atr_p - 1 :])) == 2, "random walk should flip the trend"


def test_supertrend_line_is_below_price_in_an_uptrend() -> None:
    close = np.linspace(100.0, 200.0, 80)
    high, low = close + 0.5, close - 0.5
    line, trend = ind.supertrend(high, low, close, 5, 2.0)
    assert (trend[10:] == 1.0).all()
    assert (line[10:] < close[10:]).all()
