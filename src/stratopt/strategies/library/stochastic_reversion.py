"""Stochastic reversion: %K/%D crosses inside the extreme zones, exit at the opposite zone."""

from __future__ import annotations

import numpy as np
from numba import njit

from stratopt.engine.indicators import stochastic
from stratopt.strategies.base import StrategyType
from stratopt.strategies.params import Constraint, float_param, int_param
from stratopt.strategies.pine import script
from stratopt.strategies.rules import F64, I8, cross_down, cross_up


@njit(cache=True, nogil=True)
def signal(open_: F64, high: F64, low: F64, close: F64, volume: F64, params: F64) -> I8:
    oversold, overbought = params[3], params[4]
    k, d = stochastic(high, low, close, int(params[0]), int(params[1]), int(params[2]))
    out = np.zeros(close.shape[0], dtype=np.int8)
    target = 0
    for t in range(1, close.shape[0]):
        if (target == 1 and k[t] > overbought) or (target == -1 and k[t] < oversold):
            target = 0
        if cross_up(k[t], d[t], k[t - 1], d[t - 1]) and k[t] < oversold:
            target = 1
        elif cross_down(k[t], d[t], k[t - 1], d[t - 1]) and k[t] > overbought:
            target = -1
        out[t] = target
    return out


PINE = script(
    """
k_period = input.int({k_period}, "%K length", minval=5, maxval=50)
smooth_k = input.int({smooth_k}, "%K smoothing", minval=1, maxval=10)
d_period = input.int({d_period}, "%D length", minval=1, maxval=10)
oversold = input.float({oversold}, "Oversold level", minval=5, maxval=40)
overbought = input.float({overbought}, "Overbought level", minval=60, maxval=95)

k = ta.sma(ta.stoch(close, high, low, k_period), smooth_k)
d = ta.sma(k, d_period)
plot(k, "%K", color=color.blue)
plot(d, "%D", color=color.orange)
hline(oversold, "Oversold")
hline(overbought, "Overbought")

crossUp = ta.crossover(k, d)
crossDown = ta.crossunder(k, d)
var int target = 0
if target == 1 and k > overbought
    target := 0
else if target == -1 and k < oversold
    target := 0
if crossUp and k < oversold
    target := 1
else if crossDown and k > overbought
    target := -1
""",
    overlay=False,
)

STRATEGY = StrategyType(
    name="stochastic_reversion",
    display_name="Stochastic Reversion",
    category="mean_reversion",
    risk_level="medium",
    description=(
        "Buys when %K crosses above %D in the oversold zone and shorts when it crosses below "
        "in the overbought zone; a long exits once %K is overbought and a short once oversold."
    ),
    params=(
        int_param("k_period", 5, 50, 14, description="Lookback of the raw stochastic."),
        int_param("smooth_k", 1, 10, 3, description="SMA smoothing of %K (1 = fast stoch)."),
        int_param("d_period", 1, 10, 3, description="SMA length of %D."),
        float_param("oversold", 5.0, 40.0, 20.0, step=1.0, description="Oversold level."),
        float_param("overbought", 60.0, 95.0, 80.0, step=1.0, description="Overbought level."),
    ),
    constraints=(Constraint("oversold", "<", "overbought"),),
    signal=signal,
    pine=PINE,
)
