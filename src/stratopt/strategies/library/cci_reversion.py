"""CCI reversion: enter as CCI comes back from an extreme, exit at the zero line."""

from __future__ import annotations

import numpy as np
from numba import njit

from stratopt.engine.indicators import cci
from stratopt.strategies.base import StrategyType
from stratopt.strategies.params import float_param, int_param
from stratopt.strategies.pine import script
from stratopt.strategies.rules import F64, I8


@njit(cache=True, nogil=True)
def signal(open_: F64, high: F64, low: F64, close: F64, volume: F64, params: F64) -> I8:
    level = params[1]
    c = cci((high + low + close) / 3.0, int(params[0]))
    out = np.zeros(close.shape[0], dtype=np.int8)
    target = 0
    for t in range(1, close.shape[0]):
        if (target == 1 and c[t] >= 0.0) or (target == -1 and c[t] <= 0.0):
            target = 0
        if c[t] > -level and c[t - 1] <= -level:
            target = 1
        elif c[t] < level and c[t - 1] >= level:
            target = -1
        out[t] = target
    return out


PINE = script(
    """
period = input.int({period}, "CCI length", minval=5, maxval=100)
level = input.float({level}, "Extreme level", minval=50, maxval=250, step=5)

c = ta.cci(hlc3, period)
plot(c, "CCI", color=color.blue)
hline(level, "Upper extreme")
hline(-level, "Lower extreme")

crossUp = ta.crossover(c, -level)
crossDown = ta.crossunder(c, level)
var int target = 0
if target == 1 and c >= 0
    target := 0
else if target == -1 and c <= 0
    target := 0
if crossUp
    target := 1
else if crossDown
    target := -1
""",
    overlay=False,
)

STRATEGY = StrategyType(
    name="cci_reversion",
    display_name="CCI Reversion",
    category="mean_reversion",
    risk_level="medium",
    description=(
        "Buys when CCI climbs back above minus the extreme level and shorts when it drops back "
        "below the level, closing positions when CCI reaches zero."
    ),
    params=(
        int_param("period", 5, 100, 20, description="CCI length on the typical price."),
        float_param("level", 50.0, 250.0, 100.0, step=5.0, description="Extreme CCI level."),
    ),
    signal=signal,
    pine=PINE,
)
