"""StrategyRun bookkeeping: bad bars, accounting identities, trade times, lifecycle."""

from __future__ import annotations

import pytest

from stratopt.engine.options import ExecutionOptions
from stratopt.live.bars import BarRejected, LiveBar
from stratopt.live.history import BarHistory
from stratopt.live.runner import StrategyRun
from stratopt.live.signals import StrategySignal
from stratopt.strategies import registry

from ._replay import live_bars, replay, synthetic


def test_run_rejects_bad_bars_and_is_unchanged_by_them() -> None:
    stype = registry.get("sma_crossover")
    options = ExecutionOptions()
    good = [
        LiveBar("X", 1_000 + i, 100.0 + i % 5, 106.0, 99.0, 100.0 + i % 3, 1.0) for i in range(120)
    ]
    clean = StrategyRun(StrategySignal(stype), options, "X")
    expected = [clean.step(b) for b in good]
    noisy = StrategyRun(StrategySignal(stype), options, "X")
    got = []
    for i, b in enumerate(good):
        if i % 10 == 5:
            for bad in (
                LiveBar("Y", b.ts, 100.0, 101.0, 99.0, 100.0, 1.0),  # another symbol
                LiveBar("X", b.ts - 1, 100.0, 101.0, 99.0, 100.0, 1.0),  # repeats the last
                LiveBar("X", b.ts, 100.0, 99.0, 101.0, 100.0, 1.0),  # high below low
            ):
                with pytest.raises(BarRejected):
                    noisy.step(bad)
        got.append(noisy.step(b))
    assert got == expected
    assert noisy.bars_processed == 120


def test_accounting_identities_and_trade_times() -> None:
    feed = live_bars(synthetic(900, seed=21))
    options = ExecutionOptions(direction="both", commission=0.001, stop_loss=0.02)
    run = StrategyRun(StrategySignal(registry.get("ema_crossover")), options, feed[0].symbol)
    steps = replay(run, feed)
    realized = 0.0
    peak = options.initial_cash
    for step in steps:
        for trade in step.trades:
            realized += trade.pnl
            assert trade.exit_ts == feed[trade.exit_idx].ts == step.ts
            assert trade.entry_ts == feed[trade.entry_idx].ts
        assert step.realized_pnl == realized
        assert step.unrealized_pnl == step.equity - options.initial_cash - realized
        peak = max(peak, step.equity)
        assert step.peak_equity == peak
        assert step.drawdown == pytest.approx(1 - step.equity / peak)
    assert steps[-1].cash == run.broker.cash
    assert sum(len(s.trades) for s in steps) > 5
    assert steps[-1].bars_processed == run.bars_processed == 900


def test_lifecycle_guards() -> None:
    feed = live_bars(synthetic(50, seed=2))
    run = StrategyRun(StrategySignal(registry.get("sma_crossover")), ExecutionOptions(), "SYN")
    with pytest.raises(RuntimeError, match="nothing has been traded"):
        run.close_position()
    run.step(feed[0])
    with pytest.raises(RuntimeError, match="before the first step"):
        run.warm_up(feed[1:3])
    flat = run.close_position()
    assert flat.fills == () and flat.bar_index == 0


class _Exploding:
    """A signal that fails once, to check that a failed step leaves no trace."""

    window = 100

    def __init__(self) -> None:
        self.calls = 0

    def target(self, history: BarHistory) -> int:
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("boom")
        return 1


def test_failed_step_leaves_the_run_unchanged() -> None:
    feed = live_bars(synthetic(10, seed=2))
    run = StrategyRun(_Exploding(), ExecutionOptions(), "SYN")
    run.step(feed[0])
    run.step(feed[1])
    with pytest.raises(RuntimeError, match="boom"):
        run.step(feed[2])
    assert run.history.total == 2 and run.bars_processed == 2
    assert run.step(feed[2]).bar_index == 2


def test_warm_up_is_all_or_nothing() -> None:
    feed = live_bars(synthetic(20, seed=2))
    run = StrategyRun(StrategySignal(registry.get("sma_crossover")), ExecutionOptions(), "SYN")
    with pytest.raises(BarRejected, match="not after the previous bar"):
        run.warm_up([*feed[:10], feed[3]])
    assert run.history.total == 0
    assert run.warm_up(feed[:10]) == 10 and run.step(feed[10]).bar_index == 0
