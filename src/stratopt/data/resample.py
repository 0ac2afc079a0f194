"""Aggregate bars into a coarser timeframe.

Bins are aligned to the UTC epoch (so "4h" bins start at 00:00, 04:00, ... UTC and "1d"
at UTC midnight), except whole weeks, which start on Monday 00:00 UTC as traders expect.
A bin is labelled with its start time and holds the bars whose start falls inside it:
open = first open, high = max, low = min, close = last close, volume = sum. Empty bins
(gaps, weekends) produce no bar, and a partly filled last bin is kept.
"""

from __future__ import annotations

import numpy as np

from stratopt.data.bars import Bars
from stratopt.data.errors import TimeframeError
from stratopt.data.timeframes import format_timeframe, parse_timeframe
from stratopt.data.timestamps import NS_PER_SECOND

__all__ = ["format_timeframe", "parse_timeframe", "resample"]

WEEK_SECONDS = 604_800
#: 1970-01-05, the first Monday after the epoch.
MONDAY_ORIGIN_NS = 4 * 86_400 * NS_PER_SECOND


def _check_target(source: int, target: int) -> None:
    if not source:
        return
    if target < source:
        raise TimeframeError(
            f"cannot resample {format_timeframe(source)} bars to {format_timeframe(target)}: "
            "the target is finer than the source (bars cannot be split)"
        )
    if target % source:
        raise TimeframeError(
            f"cannot resample {format_timeframe(source)} bars to {format_timeframe(target)}: "
            "the target must be a whole multiple of the source, or source bars would "
            "straddle the new bar boundaries"
        )


def resample(bars: Bars, timeframe: str | int) -> Bars:
    """Bars aggregated to ``timeframe`` (see :func:`parse_timeframe` for the spellings).

    The source timeframe is the median bar spacing; a target finer than it, or not a whole
    multiple of it, raises :class:`TimeframeError`.
    """
    target = parse_timeframe(timeframe)
    _check_target(bars.timeframe_seconds, target)
    if not len(bars):
        return bars
    step = target * NS_PER_SECOND
    origin = MONDAY_ORIGIN_NS if target % WEEK_SECONDS == 0 else 0
    bins = (bars.ts - origin) // step
    starts = np.flatnonzero(np.concatenate(([True], bins[1:] != bins[:-1])))
    lasts = np.concatenate((starts[1:], [len(bars)])) - 1
    return Bars(
        ts=bins[starts] * step + origin,
        open=bars.open[starts],
        high=np.maximum.reduceat(bars.high, starts),
        low=np.minimum.reduceat(bars.low, starts),
        close=bars.close[lasts],
        volume=np.add.reduceat(bars.volume, starts),
    )
