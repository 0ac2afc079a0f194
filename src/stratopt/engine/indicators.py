"""Technical indicators as numba kernels: float64 arrays in, float64 arrays out.

Conventions follow TradingView's `ta.*` built-ins so that a strategy exported to Pine Script
computes the same numbers as its backtest here:

- Warm-up bars are NaN, never zero, so a rule comparing against them is simply false.
- A NaN inside a rolling window (SMA, WMA, stdev, highest/lowest, mean deviation) makes that
  window NaN, as `ta.sma` does.
- EMA and RMA (Wilder) are seeded with the SMA of the first `period` consecutive valid
  values and are NaN before that. This is what TA-Lib and TradingView's built-in `ta.ema`
  and `ta.rma` do; the `pine_ema` snippet in TradingView's manual seeds with the first value
  instead, which differs only during the first few multiples of `period` bars. Leading NaNs
  (the warm-up of an upstream indicator, as in the MACD signal line) are skipped; a NaN
  after seeding leaves the average unchanged.
- True range on the first bar is `high - low` (`ta.tr(true)`, what `ta.atr` uses); ADX uses
  `ta.tr(false)` (NaN on the first bar) exactly like `ta.dmi`.
- Standard deviation is the population one (`ta.stdev`, biased), as in `ta.bb`.
- A division by zero (flat stochastic range, zero mean deviation, zero base price) yields NaN.

Inputs are assumed finite after their own warm-up prefix; `period` must be >= 1.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

F64 = npt.NDArray[np.float64]


@njit(cache=True, nogil=True)
def _check_period(period: int) -> None:
    if period < 1:
        raise ValueError("period must be >= 1")


@njit(cache=True, nogil=True)
def sma(x: F64, period: int) -> F64:
    """Simple moving average; a running sum keeps it O(n) for long optimization sweeps."""
    _check_period(period)
    n = x.shape[0]
    out = np.full(n, np.nan)
    total = 0.0
    nans = 0
    for t in range(n):
        v = x[t]
        if np.isnan(v):
            nans += 1
        else:
            total += v
        if t >= period:
            old = x[t - period]
            if np.isnan(old):
                nans -= 1
            else:
                total -= old
        if t >= period - 1 and nans == 0:
            out[t] = total / period
    return out


@njit(cache=True, nogil=True)
def wma(x: F64, period: int) -> F64:
    """Linearly weighted moving average (weights period..1, newest heaviest, as `ta.wma`)."""
    _check_period(period)
    n = x.shape[0]
    out = np.full(n, np.nan)
    denom = period * (period + 1) / 2.0
    for t in range(period - 1, n):
        acc = 0.0
        for i in range(period):
            acc += (period - i) * x[t - i]
        out[t] = acc / denom
    return out


@njit(cache=True, nogil=True)
def _smooth(x: F64, period: int, alpha: float) -> F64:
    """Exponential smoothing seeded with the SMA of the first `period` consecutive values."""
    n = x.shape[0]
    out = np.full(n, np.nan)
    run = 0
    seed = 0.0
    prev = np.nan
    for t in range(n):
        v = x[t]
        if np.isnan(prev):
            if np.isnan(v):
                run = 0
                seed = 0.0
                continue
            run += 1
            seed += v
            if run == period:
                prev = seed / period
                out[t] = prev
            continue
        if not np.isnan(v):
            prev = alpha * v + (1.0 - alpha) * prev
        out[t] = prev
    return out


@njit(cache=True, nogil=True)
def ema(x: F64, period: int) -> F64:
    """Exponential moving average, alpha = 2 / (period + 1)."""
    _check_period(period)
    return _smooth(x, period, 2.0 / (period + 1.0))


@njit(cache=True, nogil=True)
def rma(x: F64, period: int) -> F64:
    """Wilder's moving average (`ta.rma`), alpha = 1 / period; the smoothing of RSI and ATR."""
    _check_period(period)
    return _smooth(x, period, 1.0 / period)


@njit(cache=True, nogil=True)
def stdev(x: F64, period: int) -> F64:
    """Rolling population standard deviation.

    Two passes per window instead of a running sum of squares: prices sit far from zero, and
    E[x^2] - E[x]^2 loses most significant digits to cancellation.
    """
    _check_period(period)
    n = x.shape[0]
    out = np.full(n, np.nan)
    mean = sma(x, period)
    for t in range(period - 1, n):
        m = mean[t]
        if np.isnan(m):
            continue
        acc = 0.0
        for i in range(t - period + 1, t + 1):
            d = x[i] - m
            acc += d * d
        out[t] = np.sqrt(acc / period)
    return out


@njit(cache=True, nogil=True)
def highest(x: F64, period: int) -> F64:
    """Rolling maximum over the last `period` bars including the current one."""
    _check_period(period)
    n = x.shape[0]
    out = np.full(n, np.nan)
    for t in range(period - 1, n):
        best = x[t]
        for i in range(t - period + 1, t):
            v = x[i]
            if np.isnan(v) or v > best:
                best = v
        if not np.isnan(best):
            out[t] = best
    return out


