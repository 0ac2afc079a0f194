"""Donchian breakout (turtle): enter on an N-bar high or low, exit on a shorter opposite extreme."""

from __future__ import annotations

import numpy as np
from numba import njit

from stratopt.engine.indicators import highest, lowest
from stratopt.strategies.base import StrategyType
from stratopt.strategies.params import Constraint, int_param
from stratopt.strategies.pine import script
from stratopt.strategies.rules import F64, I8, previous


@njit(cache=True, nogil=True)
def signal(open_: F64, high: F64, low: F64, close: F64, volume: F64, params: F64) -> I8:
    entry_n, exit_n = int(params[0]), int(params[1])
    entry_high = previous(highest(high, entry_n))
    entry_low = previous(lowest(low, entry_n))
    exit_high = previous(highest(high, exit_n))
    exit_low = previous(lowest(low, exit_n))
    out = np.zeros(close.shape[0], dtype=np.int8)
    target = 0
    for t in range(close.shape[0]):
        c = close[t]
        if (target == 1 and c < exit_low[t]) or (target == -1 and c > exit_high[t]):
            target = 0
        if c > entry_high[t]:
            target = 1
        elif c < entry_low[t]:
            target = -1
        out[t] = target
    return out


PINE = script("""
entry_period = input.int({entry_period}, "Entry channel length", minval=10, maxval=100, step=5)
exit_period = input.int({exit_period}, "Exit channel length", minval=5, maxval=50, step=5)

// Channels of the bars before this one: a close can never exceed a high that includes it.
entryHigh = ta.highest(high, entry_period)[1]
entryLow = ta.lowest(low, entry_period)[1]
exitHigh = ta.highest(high, exit_period)[1]
exitLow = ta.lowest(low, exit_period)[1]
plot(entryHigh, "Entry high", color=color.green)
plot(entryLow, "Entry low", color=color.red)

var int target = 0
if target == 1 and close < exitLow
    target := 0
else if target == -1 and close > exitHigh
    target := 0
if close > entryHigh
    target := 1
else if close < entryLow
    target := -1
""")

STRATEGY = StrategyType(
    name="donchian_breakout",
    display_name="Donchian Breakout (Turtle)",
    category="breakout",
    risk_level="high",
    description=(
        "Turtle-style: goes long when price closes above the highest high of the entry window "
        "and short below its lowest low, exiting on a break of the shorter exit window."
    ),
    params=(
        int_param("entry_period", 10, 100, 20, step=5, description="Breakout window in bars."),
        int_param("exit_period", 5, 50, 10, step=5, description="Exit window in bars."),
    ),
    constraints=(Constraint("exit_period", "<", "entry_period"),),
    signal=signal,
    pine=PINE,
)
