"""Two exponential moving averages: long when the fast one crosses above the slow one."""

from __future__ import annotations

from numba import njit

from stratopt.engine.indicators import ema
from stratopt.strategies.base import StrategyType
from stratopt.strategies.params import Constraint, int_param
from stratopt.strategies.pine import script
from stratopt.strategies.rules import F64, I8, crossover_positions


@njit(cache=True, nogil=True)
def signal(open_: F64, high: F64, low: F64, close: F64, volume: F64, params: F64) -> I8:
    return crossover_positions(ema(close, int(params[0])), ema(close, int(params[1])))


PINE = script("""
fast = input.int({fast}, "Fast EMA length", minval=2, maxval=200)
slow = input.int({slow}, "Slow EMA length", minval=5, maxval=400)

fastMa = ta.ema(close, fast)
slowMa = ta.ema(close, slow)
plot(fastMa, "Fast EMA", color=color.teal)
plot(slowMa, "Slow EMA", color=color.orange)

crossUp = ta.crossover(fastMa, slowMa)
crossDown = ta.crossunder(fastMa, slowMa)
var int target = 0
if crossUp
    target := 1
else if crossDown
    target := -1
""")

STRATEGY = StrategyType(
    name="ema_crossover",
    display_name="EMA Crossover",
    category="trend_following",
    risk_level="medium",
    description=(
        "Goes long when the fast exponential moving average crosses above the slow one and "
        "short when it crosses below. Reacts to trend changes sooner than the SMA version."
    ),
    params=(
        int_param("fast", 2, 200, 12, log=True, description="Fast EMA length in bars."),
        int_param("slow", 5, 400, 26, log=True, description="Slow EMA length in bars."),
    ),
    constraints=(Constraint("fast", "<", "slow"),),
    signal=signal,
    pine=PINE,
)
