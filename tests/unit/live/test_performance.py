"""PerformanceTracker: incremental metrics equal engine.metrics.compute_metrics.

Three references: the live run's own curve (every variant, so fill_on_close too), the
backtest of the same bars (next-open variants: after the live run is flattened at the last
close, which is the backtest's end-of-data exit, the two runs are the same), and random
curves built to hit the edge cases (dead account, flat curve, no losing trade, ...).
"""

from __future__ import annotations

import json
import math
import zlib
from typing import Any

import numpy as np
import pytest

from stratopt import engine
from stratopt.engine.metrics import METRIC_NAMES, compute_metrics, infer_periods_per_year
from stratopt.engine.options import ExecutionOptions
from stratopt.engine.simulator import TRADE_DTYPE, simulate
from stratopt.live.bars import LiveBar
from stratopt.live.broker import ClosedTrade, Fill
from stratopt.live.performance import (
    ACCOUNT_FIGURES,
    MAX_SPACINGS,
    PerformanceTracker,
)
from stratopt.live.runner import StepResult, StrategyRun
from stratopt.live.signals import EnsembleSignal, StrategySignal
from stratopt.strategies import registry

from ._replay import backtest_combine, live_bars, synthetic

N_BARS = 1500
REL = 1e-9
ABS = 1e-12

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
def feed(bars: Any) -> list[LiveBar]:
    return live_bars(bars)


def assert_metrics_close(got: dict[str, float], expected: dict[str, float]) -> float:
    """Every metric within REL (or ABS near 0); returns the worst relative difference."""
    assert list(got) == list(METRIC_NAMES)
    worst = 0.0
    for name in METRIC_NAMES:
        a, e = got[name], float(expected[name])
        assert math.isfinite(a), name
        assert a == pytest.approx(e, rel=REL, abs=ABS), (name, a, e)
        if a != e:
            worst = max(worst, abs(a - e) / max(abs(e), 1e-300))
    return worst


def live_metrics_reference(
    steps: list[StepResult], feed: list[LiveBar], initial: float, ppy: float | None = None
) -> dict[str, float]:
    """compute_metrics over the curve the live run itself produced."""
    n = len(steps)
    trades = [t for s in steps for t in s.trades]
    rows = np.zeros(len(trades), dtype=TRADE_DTYPE)
    rows["pnl"] = [t.pnl for t in trades]
    rows["ret"] = [t.ret for t in trades]
    rows["bars_held"] = [t.bars_held for t in trades]
    return compute_metrics(
        np.array([s.equity for s in steps]),
        rows,
        np.array([b.ts for b in feed[:n]], dtype=np.int64),
        ppy,
        close=np.array([b.close for b in feed[:n]]),
        position=np.array([s.position for s in steps]),
        initial_cash=initial,
    )


def track(run: StrategyRun, feed: list[LiveBar], tracker: PerformanceTracker) -> list[StepResult]:
    steps = []
    for bar in feed:
        step = run.step(bar)
        tracker.update(step, close=bar.close)
        steps.append(step)
    return steps


@pytest.mark.parametrize("variant", list(VARIANTS))
@pytest.mark.parametrize("name", registry.names())
def test_replay_metrics_equal_compute_metrics(
    name: str, variant: str, bars: Any, feed: list[LiveBar]
) -> None:
    stype = registry.get(name)
    options = ExecutionOptions(**VARIANTS[variant])
    run = StrategyRun(StrategySignal(stype), options, feed[0].symbol)
    tracker = PerformanceTracker(options.initial_cash, options.periods_per_year)
    steps = track(run, feed, tracker)
    assert tracker.metrics()["num_trades"] > 0
    # The live curve, bar for bar (fill_on_close included).
    assert_metrics_close(tracker.metrics(), live_metrics_reference(steps, feed, 10_000.0))
    if options.fill_on_close:
        return  # the backtest refuses to enter at its last close; test_live_replay covers it
    # The backtest: flattening the live run at the last close is its end-of-data exit.
    tracker.update(run.close_position())
    expected = engine.backtest(bars, stype, {}, options).metrics
    assert_metrics_close(tracker.metrics(), expected)


