"""The parallel sweep agrees with one-at-a-time backtests and stays independent of threads."""

from __future__ import annotations

import numba
import numpy as np
import pytest

from stratopt.engine.grid_sweep import sweep_grid
from stratopt.engine.metrics import METRIC_NAMES, compute_metrics
from stratopt.engine.options import ExecutionOptions
from stratopt.engine.simulator import simulate

from ._signals import price_arrays, random_walk_bars, sma_cross_signal

PPY = 8766.0


def _grid() -> np.ndarray:
    return np.array([[f, s] for f in (3, 7, 15) for s in (20, 45) if f < s], dtype=np.float64)


@pytest.mark.parametrize(
    "cfg",
    [
        ExecutionOptions(),
        ExecutionOptions(
            commission=0.001,
            slippage=0.0005,
            direction="both",
            stop_loss=0.02,
            take_profit=0.04,
            trailing_stop=0.015,
        ),
    ],
)
def test_sweep_rows_equal_single_backtests(cfg: ExecutionOptions) -> None:
    bars = random_walk_bars(4000, seed=7)
    prices = price_arrays(bars)
    grid = _grid()
    matrix = sweep_grid(*prices, sma_cross_signal, grid, cfg.to_vector(), PPY)
    assert matrix.shape == (len(grid), len(METRIC_NAMES))
    for row, params in zip(matrix, grid, strict=True):
        targets = sma_cross_signal(*prices, params)
        run = simulate(*prices[:4], targets, cfg)
        expected = compute_metrics(
            run.equity,
            run.trades,
            bars["ts"],
            PPY,
            close=bars["close"],
            position=run.position,
            initial_cash=cfg.initial_cash,
        )
        np.testing.assert_allclose(row, [expected[m] for m in METRIC_NAMES], rtol=1e-12)


def test_sweep_is_independent_of_thread_count() -> None:
    bars = random_walk_bars(2000, seed=2)
    prices = price_arrays(bars)
    cfg = ExecutionOptions(commission=0.001).to_vector()
    parallel = sweep_grid(*prices, sma_cross_signal, _grid(), cfg, PPY)
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        serial = sweep_grid(*prices, sma_cross_signal, _grid(), cfg, PPY)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(parallel, serial)


def test_sweep_accepts_read_only_and_strided_inputs() -> None:
    bars = random_walk_bars(1000, seed=3)
    prices = tuple(a.copy() for a in price_arrays(bars))
    for arr in prices:
        arr.flags.writeable = False
    grid = np.asfortranarray(_grid())
    o, h, lo, c, v = prices
    matrix = sweep_grid(o, h, lo, c, v, sma_cross_signal, grid, ExecutionOptions().to_vector(), PPY)
    assert np.isfinite(matrix).all()


def test_empty_grid_gives_empty_matrix() -> None:
    bars = random_walk_bars(100)
    prices = price_arrays(bars)
    out = sweep_grid(
        *prices, sma_cross_signal, np.empty((0, 2)), ExecutionOptions().to_vector(), PPY
    )
    assert out.shape == (0, len(METRIC_NAMES))
    with pytest.raises(ValueError, match="2-D"):
        sweep_grid(*prices, sma_cross_signal, np.ones(3), ExecutionOptions().to_vector(), PPY)
