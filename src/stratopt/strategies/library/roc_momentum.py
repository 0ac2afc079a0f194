"""Rate-of-change momentum: hold the side of a strong move, stay flat inside the dead band."""

from __future__ import annotations

import numpy as np
from numba import njit

from stratopt.engine.indicators import roc
from stratopt.strategies.base import StrategyType
from stratopt.strategies.params import choice_param, float_param, int_param
from stratopt.strategies.pine import script
from stratopt.strategies.rules import F64, I8, PINE_SOURCE_SWITCH, SOURCE_CHOICES, price_source


@njit(cache=True, nogil=True)
def signal(open_: F64, high: F64, low: F64, close: F64, volume: F64, params: F64) -> I8:
    threshold = params[1]
    change = roc(price_source(open_, high, low, close, int(params[2])), int(params[0]))
    out = np.zeros(close.shape[0], dtype=np.int8)
    for t in range(close.shape[0]):
        if change[t] > threshold:
            out[t] = 1
        elif change[t] < -threshold:
            out[t] = -1
    return out


PINE = script(
    """
period = input.int({period}, "ROC length", minval=2, maxval=200)
threshold = input.float({threshold}, "Threshold (percent)", minval=0, maxval=20)
source = input.string({source}, "Price source", options=["close", "hl2", "hlc3", "ohlc4"])

"""
    + PINE_SOURCE_SWITCH
    + """
rocValue = ta.roc(src, period)
plot(rocValue, "ROC", color=color.blue)
hline(threshold, "Upper threshold")
hline(-threshold, "Lower threshold")

int target = rocValue > threshold ? 1 : rocValue < -threshold ? -1 : 0
""",
    overlay=False,
)

STRATEGY = StrategyType(
    name="roc_momentum",
    display_name="ROC Momentum",
    category="momentum",
    risk_level="high",
    description=(
        "Long while the percent change over the lookback exceeds the threshold, short while it "
        "is below minus the threshold, flat in between. Pure momentum with a dead band."
    ),
    params=(
        int_param("period", 2, 200, 12, log=True, description="Lookback of the rate of change."),
        float_param(
            "threshold", 0.0, 20.0, 1.0, step=0.25, description="Dead band in percent change."
        ),
        choice_param("source", SOURCE_CHOICES, "close", description="Price series measured."),
    ),
    signal=signal,
    pine=PINE,
)
