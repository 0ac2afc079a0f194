"""RSI mean reversion: buy oversold, sell overbought, exit at the middle level."""

from __future__ import annotations

import numpy as np
from numba import njit

from stratopt.engine.indicators import rsi
from stratopt.strategies.base import StrategyType
from stratopt.strategies.params import Constraint, choice_param, float_param, int_param
from stratopt.strategies.pine import script
from stratopt.strategies.rules import F64, I8, PINE_SOURCE_SWITCH, SOURCE_CHOICES, price_source


@njit(cache=True, nogil=True)
def signal(open_: F64, high: F64, low: F64, close: F64, volume: F64, params: F64) -> I8:
    oversold, overbought, exit_level = params[1], params[2], params[3]
    src = price_source(open_, high, low, close, int(params[4]))
    r = rsi(src, int(params[0]))
    out = np.zeros(close.shape[0], dtype=np.int8)
    target = 0
    for t in range(close.shape[0]):
        if (target == 1 and r[t] >= exit_level) or (target == -1 and r[t] <= exit_level):
            target = 0
        if target == 0:
            if r[t] < oversold:
                target = 1
            elif r[t] > overbought:
                target = -1
        out[t] = target
    return out


PINE = script(
    """
period = input.int({period}, "RSI length", minval=2, maxval=50)
oversold = input.float({oversold}, "Oversold level", minval=5, maxval=45)
overbought = input.float({overbought}, "Overbought level", minval=55, maxval=95)
exit_level = input.float({exit_level}, "Exit level", minval=20, maxval=80)
source = input.string({source}, "Price source", options=["close", "hl2", "hlc3", "ohlc4"])

"""
    + PINE_SOURCE_SWITCH
    + """
r = ta.rsi(src, period)
plot(r, "RSI", color=color.purple)
hline(oversold, "Oversold")
hline(overbought, "Overbought")

var int target = 0
if target == 1 and r >= exit_level
    target := 0
else if target == -1 and r <= exit_level
    target := 0
if target == 0
    if r < oversold
        target := 1
    else if r > overbought
        target := -1
""",
    overlay=False,
)

STRATEGY = StrategyType(
    name="rsi_reversion",
    display_name="RSI Reversion",
    category="mean_reversion",
    risk_level="medium",
    description=(
        "Buys when RSI drops below the oversold level and shorts when it rises above the "
        "overbought level, closing once RSI returns to the exit level. Suits ranging markets."
    ),
    params=(
        int_param("period", 2, 50, 14, description="RSI length in bars (Wilder smoothing)."),
        float_param("oversold", 5.0, 45.0, 30.0, step=1.0, description="Buy below this RSI."),
        float_param("overbought", 55.0, 95.0, 70.0, step=1.0, description="Short above this RSI."),
        float_param(
            "exit_level", 20.0, 80.0, 50.0, step=1.0, description="Close positions at this RSI."
        ),
        choice_param("source", SOURCE_CHOICES, "close", description="Price series fed to RSI."),
    ),
    constraints=(
        Constraint("oversold", "<", "exit_level"),
        Constraint("exit_level", "<", "overbought"),
    ),
    signal=signal,
    pine=PINE,
)
