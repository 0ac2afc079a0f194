"""Issue 11 metrics (Burke, alpha/beta, win/loss counts, trades per month, deflated Sharpe)
against independent plain-numpy computations."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from stratopt.engine.metrics import (
    EULER_GAMMA,
    REPORT_METRIC_NAMES,
    compute_metrics,
    deflated_sharpe_ratio,
    report_metrics,
)
from stratopt.engine.simulator import TRADE_DTYPE

DAY_NS = 86_400 * 10**9


def _burke_reference(equity: np.ndarray, initial: float, ppy: float) -> float:
    curve = np.concatenate([[initial], equity])
    peaks = np.maximum.accumulate(curve)
    dd = 1.0 - curve / peaks
    # Episodes: maximal runs of bars below the running peak; each contributes its deepest dd.
    episodes: list[float] = []
    current = 0.0
    for value, under in zip(dd, curve < peaks, strict=True):
        if under:
            current = max(current, value)
        elif current > 0.0:
            episodes.append(current)
            current = 0.0
    if current > 0.0:
        episodes.append(current)
    years = len(equity) / ppy
    growth = (equity[-1] / initial) ** (1.0 / years) - 1.0
    return growth / math.sqrt(sum(d * d for d in episodes)) if episodes else 0.0


def test_burke_alpha_beta_match_numpy() -> None:
    rng = np.random.default_rng(7)
    n = 500
    close = 100.0 * np.cumprod(1.0 + rng.normal(0.0005, 0.01, n))
    bench = close[1:] / close[:-1] - 1.0
    own = 0.6 * bench + rng.normal(0.0002, 0.004, n - 1)
    initial = 1_000.0
    equity = np.concatenate([[initial * 1.001], initial * 1.001 * np.cumprod(1.0 + own)])
    ppy = 252.0
    got = report_metrics(equity, close, initial_cash=initial, periods_per_year=ppy)
    assert list(got) == list(REPORT_METRIC_NAMES)
    r = equity[1:] / equity[:-1] - 1.0
    beta = np.cov(r, bench, ddof=1)[0, 1] / np.var(bench, ddof=1)
    alpha = (r.mean() - beta * bench.mean()) * ppy
    assert got["beta"] == pytest.approx(beta, rel=1e-9)
    assert got["beta"] == pytest.approx(0.6, abs=0.05)
    assert got["alpha"] == pytest.approx(alpha, rel=1e-9)
    burke = _burke_reference(equity, initial, ppy)
    assert burke != 0.0
    assert got["burke_ratio"] == pytest.approx(burke, rel=1e-9)


def test_burke_hand_computed_two_episodes() -> None:
    # Peak 100 -> 90 (10 %), new peak 120 -> 96 (20 %), ends under water.
    equity = np.array([100.0, 90.0, 120.0, 96.0])
    got = report_metrics(equity, np.ones(4), initial_cash=100.0, periods_per_year=4.0)
    assert got["burke_ratio"] == pytest.approx((0.96 - 1.0) / math.sqrt(0.1**2 + 0.2**2))
    # A flat benchmark has no variance: beta is undefined (0), alpha the annualized mean.
    assert got["beta"] == 0.0
    r = equity[1:] / equity[:-1] - 1.0
    assert got["alpha"] == pytest.approx(r.mean() * 4.0)


def test_report_metrics_undefined_are_zero() -> None:
    flat = np.full(10, 100.0)
    got = report_metrics(flat, np.linspace(1, 2, 10), initial_cash=100.0, periods_per_year=365.25)
    assert got == dict.fromkeys(REPORT_METRIC_NAMES, 0.0)
    assert report_metrics(
        np.zeros(0), np.zeros(0), initial_cash=1.0, periods_per_year=1.0
    ) == dict.fromkeys(REPORT_METRIC_NAMES, 0.0)


def test_trade_counts_and_trades_per_month() -> None:
    trades = np.zeros(5, dtype=TRADE_DTYPE)
    trades["pnl"] = [5.0, -2.0, 0.0, 3.0, -1.0]
    trades["ret"] = [0.05, -0.02, 0.0, 0.03, -0.01]
    trades["bars_held"] = 1
    n = 730  # two years of daily bars at 365 per year
    m = compute_metrics(
        np.full(n, 100.0),
        trades,
        np.arange(n, dtype=np.int64) * DAY_NS,
        365.0,
        close=np.ones(n),
        position=np.zeros(n),
        initial_cash=100.0,
    )
    assert m["winning_trades"] == 2.0
    assert m["losing_trades"] == 2.0
    assert m["trades_per_month"] == pytest.approx(5 / 24)


def _dsr_reference(sr: float, trials: np.ndarray, t: int, skew: float, kurt: float) -> float:
    n = len(trials)
    var = np.var(trials, ddof=1)
    sr0 = math.sqrt(var) * (
        (1 - EULER_GAMMA) * stats.norm.ppf(1 - 1 / n)
        + EULER_GAMMA * stats.norm.ppf(1 - 1 / (n * math.e))
    )
    z = (sr - sr0) * math.sqrt(t - 1) / math.sqrt(1 - skew * sr + (kurt - 1) / 4 * sr**2)
    return float(stats.norm.cdf(z))


def test_deflated_sharpe_matches_reference() -> None:
    rng = np.random.default_rng(3)
    returns = rng.standard_t(5, size=1_250) * 0.01 + 0.001
    sr = returns.mean() / returns.std(ddof=1)
    skew = float(stats.skew(returns))
    kurt = float(stats.kurtosis(returns, fisher=False))
    trials = np.concatenate([rng.normal(0.0, 0.03, 99), [sr]])
    got = deflated_sharpe_ratio(sr, trials, len(returns), skew, kurt)
    assert got == pytest.approx(_dsr_reference(sr, trials, len(returns), skew, kurt), rel=1e-9)
    assert 0.0 < got < 1.0


def test_more_trials_deflate_more() -> None:
    rng = np.random.default_rng(5)
    few = deflated_sharpe_ratio(0.05, rng.normal(0, 0.02, 10), 1_000, 0.0, 3.0)
    many = deflated_sharpe_ratio(0.05, rng.normal(0, 0.02, 10_000), 1_000, 0.0, 3.0)
    assert many < few
    # One trial: no selection bias, DSR is the probabilistic Sharpe ratio against 0.
    psr = deflated_sharpe_ratio(0.05, np.array([0.05]), 1_000, 0.0, 3.0)
    assert psr == pytest.approx(stats.norm.cdf(0.05 * math.sqrt(999) / math.sqrt(1 + 0.5 * 0.0025)))
    assert deflated_sharpe_ratio(0.05, np.array([0.05]), 1, 0.0, 3.0) == 0.0


def test_metrics_message_carries_the_new_fields() -> None:
    from stratopt.api.backtest_convert import metrics_to_pb

    pb = metrics_to_pb(
        {
            "burke_ratio": 1.5,
            "alpha": 0.1,
            "beta": 0.8,
            "winning_trades": 3.0,
            "losing_trades": 2.0,
            "trades_per_month": 0.5,
        }
    )
    assert (pb.burke_ratio, pb.alpha, pb.beta) == (1.5, 0.1, 0.8)
    assert (pb.winning_trades, pb.losing_trades, pb.trades_per_month) == (3, 2, 0.5)
