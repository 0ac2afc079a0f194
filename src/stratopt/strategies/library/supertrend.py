"""SuperTrend: always positioned on the side of the ATR trailing band."""

from __future__ import annotations

import numpy as np
from numba import njit

from stratopt.engine.indicators import supertrend
from stratopt.strategies.base import StrategyType
from stratopt.strategies.params import float_param, int_param
from stratopt.strategies.pine import script
from stratopt.strategies.rules import F64, I8


@njit(cache=True, nogil=True)
def signal(open_: F64, high: F64, low: F64, close: F64, volume: F64, params: F64) -> I8:
    _, trend = supertrend(high, low, close, int(params[0]), params[1])
    out = np.zeros(close.shape[0], dtype=np.int8)
    for t in range(close.shape[0]):
        if trend[t] > 0:
            out[t] = 1
        elif trend[t] < 0:
            out[t] = -1
    return out


PINE = script("""
atr_period = input.int({atr_period}, "ATR length", minval=2, maxval=50)
factor = input.float({factor}, "ATR multiplier", minval=1, maxval=6, step=0.1)

[stLine, stDirection] = ta.supertrend(factor, atr_period)
atrValue = ta.atr(atr_period)
plot(stLine, "SuperTrend", color=stDirection < 0 ? color.green : color.red)

// Pine's direction is -1 in an uptrend; no position until the ATR exists.
int target = na(atrValue) ? 0 : stDirection < 0 ? 1 : -1
""")

STRATEGY = StrategyType(
    name="supertrend",
    display_name="SuperTrend",
    category="trend_following",
    risk_level="medium",
    description=(
        "Long while price holds above the SuperTrend band and short while below it, flipping "
        "when a close breaks the ATR-based trailing line. Always in the market once warmed up."
    ),
    params=(
        int_param("atr_period", 2, 50, 10, description="ATR length in bars."),
        float_param("factor", 1.0, 6.0, 3.0, step=0.1, description="ATR multiple of the band."),
    ),
    signal=signal,
    pine=PINE,
)
