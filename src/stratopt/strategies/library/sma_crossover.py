"""Two simple moving averages: long when the fast one crosses above the slow one."""

from __future__ import annotations

import numpy as np
from numba import njit

from stratopt.strategies.base import StrategyType
from stratopt.strategies.params import Constraint, int_param
from stratopt.strategies.pine import script
from stratopt.strategies.rules import F64, I8, cross_down, cross_up


@njit(cache=True, nogil=True)
def signal(open_: F64, high: F64, low: F64, close: F64, volume: F64, params: F64) -> I8:
    """Both SMAs and the crossover in one pass with no intermediate arrays.

    This is the strategy optimizations run most, so it gets a fused kernel; the running sums
    are updated in exactly the order `indicators.sma` uses, so the values (and the crossings)
    are bit-identical to `crossover_positions(sma(close, fast), sma(close, slow))`, which the
    tests check.
    """
    fast, slow = int(params[0]), int(params[1])
    n = close.shape[0]
    out = np.zeros(n, dtype=np.int8)
    f_sum = s_sum = 0.0
    f_nans = s_nans = 0
    f_prev = s_prev = np.nan
    target = 0
    for t in range(n):
        v = close[t]
        if np.isnan(v):
            f_nans += 1
            s_nans += 1
        else:
            f_sum += v
            s_sum += v
        if t >= fast:
            old = close[t - fast]
            if np.isnan(old):
                f_nans -= 1
            else:
                f_sum -= old
        if t >= slow:
            old = close[t - slow]
            if np.isnan(old):
                s_nans -= 1
            else:
                s_sum -= old
        f_now = f_sum / fast if t >= fast - 1 and f_nans == 0 else np.nan
        s_now = s_sum / slow if t >= slow - 1 and s_nans == 0 else np.nan
        if t > 0:
            if cross_up(f_now, s_now, f_prev, s_prev):
                target = 1
            elif cross_down(f_now, s_now, f_prev, s_prev):
                target = -1
            out[t] = target
        f_prev, s_prev = f_now, s_now
    return out


PINE = script("""
fast = input.int({fast}, "Fast SMA length", minval=2, maxval=200)
slow = input.int({slow}, "Slow SMA length", minval=5, maxval=400)

fastMa = ta.sma(close, fast)
slowMa = ta.sma(close, slow)
plot(fastMa, "Fast SMA", color=color.teal)
plot(slowMa, "Slow SMA", color=color.orange)

crossUp = ta.crossover(fastMa, slowMa)
crossDown = ta.crossunder(fastMa, slowMa)
var int target = 0
if crossUp
    target := 1
else if crossDown
    target := -1
""")

STRATEGY = StrategyType(
    name="sma_crossover",
    display_name="SMA Crossover",
    category="trend_following",
    risk_level="low",
    description=(
        "Goes long when the fast simple moving average crosses above the slow one and short "
        "when it crosses below. A slow, classic trend filter that trades rarely."
    ),
    params=(
        int_param("fast", 2, 200, 10, log=True, description="Fast SMA length in bars."),
        int_param("slow", 5, 400, 50, log=True, description="Slow SMA length in bars."),
    ),
    constraints=(Constraint("fast", "<", "slow"),),
    signal=signal,
    pine=PINE,
)