def test_ensemble_replay_metrics_equal_the_backtest(bars: Any, feed: list[LiveBar]) -> None:
    members = [
        (registry.get("sma_crossover"), {}, 1.0),
        (registry.get("ema_crossover"), {"fast": 8}, 0.5),
        (registry.get("rsi_reversion"), {}, 2.0),
    ]
    options = ExecutionOptions(**VARIANTS["protective_both"])
    prices = (bars.open, bars.high, bars.low, bars.close, bars.volume)
    targets = [s.signal(*prices, np.ascontiguousarray(s.to_vector(p))) for s, p, _ in members]
    combined = backtest_combine()(targets, [w for *_, w in members], "weighted_vote")
    sim = simulate(bars.open, bars.high, bars.low, bars.close, combined, options)
    expected = compute_metrics(
        sim.equity,
        sim.trades,
        bars.ts,
        close=bars.close,
        position=sim.position,
        initial_cash=options.initial_cash,
    )
    run = StrategyRun(EnsembleSignal(members, "weighted_vote"), options, feed[0].symbol)
    tracker = PerformanceTracker(options.initial_cash, None)
    track(run, feed, tracker)
    tracker.update(run.close_position())
    assert_metrics_close(tracker.metrics(), expected)


def test_explicit_periods_per_year_and_warm_up(feed: list[LiveBar]) -> None:
    """A run after a warm-up: indices start at 0 on the first traded bar; ppy is given."""
    stype = registry.get("supertrend")
    options = ExecutionOptions(direction="both", commission=0.001, periods_per_year=252)
    run = StrategyRun(StrategySignal(stype), options, feed[0].symbol)
    run.warm_up(feed[:300])
    tracker = PerformanceTracker(options.initial_cash, 252)
    steps = track(run, feed[300:], tracker)
    assert tracker.inferred_periods_per_year() == 252
    expected = live_metrics_reference(steps, feed[300:], options.initial_cash, 252)
    assert_metrics_close(tracker.metrics(), expected)


@pytest.mark.parametrize(
    ("name", "variant", "cut"),
    [
        ("sma_crossover", "protective_both", 700),
        ("rsi_reversion", "fill_on_close", 1),
        ("supertrend", "costs", 1499),
    ],
)
def test_snapshot_restore_mid_run_equals_uninterrupted(
    name: str, variant: str, cut: int, feed: list[LiveBar]
) -> None:
    stype = registry.get(name)
    options = ExecutionOptions(**VARIANTS[variant])
    straight_run = StrategyRun(StrategySignal(stype), options, feed[0].symbol)
    straight = PerformanceTracker(options.initial_cash, None)
    track(straight_run, feed, straight)

    run = StrategyRun(StrategySignal(stype), options, feed[0].symbol)
    first = PerformanceTracker(options.initial_cash, None)
    track(run, feed[:cut], first)
    saved = json.loads(json.dumps(first.snapshot()))  # what a database row holds
    del first
    resumed = PerformanceTracker.restore(saved)
    assert resumed.snapshot() == saved
    track(run, feed[cut:], resumed)
    assert resumed.metrics() == straight.metrics()
    assert resumed.to_dict() == straight.to_dict()
    assert resumed.snapshot() == straight.snapshot()
    # ...and a flatten after the resume restates the last bar the same way.
    if not options.fill_on_close:
        flat = run.close_position()
        twin = PerformanceTracker.restore(straight.snapshot())
        resumed.update(flat)
        twin.update(flat)
        assert resumed.metrics() == twin.metrics()


def test_snapshot_is_small_and_does_not_grow(feed: list[LiveBar]) -> None:
    stype = registry.get("macd_signal")
    options = ExecutionOptions(**VARIANTS["protective_both"])
    run = StrategyRun(StrategySignal(stype), options, feed[0].symbol)
    tracker = PerformanceTracker(options.initial_cash, None)
    track(run, feed[:300], tracker)
    early = tracker.snapshot()
    track(run, feed[300:], tracker)
    late = tracker.snapshot()
    assert late.keys() == early.keys()
    assert late["spacings"] == [[3_600_000_000_000, N_BARS - 1]]
    # No per-bar data: only the digits of the numbers change.
    assert len(json.dumps(late)) < 1_500
    assert abs(len(json.dumps(late)) - len(json.dumps(early))) < 100


def test_before_the_first_bar(feed: list[LiveBar]) -> None:
    tracker = PerformanceTracker(5_000.0, None)
    assert tracker.metrics() == dict.fromkeys(METRIC_NAMES, 0.0)
    account = tracker.to_dict()
    assert account["equity"] == 5_000.0 and account["cash"] == 5_000.0
    assert account["bars_processed"] == 0 and account["last_bar_ts"] is None
    assert set(tracker.figures()) == set(METRIC_NAMES) | set(ACCOUNT_FIGURES)
    assert PerformanceTracker.restore(tracker.snapshot()).snapshot() == tracker.snapshot()


