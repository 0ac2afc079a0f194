"""Signal rules shared by several strategies, as numba kernels producing int8 target positions.

Every rule is a small state machine over bars whose conditions are plain comparisons. A
comparison with NaN is false in numba and in Pine alike, so during an indicator's warm-up
no condition fires and the target stays at its initial 0; the Pine templates rely on the
same fact, which is what keeps the two implementations bar-for-bar identical.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
from numba import njit

F64 = npt.NDArray[np.float64]
I8 = npt.NDArray[np.int8]


@njit(cache=True, nogil=True)
def cross_up(a: float, b: float, a_prev: float, b_prev: float) -> bool:
    """`ta.crossover(a, b)` from current and previous values; false if any is NaN.

    Takes scalars rather than (arrays, t): passing arrays to a helper on every bar costs a
    reference-count round trip per call, which dominated the kernels' run time (~15x).
    """
    return a > b and a_prev <= b_prev


@njit(cache=True, nogil=True)
def cross_down(a: float, b: float, a_prev: float, b_prev: float) -> bool:
    """`ta.crossunder` from the current and previous values; false if any is NaN."""
    return a < b and a_prev >= b_prev


@njit(cache=True, nogil=True)
def crossover_positions(fast: F64, slow: F64) -> I8:
    """Long from a cross of `fast` above `slow`, short from a cross below; flat before the first."""
    n = fast.shape[0]
    out = np.zeros(n, dtype=np.int8)
    target = 0
    for t in range(1, n):
        if cross_up(fast[t], slow[t], fast[t - 1], slow[t - 1]):
            target = 1
        elif cross_down(fast[t], slow[t], fast[t - 1], slow[t - 1]):
            target = -1
        out[t] = target
    return out


@njit(cache=True, nogil=True)
def band_reversion_positions(close: F64, upper: F64, mid: F64, lower: F64) -> I8:
    """Fade an excursion outside the bands once price closes back inside; exit at the middle.

    Waiting for the close back inside (rather than entering while price is still outside)
    avoids standing in front of a band walk, and keeps this rule from being the exact
    mirror image of `band_breakout_positions`.
    """
    n = close.shape[0]
    out = np.zeros(n, dtype=np.int8)
    target = 0
    for t in range(n):
        if (target == 1 and close[t] >= mid[t]) or (target == -1 and close[t] <= mid[t]):
            target = 0
        if target == 0 and t > 0:
            if cross_up(close[t], lower[t], close[t - 1], lower[t - 1]):
                target = 1
            elif cross_down(close[t], upper[t], close[t - 1], upper[t - 1]):
                target = -1
        out[t] = target
    return out


@njit(cache=True, nogil=True)
def band_breakout_positions(close: F64, upper: F64, mid: F64, lower: F64) -> I8:
    """Follow closes outside the bands; exit when price falls back through the middle line."""
    n = close.shape[0]
    out = np.zeros(n, dtype=np.int8)
    target = 0
    for t in range(n):
        if (target == 1 and close[t] < mid[t]) or (target == -1 and close[t] > mid[t]):
            target = 0
        if close[t] > upper[t]:
            target = 1
        elif close[t] < lower[t]:
            target = -1
        out[t] = target
    return out


SOURCE_CHOICES: tuple[str, ...] = ("close", "hl2", "hlc3", "ohlc4")
"""Price sources selectable by a categorical `source` parameter, by index; Pine names alike."""

PINE_SOURCE_SWITCH = """src = switch source
    "hl2" => hl2
    "hlc3" => hlc3
    "ohlc4" => ohlc4
    => close"""
"""Pine counterpart of `price_source`; needs a `source` string input with SOURCE_CHOICES."""


@njit(cache=True, nogil=True)
def price_source(open_: F64, high: F64, low: F64, close: F64, which: int) -> F64:
    """The series picked by index into SOURCE_CHOICES, computed as Pine's built-ins are."""
    if which == 1:
        return (high + low) / 2.0
    if which == 2:
        return (high + low + close) / 3.0
    if which == 3:
        return (open_ + high + low + close) / 4.0
    return close


@njit(cache=True, nogil=True)
def previous(x: F64) -> F64:
    """The series one bar back (`x[1]` in Pine), NaN on the first bar."""
    out = np.full(x.shape[0], np.nan)
    out[1:] = x[:-1]
    return out
