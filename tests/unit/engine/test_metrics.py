"""Metrics against hand-computed values and independent numpy/pandas formulas."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from stratopt.engine.metrics import (
    METRIC_NAMES,
    METRICS,
    compute_metrics,
    infer_periods_per_year,
    metric_index,
    metrics_vector,
    summarize,
    trade_rows,
)
from stratopt.engine.options import ExecutionOptions
from stratopt.engine.simulator import TRADE_DTYPE, simulate

from ._signals import random_walk_bars, sma_cross_signal

HOUR_NS = 3_600_000_000_000
DAY_NS = 24 * HOUR_NS


def make_trades(rets: list[float], pnls: list[float], held: list[int]) -> np.ndarray:
    trades = np.zeros(len(rets), dtype=TRADE_DTYPE)
    trades["ret"] = rets
    trades["pnl"] = pnls
    trades["bars_held"] = held
    return trades


def metrics_for(
    equity: list[float],
    trades: np.ndarray | None = None,
    initial: float = 100.0,
    ppy: float = 365.25,
    close: list[float] | None = None,
    position: list[float] | None = None,
) -> dict[str, float]:
    n = len(equity)
    return compute_metrics(
        np.array(equity, dtype=np.float64),
        trades if trades is not None else np.zeros(0, dtype=TRADE_DTYPE),
        np.arange(n, dtype=np.int64) * DAY_NS,
        ppy,
        close=np.array(close or [1.0] * n),
        position=np.array(position or [0.0] * n),
        initial_cash=initial,
    )


def test_hand_computed_equity_metrics() -> None:
    m = metrics_for([110.0, 99.0, 120.0, 108.0], ppy=4.0)
    returns = np.array([0.1, -0.1, 120 / 99 - 1, 108 / 120 - 1])
    assert m["total_return"] == pytest.approx(0.08)
    assert m["cagr"] == pytest.approx(0.08)  # 4 bars at 4 per year = one year
    assert m["max_drawdown"] == pytest.approx(0.1)  # 110 -> 99 and 120 -> 108
    assert m["max_drawdown_duration"] == 1.0
    dd = np.array([0.0, 0.1, 0.0, 0.1])
    assert m["ulcer_index"] == pytest.approx(math.sqrt(np.mean(dd**2)))
    vol = returns.std(ddof=1)
    assert m["annual_volatility"] == pytest.approx(vol * 2.0)
    assert m["sharpe"] == pytest.approx(returns.mean() / vol * 2.0)
    downside = math.sqrt(np.mean(np.minimum(returns, 0.0) ** 2))
    assert m["sortino"] == pytest.approx(returns.mean() / downside * 2.0)
    assert m["calmar"] == pytest.approx(0.08 / 0.1)


def test_drawdown_duration_counts_bars_below_peak() -> None:
    m = metrics_for([101, 100, 99, 100, 102, 101, 103])
    assert m["max_drawdown_duration"] == 3.0
    assert m["max_drawdown"] == pytest.approx(1 - 99 / 101)


def test_trade_metrics_hand_computed() -> None:
    trades = make_trades(
        rets=[0.10, -0.05, 0.02, -0.01], pnls=[10.0, -5.0, 2.0, -1.0], held=[3, 1, 2, 6]
    )
    m = metrics_for([100.0] * 4, trades=trades)
    assert m["num_trades"] == 4.0
    assert m["win_rate"] == 0.5
    assert m["profit_factor"] == pytest.approx(12.0 / 6.0)
    assert m["expectancy"] == pytest.approx(0.015)
    assert m["avg_win"] == pytest.approx(0.06)
    assert m["avg_loss"] == pytest.approx(-0.03)
    assert m["largest_win"] == pytest.approx(0.10)
    assert m["largest_loss"] == pytest.approx(-0.05)
    assert m["avg_trade_duration"] == pytest.approx(3.0)
    std = np.std([0.10, -0.05, 0.02, -0.01], ddof=1)
    assert m["sqn"] == pytest.approx(2.0 * 0.015 / std)
    assert m["kelly"] == pytest.approx(0.5 - 0.5 / (0.06 / 0.03))


def test_exposure_and_buy_and_hold() -> None:
    m = metrics_for([100.0] * 4, close=[10.0, 11.0, 12.0, 15.0], position=[0.0, 2.0, -1.0, 0.0])
    assert m["exposure"] == 0.5
    assert m["buy_and_hold_return"] == pytest.approx(0.5)


def test_matches_pandas_on_a_real_backtest() -> None:
    bars = random_walk_bars(3000, seed=4)
    targets = sma_cross_signal(
        bars["open"],
        bars["high"],
        bars["low"],
        bars["close"],
        bars["volume"],
        np.array([8.0, 40.0]),
    )
    cfg = ExecutionOptions(commission=0.0005, direction="both", stop_loss=0.03)
    run = simulate(bars["open"], bars["high"], bars["low"], bars["close"], targets, cfg)
    m = compute_metrics(
        run.equity,
        run.trades,
        bars["ts"],
        close=bars["close"],
        position=run.position,
        initial_cash=cfg.initial_cash,
    )
    ppy = 8766.0  # hourly bars on a 365.25-day year
    equity = pd.Series(np.r_[cfg.initial_cash, run.equity])
    rets = equity.pct_change().dropna()
    assert m["sharpe"] == pytest.approx(rets.mean() / rets.std() * math.sqrt(ppy), rel=1e-9)
    assert m["annual_volatility"] == pytest.approx(rets.std() * math.sqrt(ppy), rel=1e-9)
    dd = 1 - equity / equity.cummax()
    assert m["max_drawdown"] == pytest.approx(dd.max(), rel=1e-9)
    assert m["ulcer_index"] == pytest.approx(math.sqrt((dd.iloc[1:] ** 2).mean()), rel=1e-9)
    years = len(run.equity) / ppy
    final = run.equity[-1] / cfg.initial_cash
    assert m["cagr"] == pytest.approx(final ** (1 / years) - 1, rel=1e-9)
    trades = pd.DataFrame(run.trades)
    assert m["num_trades"] == len(trades) > 10
    assert m["win_rate"] == pytest.approx((trades.pnl > 0).mean())
    assert m["profit_factor"] == pytest.approx(
        trades.pnl[trades.pnl > 0].sum() / -trades.pnl[trades.pnl < 0].sum()
    )
    assert m["exposure"] == pytest.approx((run.position != 0).mean())


def test_no_trades_and_flat_equity_are_finite_zeros() -> None:
    m = metrics_for([100.0] * 10)
    assert all(math.isfinite(v) for v in m.values())
    for name in (
        "sharpe",
        "sortino",
        "calmar",
        "annual_volatility",
        "max_drawdown",
        "profit_factor",
        "win_rate",
        "sqn",
        "kelly",
        "expectancy",
        "num_trades",
    ):
        assert m[name] == 0.0, name


def test_constant_growth_counts_as_zero_volatility() -> None:
    m = metrics_for(list(100.0 * 1.01 ** np.arange(1, 50)))
    assert m["annual_volatility"] == 0.0
    assert m["sharpe"] == 0.0
    assert m["sortino"] == 0.0  # no downside: undefined, reported as 0
    assert m["total_return"] > 0.6


def test_all_winning_trades_have_undefined_profit_factor() -> None:
    trades = make_trades([0.1, 0.2], [10.0, 20.0], [1, 1])
    m = metrics_for([100.0, 130.0], trades=trades)
    assert m["profit_factor"] == 0.0
    assert m["kelly"] == 0.0
    assert m["avg_loss"] == 0.0 and m["largest_loss"] == 0.0


def test_wiped_out_account() -> None:
    m = metrics_for([50.0, 0.0, 0.0])
    assert m["total_return"] == -1.0
    assert m["cagr"] == -1.0
    assert m["max_drawdown"] == 1.0
    assert all(math.isfinite(v) for v in m.values())


def test_cagr_overflow_is_finite() -> None:
    m = metrics_for([1e6, 1e12], ppy=1e6)
    assert m["cagr"] == 0.0 and m["total_return"] > 0


def test_registry_matches_vector_order() -> None:
    bars = random_walk_bars(500, seed=1)
    targets = sma_cross_signal(
        bars["open"],
        bars["high"],
        bars["low"],
        bars["close"],
        bars["volume"],
        np.array([5.0, 20.0]),
    )
    run = simulate(bars["open"], bars["high"], bars["low"], bars["close"], targets)
    summary = summarize(
        run.equity, 10_000.0, trade_rows(run.trades), run.position, bars["close"], 8766.0
    )
    vector = metrics_vector(summary)
    assert len(vector) == len(METRIC_NAMES) == len(METRICS)
    for i, name in enumerate(METRIC_NAMES):
        assert METRICS[name].fn(summary) == vector[i], name
        assert METRICS[name].direction in ("maximize", "minimize")
        assert METRICS[name].description
    assert metric_index("sharpe") == METRIC_NAMES.index("sharpe")
    with pytest.raises(KeyError, match="unknown metric"):
        metric_index("alpha")


@pytest.mark.parametrize(
    ("spacing_ns", "expected"),
    [(DAY_NS, 365.25), (HOUR_NS, 8766.0), (60_000_000_000, 525960.0)],
)
def test_infer_periods_per_year(spacing_ns: int, expected: float) -> None:
    ts = np.arange(50, dtype=np.int64) * spacing_ns
    ts[10:] += spacing_ns * 3  # a gap does not move the median
    assert infer_periods_per_year(ts) == pytest.approx(expected)


def test_infer_periods_per_year_on_long_series_and_fallback() -> None:
    ts = np.arange(100_000, dtype=np.int64) * HOUR_NS
    assert infer_periods_per_year(ts) == pytest.approx(8766.0)
    assert infer_periods_per_year(np.array([5], dtype=np.int64)) == 365.25