def test_to_dict_follows_the_last_step(feed: list[LiveBar]) -> None:
    stype = registry.get("ema_crossover")
    options = ExecutionOptions(direction="both")
    run = StrategyRun(StrategySignal(stype), options, feed[0].symbol)
    tracker = PerformanceTracker(options.initial_cash, None)
    steps = track(run, feed[:400], tracker)
    last = steps[-1]
    assert tracker.to_dict() == {
        "equity": last.equity,
        "cash": last.cash,
        "position": last.side,
        "position_quantity": last.position,
        "realized_pnl": last.realized_pnl,
        "unrealized_pnl": last.unrealized_pnl,
        "drawdown": last.drawdown,
        "bars_processed": 400,
        "last_bar_ts": feed[399].ts,
    }
    figures = tracker.figures()
    assert figures["final_equity"] == figures["equity"] == last.equity
    assert figures["position"] == float(last.side)


def test_bars_out_of_order_are_refused(feed: list[LiveBar]) -> None:
    stype = registry.get("sma_crossover")
    run = StrategyRun(StrategySignal(stype), ExecutionOptions(), feed[0].symbol)
    steps = [run.step(bar) for bar in feed[:300]]
    tracker = PerformanceTracker(10_000.0, None)
    with pytest.raises(ValueError, match="expects bar 0"):
        tracker.update(steps[1])
    for step in steps[:100]:
        tracker.update(step)
    before = tracker.snapshot()
    with pytest.raises(ValueError, match="out of order"):
        tracker.update(steps[50])  # counted already
    with pytest.raises(ValueError, match="expects bar 100"):
        tracker.update(steps[101])  # one missed
    entry = next(s for s in steps[:100] if any(f.kind == "entry" for f in s.fills))
    tracker_at_entry = PerformanceTracker(10_000.0, None)
    for step in steps[: entry.bar_index + 1]:
        tracker_at_entry.update(step)
    with pytest.raises(ValueError, match="only a flatten may restate"):
        tracker_at_entry.update(entry)
    assert tracker.snapshot() == before


def test_invalid_construction_and_snapshots() -> None:
    with pytest.raises(ValueError, match="initial cash"):
        PerformanceTracker(0.0, None)
    with pytest.raises(ValueError, match="periods_per_year"):
        PerformanceTracker(1.0, -5.0)
    assert PerformanceTracker(1.0, 0.0).periods_per_year is None  # 0 means infer
    with pytest.raises(ValueError, match="version"):
        PerformanceTracker.restore({"version": 99})
    broken = PerformanceTracker(1.0, None).snapshot()
    del broken["peak"]
    with pytest.raises(ValueError, match="lacks peak"):
        PerformanceTracker.restore(broken)


# -- periods per year ------------------------------------------------------------------------


def _tracker_over_times(ts: np.ndarray) -> PerformanceTracker:
    tracker = PerformanceTracker(100.0, None)
    for i, t in enumerate(ts.tolist()):
        tracker.update(_step(i, t, 100.0, 0.0))
    return tracker


@pytest.mark.parametrize("seed", range(6))
def test_inferred_periods_per_year_equals_the_engine(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 2_002))  # up to 2,001 gaps: the engine takes the exact median
    choices = rng.choice(np.arange(1, 10_000), size=int(rng.integers(1, MAX_SPACINGS + 1)))
    gaps = rng.choice(choices * 1_000_000_000, size=n - 1)
    ts = np.concatenate([[1_600_000_000_000_000_000], 1_600_000_000_000_000_000 + np.cumsum(gaps)])
    tracker = _tracker_over_times(ts)
    assert tracker.inferred_periods_per_year() == infer_periods_per_year(ts)


def test_inferred_periods_per_year_with_weekends_and_missing_bars() -> None:
    daily = generate_weekday_ts(800)
    assert _tracker_over_times(daily).inferred_periods_per_year() == infer_periods_per_year(daily)
    hourly = np.arange(5_000, dtype=np.int64) * 3_600_000_000_000
    hourly = np.delete(hourly, np.arange(7, 5_000, 97))  # a bar missing now and then
    assert _tracker_over_times(hourly).inferred_periods_per_year() == 8766.0
    assert infer_periods_per_year(hourly) == 8766.0
    one = _tracker_over_times(hourly[:1])
    assert one.inferred_periods_per_year() == infer_periods_per_year(hourly[:1]) == 365.25


def generate_weekday_ts(n: int) -> np.ndarray:
    from stratopt.data.synthetic import generate_bars

    return np.asarray(generate_bars(n, timeframe="1d", weekdays_only=True, seed=1).ts)


# -- edge cases on random curves -------------------------------------------------------------


def _step(
    t: int,
    ts: int,
    equity: float,
    position: float,
    trades: tuple[ClosedTrade, ...] = (),
    fills: tuple[Fill, ...] = (),
) -> StepResult:
    return StepResult(
        bar_index=t, ts=ts, symbol="X", target=0, signal=None, fills=fills, trades=trades,
        side=int(np.sign(position)), position=position, cash=equity, equity=equity,
        realized_pnl=0.0, unrealized_pnl=0.0, peak_equity=equity, drawdown=0.0,
    )  # fmt: skip


