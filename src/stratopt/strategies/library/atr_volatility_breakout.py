"""Volatility breakout: follow a one-bar move larger than a multiple of ATR for a fixed time."""

from __future__ import annotations

import numpy as np
from numba import njit

from stratopt.engine.indicators import atr
from stratopt.strategies.base import StrategyType
from stratopt.strategies.params import float_param, int_param
from stratopt.strategies.pine import script
from stratopt.strategies.rules import F64, I8, previous


@njit(cache=True, nogil=True)
def signal(open_: F64, high: F64, low: F64, close: F64, volume: F64, params: F64) -> I8:
    mult, hold_bars = params[1], int(params[2])
    prior_atr = previous(atr(high, low, close, int(params[0])))
    prior_close = previous(close)
    out = np.zeros(close.shape[0], dtype=np.int8)
    target = 0
    held = 0
    for t in range(close.shape[0]):
        if target != 0:
            held += 1
            if held >= hold_bars:
                target = 0
        move = close[t] - prior_close[t]
        threshold = mult * prior_atr[t]
        if move > threshold:
            target = 1
            held = 0
        elif move < -threshold:
            target = -1
            held = 0
        out[t] = target
    return out


PINE = script("""
atr_period = input.int({atr_period}, "ATR length", minval=2, maxval=50)
mult = input.float({mult}, "Move in ATRs", minval=0.25, maxval=4, step=0.05)
hold_bars = input.int({hold_bars}, "Bars to hold", minval=1, maxval=50)

// Compare against the ATR before this bar so the breakout bar cannot widen its own hurdle.
priorAtr = ta.atr(atr_period)[1]
move = close - close[1]
threshold = mult * priorAtr

var int target = 0
var int held = 0
if target != 0
    held += 1
    if held >= hold_bars
        target := 0
if move > threshold
    target := 1
    held := 0
else if move < -threshold
    target := -1
    held := 0
""")

STRATEGY = StrategyType(
    name="atr_volatility_breakout",
    display_name="ATR Volatility Breakout",
    category="volatility",
    risk_level="high",
    description=(
        "Enters in the direction of any close-to-close move larger than a multiple of the "
        "prior ATR and holds for a fixed number of bars. Catches sudden volatility bursts."
    ),
    params=(
        int_param("atr_period", 2, 50, 14, description="ATR length in bars."),
        float_param("mult", 0.25, 4.0, 1.0, step=0.05, description="Move size in ATRs."),
        int_param("hold_bars", 1, 50, 5, description="Bars to hold after the last signal."),
    ),
    signal=signal,
    pine=PINE,
)
