"""Keltner breakout: follow closes outside EMA +/- ATR bands, exit back through the EMA."""

from __future__ import annotations

from numba import njit

from stratopt.engine.indicators import keltner
from stratopt.strategies.base import StrategyType
from stratopt.strategies.params import float_param, int_param
from stratopt.strategies.pine import script
from stratopt.strategies.rules import F64, I8, band_breakout_positions


@njit(cache=True, nogil=True)
def signal(open_: F64, high: F64, low: F64, close: F64, volume: F64, params: F64) -> I8:
    mid, upper, lower = keltner(high, low, close, int(params[0]), int(params[1]), params[2])
    return band_breakout_positions(close, upper, mid, lower)


PINE = script("""
ema_period = input.int({ema_period}, "EMA length", minval=5, maxval=100)
atr_period = input.int({atr_period}, "ATR length", minval=2, maxval=50)
mult = input.float({mult}, "ATR multiplier", minval=0.5, maxval=5, step=0.1)

// EMA +/- ATR (Wilder), spelled out rather than ta.kc, which uses an EMA of true range.
kcMid = ta.ema(close, ema_period)
kcWidth = mult * ta.atr(atr_period)
kcUpper = kcMid + kcWidth
kcLower = kcMid - kcWidth
plot(kcMid, "Middle", color=color.gray)
plot(kcUpper, "Upper", color=color.green)
plot(kcLower, "Lower", color=color.red)

var int target = 0
if target == 1 and close < kcMid
    target := 0
else if target == -1 and close > kcMid
    target := 0
if close > kcUpper
    target := 1
else if close < kcLower
    target := -1
""")

STRATEGY = StrategyType(
    name="keltner_breakout",
    display_name="Keltner Breakout",
    category="breakout",
    risk_level="high",
    description=(
        "Goes long on a close above the Keltner channel (EMA plus a multiple of ATR) and short "
        "below it, exiting when price crosses back through the EMA."
    ),
    params=(
        int_param("ema_period", 5, 100, 20, description="EMA length of the middle line."),
        int_param("atr_period", 2, 50, 10, description="ATR length of the channel width."),
        float_param("mult", 0.5, 5.0, 2.0, step=0.1, description="ATR multiple of the width."),
    ),
    signal=signal,
    pine=PINE,
)