@njit(cache=True, nogil=True)
def lowest(x: F64, period: int) -> F64:
    """Rolling minimum over the last `period` bars including the current one."""
    _check_period(period)
    n = x.shape[0]
    out = np.full(n, np.nan)
    for t in range(period - 1, n):
        best = x[t]
        for i in range(t - period + 1, t):
            v = x[i]
            if np.isnan(v) or v < best:
                best = v
        if not np.isnan(best):
            out[t] = best
    return out


@njit(cache=True, nogil=True)
def true_range(high: F64, low: F64, close: F64, first_bar_range: bool) -> F64:
    """True range; `first_bar_range` picks `ta.tr(true)` (bar 0 = high - low) or NaN on bar 0."""
    n = high.shape[0]
    out = np.full(n, np.nan)
    if n == 0:
        return out
    if first_bar_range:
        out[0] = high[0] - low[0]
    for t in range(1, n):
        pc = close[t - 1]
        out[t] = max(high[t] - low[t], abs(high[t] - pc), abs(low[t] - pc))
    return out


@njit(cache=True, nogil=True)
def atr(high: F64, low: F64, close: F64, period: int) -> F64:
    """Average true range: Wilder's RMA of the true range, first value at bar period - 1."""
    return rma(true_range(high, low, close, True), period)


@njit(cache=True, nogil=True)
def rsi(x: F64, period: int) -> F64:
    """Relative strength index with Wilder smoothing; first value at bar `period`."""
    _check_period(period)
    n = x.shape[0]
    up = np.full(n, np.nan)
    down = np.full(n, np.nan)
    for t in range(1, n):
        change = x[t] - x[t - 1]
        up[t] = max(change, 0.0)
        down[t] = max(-change, 0.0)
    avg_up = rma(up, period)
    avg_down = rma(down, period)
    out = np.full(n, np.nan)
    for t in range(n):
        u = avg_up[t]
        d = avg_down[t]
        if np.isnan(u) or np.isnan(d):
            continue
        if d == 0.0:
            out[t] = 100.0
        elif u == 0.0:
            out[t] = 0.0
        else:
            out[t] = 100.0 - 100.0 / (1.0 + u / d)
    return out


@njit(cache=True, nogil=True)
def macd(x: F64, fast: int, slow: int, signal: int) -> tuple[F64, F64, F64]:
    """MACD line (EMA fast - EMA slow), its EMA signal line, and the histogram."""
    line = ema(x, fast) - ema(x, slow)
    sig = ema(line, signal)
    return line, sig, line - sig


@njit(cache=True, nogil=True)
def bollinger(x: F64, period: int, mult: float) -> tuple[F64, F64, F64]:
    """Bollinger bands (mid, upper, lower): SMA +/- mult * population stdev, as `ta.bb`."""
    mid = sma(x, period)
    width = mult * stdev(x, period)
    return mid, mid + width, mid - width


@njit(cache=True, nogil=True)
def stochastic(
    high: F64, low: F64, close: F64, k_period: int, smooth_k: int, d_period: int
) -> tuple[F64, F64]:
    """Stochastic oscillator (%K, %D): %K = SMA(smooth_k) of the raw `ta.stoch`, %D = SMA of %K."""
    n = close.shape[0]
    hh = highest(high, k_period)
    ll = lowest(low, k_period)
    raw = np.full(n, np.nan)
    for t in range(n):
        rng = hh[t] - ll[t]
        if rng != 0.0:
            raw[t] = 100.0 * (close[t] - ll[t]) / rng
    k = sma(raw, smooth_k)
    return k, sma(k, d_period)


@njit(cache=True, nogil=True)
def donchian(high: F64, low: F64, period: int) -> tuple[F64, F64, F64]:
    """Donchian channel (upper, lower, mid) over the last `period` bars including this one."""
    upper = highest(high, period)
    lower = lowest(low, period)
    return upper, lower, (upper + lower) / 2.0


@njit(cache=True, nogil=True)
def momentum(x: F64, period: int) -> F64:
    """Price change over `period` bars (`ta.mom`)."""
    _check_period(period)
    n = x.shape[0]
    out = np.full(n, np.nan)
    for t in range(period, n):
        out[t] = x[t] - x[t - period]
    return out


@njit(cache=True, nogil=True)
def roc(x: F64, period: int) -> F64:
    """Rate of change in percent over `period` bars (`ta.roc`)."""
    _check_period(period)
    n = x.shape[0]
    out = np.full(n, np.nan)
    for t in range(period, n):
        base = x[t - period]
        if base != 0.0:
            out[t] = 100.0 * (x[t] - base) / base
    return out


