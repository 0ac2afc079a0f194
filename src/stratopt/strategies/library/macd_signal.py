"""MACD: long when the MACD line crosses above its signal line, short when it crosses below."""

from __future__ import annotations

from numba import njit

from stratopt.engine.indicators import macd
from stratopt.strategies.base import StrategyType
from stratopt.strategies.params import Constraint, int_param
from stratopt.strategies.pine import script
from stratopt.strategies.rules import F64, I8, crossover_positions


@njit(cache=True, nogil=True)
def signal(open_: F64, high: F64, low: F64, close: F64, volume: F64, params: F64) -> I8:
    line, sig, _ = macd(close, int(params[0]), int(params[1]), int(params[2]))
    return crossover_positions(line, sig)


PINE = script(
    """
fast = input.int({fast}, "Fast EMA length", minval=2, maxval=50)
slow = input.int({slow}, "Slow EMA length", minval=5, maxval=100)
signal_period = input.int({signal_period}, "Signal EMA length", minval=2, maxval=50)

[macdLine, signalLine, histLine] = ta.macd(close, fast, slow, signal_period)
plot(macdLine, "MACD", color=color.blue)
plot(signalLine, "Signal", color=color.orange)
plot(histLine, "Histogram", color=color.gray, style=plot.style_columns)

crossUp = ta.crossover(macdLine, signalLine)
crossDown = ta.crossunder(macdLine, signalLine)
var int target = 0
if crossUp
    target := 1
else if crossDown
    target := -1
""",
    overlay=False,
)

STRATEGY = StrategyType(
    name="macd_signal",
    display_name="MACD Signal Cross",
    category="momentum",
    risk_level="medium",
    description=(
        "Goes long when the MACD line crosses above its signal line and short when it "
        "crosses below, riding shifts in short-term momentum relative to the longer trend."
    ),
    params=(
        int_param("fast", 2, 50, 12, description="Fast EMA length of the MACD line."),
        int_param("slow", 5, 100, 26, description="Slow EMA length of the MACD line."),
        int_param("signal_period", 2, 50, 9, description="EMA length of the signal line."),
    ),
    constraints=(Constraint("fast", "<", "slow"),),
    signal=signal,
    pine=PINE,
)
