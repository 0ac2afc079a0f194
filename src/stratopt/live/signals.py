"""Incremental signals: the newest bar's target from the same numba kernel backtests use.

A live run does not get a streaming re-implementation of each strategy (fourteen state
machines written twice would drift apart). After each bar it calls the strategy's own
``signal(open, high, low, close, volume, params)`` over a trailing window of the history
and keeps the last value, so a paper run acts on exactly what a backtest of the same bars
computes, and a new strategy type works live with no extra code.

The window rule, ``max(MIN_WINDOW, LOOKBACK_MULTIPLE * lookback)`` bars where
``lookback`` is the sum of the strategy's integer parameters:

* While the history is no longer than the window, the window *is* the full history, so
  the target is bit-identical to the backtest's (the first 512 bars at least, and the
  first 50 x lookback: 3,000 bars for a 10/50 SMA crossover).
* Beyond it, the result matches the full-history computation once everything the kernel
  carries forward has forgotten the bars that were cut off. Rolling indicators (SMA,
  stdev, highest/lowest, ROC, Donchian) need their period. EMA/RMA (Wilder) are seeded
  with an SMA at the window start and then forget that seed geometrically: an RMA of
  period p by (1 - 1/p) per bar, so 36.7 p bars shrink the seed's influence below 2**-53,
  the resolution of a float64, and the two computations coincide. Nested smoothing (the
  ADX is an RMA of an RMA, the MACD signal an EMA of EMAs) adds the periods, hence the sum
  rather than the longest one, and the multiple of 50 leaves room for the warm-up before
  the seed. The rule state machines on top (crossovers, hold-until-exit rules, the
  SuperTrend band ratchet) resynchronise at their first reset event inside the window,
  which at 50x the periods is many times over. Measured on synthetic data (12,000 hourly
  bars with defaults, 20,000 daily bars with every period at its maximum): windows of 20x
  the longest period already gave no mismatch for any built-in strategy; and the rule
  itself (no floor) on 12,000 hourly and 12,000 one-minute bars, every type with its
  defaults and three parameter sets drawn around them, compared with the full computation
  at every third bar past the window: 394,377 targets, no mismatch.
* The work per bar is proportional to the window, and a server runs many strategies on
  one event loop: the floor was 4,096 bars, which made most strategies compute 2-8x more
  bars than their rule asks for (100 strategies of mixed types spent ~10 ms per bar on it).
  ``MIN_WINDOW`` now only keeps very short lookbacks from windows of a few dozen bars.
* What no window can promise: running sums (SMA) carry rounding noise of ~1e-16 relative
  from the whole history, so a crossover between two averages equal to the last bit could
  resolve differently. That needs values identical to ~15 digits and does not happen on
  real prices; it is the price of O(window) rather than O(history) work per bar.

Ensembles evaluate each member over its own window and merge the members' newest targets
with the backtest's ``combine``, over the last two bars rather than one: numpy sums a
single column pairwise but several columns row by row, and the two orders can differ in
the last bit, which flips the sign of a weighted vote that cancels to ~0.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from stratopt.engine.ensemble import ENSEMBLE_METHODS, combine
from stratopt.live.history import BarHistory
from stratopt.strategies.base import StrategyType

MIN_WINDOW = 512
LOOKBACK_MULTIPLE = 50

CombineFn = Callable[[Sequence[npt.NDArray[np.int8]], Sequence[float], str], npt.NDArray[np.int8]]


def lookback(stype: StrategyType, params: Mapping[str, Any] | None = None) -> int:
    """Sum of the integer parameters (periods) of a resolved parameter set, at least 1."""
    values = stype.resolve(params)
    total = sum(int(values[p.name]) for p in stype.params if p.kind == "int")
    return max(1, total)


def window_for(lookback_bars: int) -> int:
    """Bars a live signal is computed over (see the module docstring for why)."""
    return max(MIN_WINDOW, LOOKBACK_MULTIPLE * lookback_bars)


class LiveSignal(Protocol):
    """What a live run needs from a signal: how many bars it reads, and the newest target."""

    @property
    def window(self) -> int: ...

    def target(self, history: BarHistory) -> int: ...


class StrategySignal:
    """One strategy type with fixed parameters (validated here, once)."""

    def __init__(
        self,
        stype: StrategyType,
        params: Mapping[str, Any] | None = None,
        *,
        window: int | None = None,
    ) -> None:
        self.stype = stype
        self.params = stype.resolve(params)
        self.vector = np.ascontiguousarray(stype.to_vector(self.params), dtype=np.float64)
        if window is not None and window < 1:
            raise ValueError("window must be >= 1")
        self._window = window or window_for(lookback(stype, self.params))

    @property
    def window(self) -> int:
        return self._window

    def targets(self, history: BarHistory) -> npt.NDArray[np.int8]:
        """Targets of the last ``window`` bars held, computed over exactly those bars."""
        if len(history) == 0:
            raise ValueError("no bars yet")
        return np.asarray(
            self.stype.signal(*history.prices(self._window), self.vector), dtype=np.int8
        )

    def target(self, history: BarHistory) -> int:
        """The target after the close of the newest bar: +1 long, -1 short, 0 flat."""
        if len(history) == 0:
            raise ValueError("no bars yet")
        return int(self.stype.signal(*history.prices(self._window), self.vector)[-1])


@dataclass(frozen=True)
class EnsembleMember:
    signal: StrategySignal
    weight: float


class EnsembleSignal:
    """Members' targets merged bar by bar exactly as an ensemble backtest merges them."""

    def __init__(
        self,
        members: Sequence[tuple[StrategyType, Mapping[str, Any] | None, float]],
        method: str = "weighted_vote",
        *,
        window: int | None = None,
        combine_fn: CombineFn = combine,
    ) -> None:
        if not members:
            raise ValueError("an ensemble needs at least one member")
        if method not in ENSEMBLE_METHODS:
            raise ValueError(f"method must be one of {', '.join(ENSEMBLE_METHODS)}")
        for stype, _, weight in members:
            if not (math.isfinite(weight) and weight > 0):
                raise ValueError(f"weight of {stype.name} must be a positive number")
        self.members = tuple(
            EnsembleMember(StrategySignal(stype, params, window=window), float(weight))
            for stype, params, weight in members
        )
        self.method = method
        self._combine = combine_fn

    @property
    def window(self) -> int:
        return max(m.signal.window for m in self.members)

    def target(self, history: BarHistory) -> int:
        tails = []
        for member in self.members:
            tail = member.signal.targets(history)[-2:]
            tails.append(np.repeat(tail, 2) if tail.shape[0] == 1 else tail)
        weights = [m.weight for m in self.members]
        return int(self._combine(tails, weights, self.method)[-1])
