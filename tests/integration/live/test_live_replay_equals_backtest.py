"""A replay through StartStrategy(dataset_id) trades exactly as RunBacktest on the same bars.

Every built-in strategy type (defaults), two ensembles and several types with execution
overrides (costs, protective exits in both directions, fills on close, sizing) run at
once, unpaced, on one 600-bar synthetic dataset; each replay stops itself at the dataset's
end. Then, per strategy:

- ListFills (every page) rebuilt into round trips equals the backtest's trades: entry and
  exit time, price, quantity, fees, realized P&L and exit reason, to 1e-9 relative;
- GetPerformance's equity equals the backtest's equity at the last bar *before* its forced
  exit, and its open position is that exit's trade;
- the execution options the run reports are the backtest's resolved options;
- when the backtest ends flat (so both saw the same equity curve), every figure of
  GetPerformance's metrics equals the backtest's, and so does the drawdown.

What has no live counterpart, by design, and is excluded: the backtest's final
"end of data" exit (a replay that ends keeps its position, as a live feed that goes quiet
would), and with fill_on_close the backtest's refusal to open a position at the close of
the dataset's last bar (a feed has no last bar, so the live run does open it; the test
accounts for that entry when it happens).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from stratopt.v1 import backtest_pb2 as bpb
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import market_data_pb2 as mpb
from stratopt.v1 import strategy_pb2 as spb

from stratopt.api.convert import pb_to_ns
from stratopt.engine.metrics import REPORT_METRIC_NAMES
from stratopt.strategies import registry
from tests.conftest import start_server, stop_server
from tests.integration.live.api_support import Api, iv

BARS = 600
REL = 1e-9
TYPES = sorted(registry.names())
BOTH = c.TRADE_DIRECTION_BOTH

# name -> (strategy type, execution override for StartStrategy and RunBacktest)
OVERRIDES: dict[str, tuple[str, c.ExecutionOptions]] = {
    "costs-sma": ("sma_crossover", c.ExecutionOptions(commission=0.001, slippage=0.0005)),
    "costs-roc-both": (
        "roc_momentum",
        c.ExecutionOptions(commission=0.002, slippage=0.001, direction=BOTH),
    ),
    "protective-macd": (
        "macd_signal",
        c.ExecutionOptions(stop_loss=0.01, take_profit=0.02, trailing_stop=0.015, direction=BOTH),
    ),
    "protective-supertrend": (
        "supertrend",
        c.ExecutionOptions(
            stop_loss=0.008,
            take_profit=0.012,
            trailing_stop=0.01,
            direction=BOTH,
            commission=0.0005,
            slippage=0.0002,
        ),
    ),
    "protective-bollinger": (
        "bollinger_reversion",
        c.ExecutionOptions(stop_loss=0.005, trailing_stop=0.004, direction=BOTH),
    ),
    "on-close-ema": (
        "ema_crossover",
        c.ExecutionOptions(fill_on_close=True, commission=0.0005, direction=BOTH),
    ),
    "on-close-rsi-protective": (
        "rsi_reversion",
        c.ExecutionOptions(
            fill_on_close=True,
            stop_loss=0.01,
            take_profit=0.01,
            direction=BOTH,
            slippage=0.0003,
        ),
    ),
    "sized-short-cci": (
        "cci_reversion",
        c.ExecutionOptions(
            initial_cash=25_000,
            position_size=0.5,
            direction=c.TRADE_DIRECTION_SHORT_ONLY,
            commission=0.001,
        ),
    ),
}
ENSEMBLES = ("ensemble-vote", "ensemble-majority-both")
CASES = [f"type:{t}" for t in TYPES] + list(OVERRIDES) + list(ENSEMBLES)

EXIT_REASONS = {
    c.EXIT_REASON_SIGNAL: "signal",
    c.EXIT_REASON_STOP_LOSS: "stop",
    c.EXIT_REASON_TAKE_PROFIT: "target",
    c.EXIT_REASON_TRAILING_STOP: "trail",
}


@dataclass
class Case:
    strategy_id: str
    execution: c.ExecutionOptions | None


@dataclass
class Replays:
    api: Api
    dataset_id: str
    ts: list[int]
    close: list[float]
    cases: dict[str, Case]


@pytest.fixture(scope="module")
def replays(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Replays]:
    srv = start_server(Path(tmp_path_factory.mktemp("live-replay")))
    api = Api.open(srv)
    try:
        ds = api.dataset("replay", bars=BARS, seed=11)
        md = srv.md("trader")
        bars = [
            b
            for page in api.data.ReadBars(mpb.ReadBarsRequest(dataset_id=ds), metadata=md)
            for b in page.bars
        ]
        assert len(bars) == BARS
        cases: dict[str, Case] = {}
        for t in TYPES:
            cases[f"type:{t}"] = Case(api.strategy(f"r-{t}", t), None)
        for name, (t, execution) in OVERRIDES.items():
            cases[name] = Case(api.strategy(f"r-{name}", t), execution)
        members = [
            api.strategy("m-sma", "sma_crossover", parameters={"fast": iv(5), "slow": iv(20)}),
            api.strategy("m-rsi", "rsi_reversion"),
            api.strategy("m-macd", "macd_signal"),
        ]
        vote = api.strategies.CreateEnsemble(
            spb.CreateEnsembleRequest(
                name="r-ensemble-vote",
                members=[
                    spb.EnsembleMember(strategy_id=members[0], weight=1.0),
                    spb.EnsembleMember(strategy_id=members[1], weight=2.0),
                    spb.EnsembleMember(strategy_id=members[2], weight=1.5),
                ],
                method=spb.ENSEMBLE_METHOD_WEIGHTED_VOTE,
            ),
            metadata=md,
        ).strategy
        majority = api.strategies.CreateEnsemble(
            spb.CreateEnsembleRequest(
                name="r-ensemble-majority",
                members=[spb.EnsembleMember(strategy_id=m, weight=1.0) for m in members],
                method=spb.ENSEMBLE_METHOD_MAJORITY,
            ),
            metadata=md,
        ).strategy
        cases["ensemble-vote"] = Case(vote.id, None)
        cases["ensemble-majority-both"] = Case(
            majority.id, c.ExecutionOptions(direction=BOTH, commission=0.0007)
        )
        assert list(cases) == CASES
        # All at once: each gets a private replay of the dataset, unpaced.
        for case in cases.values():
            started = api.start(
                case.strategy_id, dataset_id=ds, bars_per_second=0, execution=case.execution
            )
            assert started.strategy.id == case.strategy_id
        yield Replays(api, ds, [pb_to_ns(b.time) for b in bars], [b.close for b in bars], cases)
    finally:
        api.close()
        stop_server(srv)


def test_every_built_in_type_is_replayed(replays: Replays) -> None:
    listed = replays.api.strategies.ListStrategyTypes(
        spb.ListStrategyTypesRequest(), metadata=replays.api.srv.md("trader")
    ).strategy_types
    assert sorted(t.name for t in listed) == TYPES
    assert len(TYPES) == 14


@pytest.mark.parametrize("name", CASES)
def test_replay_equals_backtest(replays: Replays, name: str) -> None:
    api, case = replays.api, replays.cases[name]
    perf = api.wait_stopped(case.strategy_id)
    assert perf.run_state == spb.RUN_STATE_STOPPED, "the replay stops itself at the end"
    assert perf.bars_processed == BARS
    assert pb_to_ns(perf.last_bar_time) == replays.ts[-1]

    bt = api.backtests.RunBacktest(
        bpb.RunBacktestRequest(
            strategy_id=case.strategy_id,
            dataset_id=replays.dataset_id,
            execution=case.execution,
            dry_run=True,
            trade_limit=1000,
            max_equity_points=20_000,
        ),
        metadata=api.srv.md("trader"),
    ).backtest
    assert len(bt.trades) == bt.trade_count and bt.bar_count == BARS
    opts = bt.execution
    for f in ("initial_cash", "position_size", "direction", "fill_on_close", "commission"):
        assert getattr(perf.execution, f) == getattr(opts, f), f
    for f in ("slippage", "stop_loss", "take_profit", "trailing_stop"):
        assert getattr(perf.execution, f) == getattr(opts, f), f
    # The annualisation in use is shown, not 0 for "inferred" (issue 12).
    assert perf.execution.periods_per_year == pytest.approx(opts.periods_per_year, rel=1e-9)

    trades = list(bt.trades)
    end = trades.pop() if trades and trades[-1].exit_reason == c.EXIT_REASON_END_OF_DATA else None
    assert all(t.exit_reason != c.EXIT_REASON_END_OF_DATA for t in trades)

    fills = api.fills(case.strategy_id)
    assert [f.sequence for f in fills] == list(range(1, len(fills) + 1))
    entries, exits = fills[0::2], fills[1::2]  # a position opens whole and closes whole
    dangling = entries[len(exits) :]
    assert len(dangling) <= 1
    assert len(exits) == len(trades), (name, len(exits), len(trades))

    def same(a: float, b: float) -> bool:
        return math.isclose(a, b, rel_tol=REL, abs_tol=REL * opts.initial_cash)

    commission = opts.commission
    for i, (trade, entry, exit_) in enumerate(zip(trades, entries, exits, strict=False)):
        where = f"{name} trade {i}"
        long = trade.side == c.TRADE_SIDE_LONG
        assert entry.side == (spb.SIGNAL_ACTION_BUY if long else spb.SIGNAL_ACTION_SELL), where
        assert exit_.side == (spb.SIGNAL_ACTION_SELL if long else spb.SIGNAL_ACTION_BUY), where
        assert pb_to_ns(entry.time) == pb_to_ns(trade.entry_time), where
        assert pb_to_ns(exit_.time) == pb_to_ns(trade.exit_time), where
        assert same(entry.price, trade.entry_price), where
        assert same(exit_.price, trade.exit_price), where
        assert same(entry.quantity, trade.size) and same(exit_.quantity, trade.size), where
        assert same(entry.fee, trade.size * trade.entry_price * commission), where
        assert same(exit_.fee, trade.size * trade.exit_price * commission), where
        assert same(exit_.realized_pnl, trade.pnl), where
        assert entry.realized_pnl == 0.0 and entry.reason == "signal", where
        assert exit_.reason == EXIT_REASONS[trade.exit_reason], where

    # The account at the end: the backtest's before its forced exit.
    last_ts, last_close = replays.ts[-1], replays.close[-1]
    expected = bt.metrics.final_equity
    assert same(expected, bt.equity_curve[-1].equity)
    extra_entry = None
    if end is not None:
        assert len(dangling) == 1, f"{name}: the end-of-data trade is open live"
        entry = dangling[0]
        long = end.side == c.TRADE_SIDE_LONG
        side = 1 if long else -1
        assert pb_to_ns(entry.time) == pb_to_ns(end.entry_time)
        assert same(entry.price, end.entry_price) and same(entry.quantity, end.size)
        assert perf.position == side
        assert same(perf.position_quantity, side * end.size)
        assert same(perf.entry_price, end.entry_price)
        # Undo the forced exit: its slippage against the last close and its commission.
        expected += side * end.size * (last_close - end.exit_price)
        expected += end.size * end.exit_price * commission
    elif dangling:
        # Only with fill_on_close: the live run opens at the last close; the backtest won't.
        extra_entry = dangling[0]
        assert opts.fill_on_close, f"{name}: an open position the backtest does not have"
        assert pb_to_ns(extra_entry.time) == last_ts
        side = 1 if extra_entry.side == spb.SIGNAL_ACTION_BUY else -1
        expected += side * extra_entry.quantity * (last_close - extra_entry.price)
        expected -= extra_entry.fee
        assert perf.position == side
    else:
        assert perf.position == 0 and perf.position_quantity == 0.0
    assert same(perf.equity, expected), (name, perf.equity, expected)
    realized = sum(t.pnl for t in trades)
    assert same(perf.realized_pnl, realized)
    if end is None and extra_entry is None:
        # The same bars, trades and equity curve: the same figures (maintained bar by bar
        # live, computed over the whole curve by the backtest).
        # Report metrics (Burke, alpha, beta) belong to backtests only.
        names = [f.name for f in c.Metrics.DESCRIPTOR.fields if f.name not in REPORT_METRIC_NAMES]
        diff = {
            k: (getattr(perf.metrics, k), getattr(bt.metrics, k))
            for k in names
            if not math.isclose(
                getattr(perf.metrics, k), getattr(bt.metrics, k), rel_tol=1e-6, abs_tol=1e-9
            )
        }
        assert diff == {}, (name, diff)
        assert same(perf.drawdown, bt.equity_curve[-1].drawdown)
        assert perf.unrealized_pnl == pytest.approx(0.0, abs=1e-6)