@njit(cache=True, nogil=True)
def mean_deviation(x: F64, period: int) -> F64:
    """Rolling mean absolute deviation from the window mean (`ta.dev`)."""
    _check_period(period)
    n = x.shape[0]
    out = np.full(n, np.nan)
    mean = sma(x, period)
    for t in range(period - 1, n):
        m = mean[t]
        if np.isnan(m):
            continue
        acc = 0.0
        for i in range(t - period + 1, t + 1):
            acc += abs(x[i] - m)
        out[t] = acc / period
    return out


@njit(cache=True, nogil=True)
def cci(x: F64, period: int) -> F64:
    """Commodity channel index (`ta.cci`); pass the typical price (hlc3) as `x` for the classic."""
    n = x.shape[0]
    mean = sma(x, period)
    dev = mean_deviation(x, period)
    out = np.full(n, np.nan)
    for t in range(n):
        d = dev[t]
        if d != 0.0 and not np.isnan(d):
            out[t] = (x[t] - mean[t]) / (0.015 * d)
    return out


@njit(cache=True, nogil=True)
def adx(high: F64, low: F64, close: F64, di_period: int, adx_period: int) -> tuple[F64, F64, F64]:
    """Directional movement (+DI, -DI, ADX) with Wilder smoothing, as `ta.dmi`.

    +DI/-DI start at bar `di_period`, ADX at bar `di_period + adx_period - 1`. A zero
    smoothed true range repeats the previous DI (Pine's `fixnan`) rather than dividing by 0.
    """
    _check_period(di_period)
    _check_period(adx_period)
    n = close.shape[0]
    plus_dm = np.full(n, np.nan)
    minus_dm = np.full(n, np.nan)
    for t in range(1, n):
        up = high[t] - high[t - 1]
        down = low[t - 1] - low[t]
        plus_dm[t] = up if (up > down and up > 0.0) else 0.0
        minus_dm[t] = down if (down > up and down > 0.0) else 0.0
    tr = rma(true_range(high, low, close, False), di_period)
    sm_plus = rma(plus_dm, di_period)
    sm_minus = rma(minus_dm, di_period)
    plus = np.full(n, np.nan)
    minus = np.full(n, np.nan)
    dx = np.full(n, np.nan)
    last_plus = np.nan
    last_minus = np.nan
    for t in range(n):
        if tr[t] != 0.0 and not np.isnan(tr[t]):
            last_plus = 100.0 * sm_plus[t] / tr[t]
            last_minus = 100.0 * sm_minus[t] / tr[t]
        plus[t] = last_plus
        minus[t] = last_minus
        total = last_plus + last_minus
        if not np.isnan(total):
            dx[t] = abs(last_plus - last_minus) / (total if total != 0.0 else 1.0)
    return plus, minus, 100.0 * rma(dx, adx_period)


@njit(cache=True, nogil=True)
def supertrend(high: F64, low: F64, close: F64, atr_period: int, factor: float) -> tuple[F64, F64]:
    """SuperTrend line and trend (+1 up, -1 down), a literal port of `ta.supertrend`.

    Pine's own `direction` output is the negation (-1 means up); +1-for-up reads better next
    to target positions. Both are NaN until the ATR exists (bar atr_period - 1). Pine's
    band ratchet, including its `nz()` of the previous bands, is kept exactly so that the
    exported script flips on the same bars.
    """
    n = close.shape[0]
    a = atr(high, low, close, atr_period)
    line = np.full(n, np.nan)
    trend = np.full(n, np.nan)
    prev_upper = np.nan
    prev_lower = np.nan
    prev_line = np.nan
    for t in range(n):
        src = (high[t] + low[t]) / 2.0
        upper = src + factor * a[t]
        lower = src - factor * a[t]
        pu = 0.0 if np.isnan(prev_upper) else prev_upper
        pl = 0.0 if np.isnan(prev_lower) else prev_lower
        prev_close = close[t - 1] if t > 0 else np.nan
        if not (lower > pl or prev_close < pl):
            lower = pl
        if not (upper < pu or prev_close > pu):
            upper = pu
        if t == 0 or np.isnan(a[t - 1]):
            up_trend = False
        elif prev_line == pu:
            up_trend = close[t] > upper
        else:
            up_trend = not (close[t] < lower)
        cur = lower if up_trend else upper
        if not np.isnan(a[t]):
            line[t] = cur
            trend[t] = 1.0 if up_trend else -1.0
        prev_upper = upper
        prev_lower = lower
        prev_line = cur
    return line, trend


@njit(cache=True, nogil=True)
def keltner(
    high: F64, low: F64, close: F64, ema_period: int, atr_period: int, mult: float
) -> tuple[F64, F64, F64]:
    """Keltner channel (mid, upper, lower): EMA(close) +/- mult * ATR (Wilder).

    Deliberately not `ta.kc`, which widens by an EMA of the true range; the exported Pine
    spells out `ta.ema` and `ta.atr` so both sides agree.
    """
    mid = ema(close, ema_period)
    width = mult * atr(high, low, close, atr_period)
    return mid, mid + width, mid - width