def _trade(t: int, pnl: float, ret: float, held: int) -> ClosedTrade:
    return ClosedTrade(t - held, t, 1, 1.0, 1.0, 1.0, pnl, ret, held, "signal")


CASES = {
    "flat": lambda rng, n: np.full(n, 1_000.0),
    "random_walk": lambda rng, n: 1_000.0 * np.cumprod(1 + rng.normal(0, 0.01, n)),
    "dies": lambda rng, n: np.concatenate(
        [1_000.0 * np.cumprod(1 + rng.normal(0, 0.02, n // 2)), np.full(n - n // 2, -3.0)]
    ),
    "zero_then_flat": lambda rng, n: np.concatenate(
        [np.linspace(1_000.0, 1.0, n // 3), np.zeros(n - n // 3)]
    ),
    "only_up": lambda rng, n: 1_000.0 + np.arange(n, dtype=float),
    "constant_growth": lambda rng, n: 1_000.0 * 1.001 ** np.arange(1, n + 1),
    "huge_growth": lambda rng, n: 1_000.0 * 2.0 ** np.arange(1, n + 1),
}
TRADE_MIXES = ["none", "wins_only", "losses_only", "mixed", "one", "zero_pnl"]


def _trades_for(mix: str, rng: np.random.Generator, n: int) -> dict[int, list[ClosedTrade]]:
    out: dict[int, list[ClosedTrade]] = {}
    if mix == "none":
        return out
    bars = sorted(rng.choice(np.arange(5, n), size=1 if mix == "one" else 40, replace=False))
    for t in bars:
        ret = float(rng.normal(0, 0.03))
        if mix == "wins_only":
            ret = abs(ret) + 1e-4
        elif mix == "losses_only":
            ret = -abs(ret) - 1e-4
        pnl = 0.0 if mix == "zero_pnl" else ret * 1_000.0
        out.setdefault(int(t), []).append(_trade(int(t), pnl, ret, int(rng.integers(1, 5))))
    return out


@pytest.mark.parametrize("mix", TRADE_MIXES)
@pytest.mark.parametrize("case", list(CASES))
def test_random_curves_and_edge_cases(case: str, mix: str) -> None:
    rng = np.random.default_rng(zlib.crc32(f"{case}/{mix}".encode()))
    n = 300 if case == "huge_growth" else 600
    equity = CASES[case](rng, n)
    position = (rng.random(n) < 0.4).astype(float) * rng.choice([-2.0, 3.0], n)
    ts = 1_000 + np.cumsum(rng.choice([60, 60, 60, 120], n)).astype(np.int64) * 1_000_000_000
    close = 50.0 + rng.random(n)
    trades = _trades_for(mix, rng, n)
    tracker = PerformanceTracker(1_000.0, None)
    for t in range(n):
        tracker.update(
            _step(t, int(ts[t]), float(equity[t]), float(position[t]), tuple(trades.get(t, ()))),
            close=float(close[t]),
        )
    flat = [trade for t in sorted(trades) for trade in trades[t]]
    rows = np.zeros(len(flat), dtype=TRADE_DTYPE)
    rows["pnl"] = [t.pnl for t in flat]
    rows["ret"] = [t.ret for t in flat]
    rows["bars_held"] = [t.bars_held for t in flat]
    expected = compute_metrics(
        equity, rows, ts, close=close, position=position, initial_cash=1_000.0
    )
    assert_metrics_close(tracker.metrics(), expected)


def test_restating_the_last_bar_replaces_it() -> None:
    """A flatten restates the newest bar: its equity, more trades, still in the market."""
    equity = [1_000.0, 990.0, 1_020.0, 1_005.0]
    tracker = PerformanceTracker(1_000.0, None)
    for t, e in enumerate(equity):
        tracker.update(_step(t, 10**9 * (t + 1), e, 1.0))
    end = _trade(3, -7.0, -0.007, 3)
    tracker.update(_step(3, 4 * 10**9, 998.0, 0.0, (end,)))
    equity[-1] = 998.0
    rows = np.zeros(1, dtype=TRADE_DTYPE)
    rows["pnl"], rows["ret"], rows["bars_held"] = -7.0, -0.007, 3
    expected = compute_metrics(
        np.array(equity),
        rows,
        np.arange(1, 5, dtype=np.int64) * 10**9,
        close=np.ones(4),
        position=np.ones(4),
        initial_cash=1_000.0,
    )
    expected["buy_and_hold_return"] = 0.0  # no closes given
    assert_metrics_close(tracker.metrics(), expected)
    assert tracker.bars_processed == 4
    assert tracker.to_dict()["position"] == 0
