"""A paper run stepped bar by bar trades exactly like a backtest of the same bars.

What is compared, and why not everything: a backtest knows its last bar, so after it the
simulator forces an exit (reason ``end``) and at that bar's close ``fill_on_close``
refuses to open a position. A live feed has no last bar. So the comparison is the equity
and position of every bar but the last, and every trade the backtest closed for a reason
of its own (not ``end``); with next-open fills, flattening the live run at the last
close then reproduces the backtest's final equity and its ``end`` trade as well.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from stratopt import engine
from stratopt.engine.options import ExecutionOptions
from stratopt.engine.simulator import simulate
from stratopt.live.runner import StepResult, StrategyRun
from stratopt.live.signals import EnsembleSignal, StrategySignal
from stratopt.strategies import registry

from ._replay import backtest_combine, live_bars, replay, synthetic, trade_rows

N_BARS = 1500

VARIANTS: dict[str, dict[str, Any]] = {
    "default": {},
    "costs": {"commission": 0.001, "slippage": 0.0005},
    "protective_both": {
        "direction": "both",
        "stop_loss": 0.015,
        "take_profit": 0.04,
        "trailing_stop": 0.03,
    },
    "fill_on_close": {"fill_on_close": True, "direction": "both", "commission": 0.0005},
}


@pytest.fixture(scope="module")
def bars() -> Any:
    return synthetic(N_BARS, seed=7)


@pytest.fixture(scope="module")
def feed(bars: Any) -> list[Any]:
    return live_bars(bars)


def assert_same_as_backtest(
    steps: list[StepResult],
    equity: np.ndarray,
    position: np.ndarray,
    trades: Any,
    options: ExecutionOptions,
) -> None:
    n = len(steps)
    live_equity = np.array([s.equity for s in steps])
    live_position = np.array([s.position for s in steps])
    assert live_equity[: n - 1].tobytes() == equity[: n - 1].tobytes()
    assert live_position[: n - 1].tobytes() == position[: n - 1].tobytes()
    expected = [row for row in trade_rows(trades) if row[-1] != "end"]
    closed = [trade for step in steps for trade in step.trades]
    assert trade_rows(closed) == expected
    assert [s.bar_index for s in steps] == list(range(n))


def test_replay_covers_every_builtin_strategy_and_exit_reason(bars: Any) -> None:
    # Guards the parametrization below against a registry that failed to load, and the
    # protective variant against levels that never (or always) win.
    assert len(registry.names()) >= 14
    options = ExecutionOptions(**VARIANTS["protective_both"])
    reasons: set[str] = set()
    for name in registry.names():
        reasons |= set(engine.backtest(bars, name, {}, options).trades["exit_reason"])
    assert {"signal", "stop", "target", "trail"} <= reasons


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("name", registry.names())
def test_replay_equals_backtest(name: str, variant: str, bars: Any, feed: list[Any]) -> None:
    stype = registry.get(name)
    options = ExecutionOptions(**VARIANTS[variant])
    result = engine.backtest(bars, stype, {}, options)
    run = StrategyRun(StrategySignal(stype), options, feed[0].symbol)
    steps = replay(run, feed)
    equity = result.equity.to_numpy()
    assert_same_as_backtest(steps, equity, result.position.to_numpy(), result.trades, options)
    # The strategy must actually trade, or the comparison proves little.
    assert sum(len(s.trades) for s in steps) > 0
    if not options.fill_on_close:
        final = run.close_position()
        assert final.equity == equity[-1]
        end_trades = [row for row in trade_rows(result.trades) if row[-1] == "end"]
        assert trade_rows(final.trades) == end_trades
        assert final.side == 0 and final.position == 0.0


def test_signal_events_follow_target_changes(feed: list[Any]) -> None:
    stype = registry.get("sma_crossover")
    full = stype.signal(*_arrays(feed), stype.to_vector({}))
    run = StrategyRun(StrategySignal(stype), ExecutionOptions(), feed[0].symbol)
    steps = replay(run, feed[:600])
    changes = [t for t in range(600) if full[t] != (full[t - 1] if t else 0)]
    events = [s.signal for s in steps if s.signal is not None]
    assert [e.bar_index for e in events] == changes
    for event in events:
        assert event.target == full[event.bar_index]
        assert event.price == feed[event.bar_index].close
        assert event.action == {1: "buy", -1: "sell", 0: "close"}[event.target]


ENSEMBLE: list[tuple[str, dict[str, Any], float]] = [
    ("sma_crossover", {}, 1.0),
    ("ema_crossover", {"fast": 8}, 0.5),
    ("rsi_reversion", {}, 2.0),
]


@pytest.mark.parametrize("method", ["weighted_vote", "majority", "unanimous"])
@pytest.mark.parametrize("size", [2, 3])
@pytest.mark.parametrize("variant", ["default", "protective_both"])
def test_ensemble_replay_equals_backtest(
    method: str, size: int, variant: str, bars: Any, feed: list[Any]
) -> None:
    members = [(registry.get(name), params, w) for name, params, w in ENSEMBLE[:size]]
    options = ExecutionOptions(**VARIANTS[variant])
    prices = (bars.open, bars.high, bars.low, bars.close, bars.volume)
    targets = [s.signal(*prices, np.ascontiguousarray(s.to_vector(p))) for s, p, _ in members]
    combined = backtest_combine()(targets, [w for *_, w in members], method)
    expected = simulate(bars.open, bars.high, bars.low, bars.close, combined, options)
    run = StrategyRun(EnsembleSignal(members, method), options, feed[0].symbol)
    steps = replay(run, feed)
    frame = engine.api.trades_frame(expected.trades, bars.ts)
    assert_same_as_backtest(steps, expected.equity, expected.position, frame, options)
    assert [s.target for s in steps] == combined.tolist()


def test_warm_up_then_trade_equals_backtest_of_the_traded_bars(feed: list[Any]) -> None:
    """Warm-up bars only feed the indicators; the first open fills the last warm-up target."""
    stype = registry.get("supertrend")  # always in the market: the start state matters
    options = ExecutionOptions(direction="both", commission=0.001)
    warm = 400
    arrays = _arrays(feed)
    full = stype.signal(*arrays, stype.to_vector({}))
    assert full[warm - 1] != 0
    # A backtest from bar warm-1 whose first bar only carries that target forward.
    o, h, lo, c = (a[warm - 1 :] for a in arrays[:4])
    expected = simulate(o, h, lo, c, full[warm - 1 :], options)
    run = StrategyRun(StrategySignal(stype), options, feed[0].symbol)
    assert run.warm_up(feed[:warm]) == warm
    steps = replay(run, feed[warm:])
    live_equity = np.array([s.equity for s in steps])
    assert live_equity[:-1].tobytes() == expected.equity[1:-1].tobytes()
    assert steps[0].fills and steps[0].fills[0].kind == "entry"
    expected_trades = [
        (int(t["entry_idx"]) - 1, int(t["exit_idx"]) - 1, float(t["pnl"]))
        for t in expected.trades[:-1]
    ]
    closed = [(t.entry_idx, t.exit_idx, t.pnl) for s in steps for t in s.trades]
    assert closed == expected_trades


@pytest.mark.parametrize(
    ("name", "variant"),
    [
        ("sma_crossover", "protective_both"),
        ("rsi_reversion", "fill_on_close"),
        ("supertrend", "costs"),
    ],
)
def test_snapshot_restore_mid_run_equals_uninterrupted(
    name: str, variant: str, feed: list[Any]
) -> None:
    stype = registry.get(name)
    options = ExecutionOptions(**VARIANTS[variant])
    warm, cut = 200, 900
    straight = StrategyRun(StrategySignal(stype), options, feed[0].symbol)
    straight.warm_up(feed[:warm])
    expected = replay(straight, feed[warm:])

    first = StrategyRun(StrategySignal(stype), options, feed[0].symbol)
    first.warm_up(feed[:warm])
    before = replay(first, feed[warm:cut])
    saved = json.loads(json.dumps(first.snapshot()))  # what a database row would hold
    del first
    resumed = StrategyRun.restore(saved, StrategySignal(stype), feed[:cut])
    after = replay(resumed, feed[cut:])
    assert before + after == expected


def test_restore_needs_only_the_signal_window(feed: list[Any]) -> None:
    """Past the window the history before it is irrelevant, so a restore may omit it."""
    stype = registry.get("macd_signal")
    options = ExecutionOptions(direction="both", trailing_stop=0.02)
    window = 300

    def signal() -> StrategySignal:
        return StrategySignal(stype, window=window)

    straight = StrategyRun(signal(), options, feed[0].symbol)
    expected = replay(straight, feed)
    first = StrategyRun(signal(), options, feed[0].symbol)
    before = replay(first, feed[:1000])
    saved = first.snapshot()
    resumed = StrategyRun.restore(saved, signal(), feed[1000 - window : 1000])
    assert before + replay(resumed, feed[1000:]) == expected


def test_restore_rejects_history_that_does_not_match(feed: list[Any]) -> None:
    stype = registry.get("sma_crossover")
    run = StrategyRun(StrategySignal(stype), ExecutionOptions(), feed[0].symbol)
    replay(run, feed[:300])
    saved = run.snapshot()
    with pytest.raises(ValueError, match="restore needs the last 300 bars"):
        StrategyRun.restore(saved, StrategySignal(stype), feed[:299])
    with pytest.raises(ValueError, match="restore needs"):
        StrategyRun.restore(saved, StrategySignal(stype), feed[100:300])
    with pytest.raises(ValueError, match="not the same strategy"):
        StrategyRun.restore(saved, StrategySignal(stype, window=100), feed[:300])


def _arrays(feed: list[Any]) -> tuple[np.ndarray, ...]:
    return tuple(
        np.array([getattr(b, f) for b in feed], dtype=np.float64)
        for f in ("open", "high", "low", "close", "volume")
    )
