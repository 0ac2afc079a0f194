"""Bollinger breakout: follow closes outside the bands, exit back through the middle band."""

from __future__ import annotations

from numba import njit

from stratopt.engine.indicators import bollinger
from stratopt.strategies.base import StrategyType
from stratopt.strategies.params import float_param, int_param
from stratopt.strategies.pine import script
from stratopt.strategies.rules import F64, I8, band_breakout_positions


@njit(cache=True, nogil=True)
def signal(open_: F64, high: F64, low: F64, close: F64, volume: F64, params: F64) -> I8:
    mid, upper, lower = bollinger(close, int(params[0]), params[1])
    return band_breakout_positions(close, upper, mid, lower)


PINE = script("""
period = input.int({period}, "Bands length", minval=5, maxval=100)
mult = input.float({mult}, "Width in standard deviations", minval=0.5, maxval=4, step=0.1)

[bbMid, bbUpper, bbLower] = ta.bb(close, period, mult)
plot(bbMid, "Middle", color=color.gray)
plot(bbUpper, "Upper", color=color.green)
plot(bbLower, "Lower", color=color.red)

var int target = 0
if target == 1 and close < bbMid
    target := 0
else if target == -1 and close > bbMid
    target := 0
if close > bbUpper
    target := 1
else if close < bbLower
    target := -1
""")

STRATEGY = StrategyType(
    name="bollinger_breakout",
    display_name="Bollinger Breakout",
    category="volatility",
    risk_level="high",
    description=(
        "Goes long when price closes above the upper Bollinger band and short below the lower "
        "band, exiting when it falls back through the middle. Trades volatility expansions."
    ),
    params=(
        int_param("period", 5, 100, 20, description="SMA and standard deviation length."),
        float_param("mult", 0.5, 4.0, 2.0, step=0.1, description="Band width in std devs."),
    ),
    signal=signal,
    pine=PINE,
)
