"""Shared helpers for the live tests: synthetic bars as LiveBars, and a whole-run replay."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from stratopt.data.bars import Bars
from stratopt.data.synthetic import generate_bars
from stratopt.engine.options import ExecutionOptions
from stratopt.live.bars import LiveBar
from stratopt.live.manager import RunSpec
from stratopt.live.runner import StepResult, StrategyRun
from stratopt.store import models

SYMBOL = "SYN"


def synthetic(n: int = 1500, seed: int = 7) -> Bars:
    return generate_bars(n, seed=seed, timeframe="1h")


def live_bars(bars: Bars, symbol: str = SYMBOL) -> list[LiveBar]:
    return [
        LiveBar(symbol, int(ts), float(o), float(h), float(lo), float(c), float(v))
        for ts, o, h, lo, c, v in zip(
            bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume, strict=True
        )
    ]


def spec(strategy_id: str, feed: models.Feed) -> RunSpec:
    """A run of `strategy_id` (owned by "u") on `feed`'s SYMBOL."""
    return RunSpec(
        strategy_id=strategy_id,
        owner_id="u",
        strategy_name=strategy_id,
        feed_id=feed.id,
        symbol=SYMBOL,
        # A 2-bar rate of change: its target at a bar depends on exactly the bars before it
        # (a crossover's depends on where the last cross was), so a warm-up reproduces it.
        strategy_type="roc_momentum",
        parameters={"period": 2, "threshold": 0.0},
        # Long and short: the target is never flat, so a run's first bar always fills.
        execution=ExecutionOptions.from_dict({"direction": "both"}).resolved(),
    )


def replay(run: StrategyRun, bars: Sequence[LiveBar]) -> list[StepResult]:
    return [run.step(bar) for bar in bars]


def backtest_combine() -> Callable[..., Any]:
    """The ensemble ``combine`` backtests use."""
    from stratopt.engine.ensemble import combine

    return combine


def trade_rows(trades: Any) -> list[tuple[Any, ...]]:
    """Comparable rows from a backtest trades frame or a list of live ClosedTrades."""
    names: tuple[str, ...] = ("entry_idx", "exit_idx", "side", "entry_price", "exit_price")
    names += ("size", "pnl", "ret", "bars_held", "exit_reason")
    if hasattr(trades, "to_dict"):
        records = trades.to_dict("records")
        return [tuple(_plain(r[name]) for name in names) for r in records]
    return [tuple(_plain(getattr(t, name)) for name in names) for t in trades]


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return value
