"""ADX trend: trade directional-index crosses only when ADX says the trend is strong."""

from __future__ import annotations

import numpy as np
from numba import njit

from stratopt.engine.indicators import adx
from stratopt.strategies.base import StrategyType
from stratopt.strategies.params import float_param, int_param
from stratopt.strategies.pine import script
from stratopt.strategies.rules import F64, I8, cross_down, cross_up


@njit(cache=True, nogil=True)
def signal(open_: F64, high: F64, low: F64, close: F64, volume: F64, params: F64) -> I8:
    threshold = params[2]
    plus, minus, strength = adx(high, low, close, int(params[0]), int(params[1]))
    out = np.zeros(close.shape[0], dtype=np.int8)
    side = 0
    target = 0
    for t in range(1, close.shape[0]):
        if cross_up(plus[t], minus[t], plus[t - 1], minus[t - 1]):
            side = 1
            if target == -1:
                target = 0
        elif cross_down(plus[t], minus[t], plus[t - 1], minus[t - 1]):
            side = -1
            if target == 1:
                target = 0
        if target == 0 and strength[t] > threshold:
            target = side
        out[t] = target
    return out


PINE = script(
    """
di_period = input.int({di_period}, "DI length", minval=5, maxval=50)
adx_period = input.int({adx_period}, "ADX smoothing", minval=5, maxval=50)
adx_threshold = input.float({adx_threshold}, "Minimum ADX", minval=10, maxval=50)

[diPlus, diMinus, adxValue] = ta.dmi(di_period, adx_period)
plot(diPlus, "+DI", color=color.green)
plot(diMinus, "-DI", color=color.red)
plot(adxValue, "ADX", color=color.gray)
hline(adx_threshold, "Minimum ADX")

crossUp = ta.crossover(diPlus, diMinus)
crossDown = ta.crossunder(diPlus, diMinus)
var int side = 0
var int target = 0
if crossUp
    side := 1
    if target == -1
        target := 0
else if crossDown
    side := -1
    if target == 1
        target := 0
if target == 0 and adxValue > adx_threshold
    target := side
""",
    overlay=False,
)

STRATEGY = StrategyType(
    name="adx_trend",
    display_name="ADX Trend (DI Cross)",
    category="trend_following",
    risk_level="low",
    description=(
        "Takes the side of the last +DI/-DI crossover, but only enters while ADX is above the "
        "threshold; the opposite crossover closes the position. Sits out trendless chop."
    ),
    params=(
        int_param("di_period", 5, 50, 14, description="Wilder length of +DI and -DI."),
        int_param("adx_period", 5, 50, 14, description="Wilder smoothing of ADX."),
        float_param("adx_threshold", 10.0, 50.0, 25.0, step=1.0, description="Minimum ADX."),
    ),
    signal=signal,
    pine=PINE,
)
