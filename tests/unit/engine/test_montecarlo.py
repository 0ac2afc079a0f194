"""Monte Carlo resampling: reproducible, correctly shaped, and mathematically sane."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from stratopt.engine.montecarlo import (
    PERCENTILES,
    bar_returns,
    monte_carlo,
    trade_equity_returns,
)


@pytest.fixture
def pnl() -> np.ndarray:
    return np.random.default_rng(5).normal(20.0, 150.0, 300)


def test_same_seed_same_result_other_seed_differs(pnl: np.ndarray) -> None:
    a = monte_carlo(method="bootstrap", trade_pnl=pnl, n_sims=400, seed=11)
    b = monte_carlo(method="bootstrap", trade_pnl=pnl, n_sims=400, seed=11)
    c = monte_carlo(method="bootstrap", trade_pnl=pnl, n_sims=400, seed=12)
    np.testing.assert_array_equal(a.final_returns, b.final_returns)
    np.testing.assert_array_equal(a.max_drawdowns, b.max_drawdowns)
    assert not np.array_equal(a.final_returns, c.final_returns)


def test_results_do_not_depend_on_thread_count(pnl: np.ndarray) -> None:
    equity = 10_000 + np.cumsum(np.random.default_rng(1).normal(1.0, 50.0, 2000))
    parallel = monte_carlo(method="block_bootstrap", equity=equity, n_sims=64, seed=3)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        serial = monte_carlo(method="block_bootstrap", equity=equity, n_sims=64, seed=3)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(parallel.final_returns, serial.final_returns)


def test_shuffle_keeps_final_return_and_varies_drawdown(pnl: np.ndarray) -> None:
    res = monte_carlo(method="shuffle", trade_pnl=pnl, n_sims=500, seed=1)
    realized = 10_000.0 + pnl.sum()
    np.testing.assert_allclose(res.final_returns, realized / 10_000.0 - 1.0, rtol=1e-9)
    assert res.max_drawdowns.std() > 0
    assert res.prob_loss in (0.0, 1.0)


def test_percentiles_shapes_and_order(pnl: np.ndarray) -> None:
    res = monte_carlo(method="bootstrap", trade_pnl=pnl, n_sims=1000, seed=2)
    assert res.final_returns.shape == res.max_drawdowns.shape == (1000,)
    assert tuple(res.final_return) == tuple(res.max_drawdown) == PERCENTILES
    values = list(res.final_return.values())
    assert values == sorted(values)
    assert res.final_return[50] == pytest.approx(np.percentile(res.final_returns, 50))
    assert res.prob_loss == pytest.approx(np.mean(res.final_returns < 0))
    assert min(res.max_drawdown.values()) >= 0.0 and max(res.max_drawdown.values()) <= 1.0


def test_block_of_full_length_is_a_rotation_with_same_final_return() -> None:
    equity = 100.0 * np.cumprod(1 + np.random.default_rng(9).normal(0.001, 0.01, 250))
    res = monte_carlo(
        method="block_bootstrap",
        equity=equity,
        initial_cash=100.0,
        n_sims=50,
        seed=4,
        block_size=250,
    )
    np.testing.assert_allclose(res.final_returns, equity[-1] / 100.0 - 1.0, rtol=1e-9)


def test_block_bootstrap_drawdowns_match_a_direct_path_for_block_one() -> None:
    equity = np.array([110.0, 99.0, 120.0])
    res = monte_carlo(
        method="block_bootstrap",
        equity=equity,
        initial_cash=100.0,
        n_sims=200,
        seed=0,
        block_size=1,
    )
    returns = bar_returns(equity, 100.0)
    # every path is a product of three draws from the returns, so finals lie on that grid
    possible = {
        round(float(np.prod(1 + returns[[i, j, k]])) - 1, 12)
        for i in range(3)
        for j in range(3)
        for k in range(3)
    }
    assert {round(float(v), 12) for v in res.final_returns} <= possible


def test_trade_equity_returns_compound_to_final_equity(pnl: np.ndarray) -> None:
    rets = trade_equity_returns(pnl, 10_000.0)
    assert np.prod(1 + rets) * 10_000.0 == pytest.approx(10_000.0 + pnl.sum())


def test_no_trades_and_bad_arguments() -> None:
    res = monte_carlo(method="shuffle", trade_pnl=np.empty(0), n_sims=10)
    assert np.all(res.final_returns == 0.0) and res.prob_loss == 0.0
    with pytest.raises(ValueError, match="trade_pnl"):
        monte_carlo(method="bootstrap")
    with pytest.raises(ValueError, match="equity"):
        monte_carlo(method="block_bootstrap")
    with pytest.raises(ValueError, match="method"):
        monte_carlo(method="jackknife", trade_pnl=np.ones(3))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="n_sims"):
        monte_carlo(trade_pnl=np.ones(3), n_sims=0)
