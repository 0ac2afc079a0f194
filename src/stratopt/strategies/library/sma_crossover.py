"""Two simple moving averages: long when the fast one crosses above the slow one."""

from __future__ import annotations

from numba import njit

from stratopt.engine.indicators import sma
from stratopt.strategies.base import StrategyType
from stratopt.strategies.params import Constraint, int_param
from stratopt.strategies.pine import script
from stratopt.strategies.rules import F64, I8, crossover_positions


@njit(cache=True, nogil=True)
def signal(open_: F64, high: F64, low: F64, close: F64, volume: F64, params: F64) -> I8:
    return crossover_positions(sma(close, int(params[0])), sma(close, int(params[1])))


PINE = script("""
fast = input.int({fast}, "Fast SMA length", minval=2, maxval=200)
slow = input.int({slow}, "Slow SMA length", minval=5, maxval=400)

fastMa = ta.sma(close, fast)
slowMa = ta.sma(close, slow)
plot(fastMa, "Fast SMA", color=color.teal)
plot(slowMa, "Slow SMA", color=color.orange)

crossUp = ta.crossover(fastMa, slowMa)
crossDown = ta.crossunder(fastMa, slowMa)
var int target = 0
if crossUp
    target := 1
else if crossDown
    target := -1
""")

STRATEGY = StrategyType(
    name="sma_crossover",
    display_name="SMA Crossover",
    category="trend_following",
    risk_level="low",
    description=(
        "Goes long when the fast simple moving average crosses above the slow one and short "
        "when it crosses below. A slow, classic trend filter that trades rarely."
    ),
    params=(
        int_param("fast", 2, 200, 10, log=True, description="Fast SMA length in bars."),
        int_param("slow", 5, 400, 50, log=True, description="Slow SMA length in bars."),
    ),
    constraints=(Constraint("fast", "<", "slow"),),
    signal=signal,
    pine=PINE,
)
