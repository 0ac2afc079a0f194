"""Walk-forward windows, per-window choices and the stitched out-of-sample account."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from stratopt.engine.grid_sweep import sweep_grid
from stratopt.engine.metrics import METRIC_NAMES
from stratopt.engine.options import ExecutionOptions
from stratopt.engine.walkforward import WalkForwardResult, Window, make_windows, walk_forward

from ._signals import price_arrays, random_walk_bars, sma_cross_signal

PPY = 8766.0
Outcome = tuple[dict[str, np.ndarray], tuple[Window, ...], WalkForwardResult]
GRID = np.array([[f, s] for f in (3, 6, 12) for s in (24, 48) if f < s], dtype=np.float64)


@pytest.mark.parametrize("anchored", [False, True])
def test_windows_tile_the_test_period(anchored: bool) -> None:
    windows = make_windows(10_000, n_windows=4, train_ratio=0.75, anchored=anchored)
    assert len(windows) == 4
    assert windows[-1].test_stop == 10_000
    for prev, nxt in itertools.pairwise(windows):
        assert prev.test_stop == nxt.test_start
    for w in windows:
        assert w.train_stop == w.test_start and w.train_start < w.train_stop
    train_lengths = {w.train_stop - w.train_start for w in windows}
    if anchored:
        assert {w.train_start for w in windows} == {0}
    else:
        assert len(train_lengths) == 1
        first = windows[0]
        ratio = (first.train_stop - first.train_start) / (first.test_stop - first.train_start)
        assert ratio == pytest.approx(0.75, abs=0.01)


def test_windows_reject_bad_settings() -> None:
    with pytest.raises(ValueError, match="too few"):
        make_windows(10, n_windows=5)
    with pytest.raises(ValueError, match="train_ratio"):
        make_windows(1000, train_ratio=1.0)


@pytest.fixture(scope="module")
def result() -> Outcome:
    bars = random_walk_bars(6000, seed=21)
    windows = make_windows(6000, n_windows=3, train_ratio=0.6)
    cfg = ExecutionOptions(commission=0.001).to_vector()
    return (
        bars,
        windows,
        walk_forward(bars, bars["ts"], sma_cross_signal, GRID, windows, cfg, PPY, metric="sharpe"),
    )


def test_best_params_are_in_sample_argmax(result: Outcome) -> None:
    bars, windows, res = result
    column = METRIC_NAMES.index("sharpe")
    for w, win in enumerate(windows):
        train = price_arrays(bars, win.train_start, win.train_stop)
        scores = sweep_grid(
            *train, sma_cross_signal, GRID, ExecutionOptions(commission=0.001).to_vector(), PPY
        )
        assert res.best_index[w] == int(np.argmax(scores[:, column]))
        np.testing.assert_array_equal(res.best_params[w], GRID[res.best_index[w]])
        np.testing.assert_allclose(res.in_sample[w], scores[res.best_index[w]])


def test_stitched_equity_chains_segments(result: Outcome) -> None:
    _, windows, res = result
    assert res.oos_start == windows[0].test_start
    assert res.oos_equity.shape == (6000 - windows[0].test_start,)
    total = 10_000.0 * np.prod([1 + row[0] for row in res.out_of_sample])
    assert res.oos_equity[-1] == pytest.approx(total)
    assert res.oos_metrics["total_return"] == pytest.approx(total / 10_000.0 - 1)
    for win in windows:  # a position open at a segment's end is closed there ("end")
        last = win.test_stop - 1
        closed_at_end = [t for t in res.oos_trades if t["exit_idx"] == last]
        if res.oos_position[last - res.oos_start] != 0.0:
            assert [t["exit_reason"] for t in closed_at_end] == [4]
    trades = res.oos_trades
    assert np.all(trades["entry_idx"] >= windows[0].test_start)
    assert len(trades) == int(
        sum(row[METRIC_NAMES.index("num_trades")] for row in res.out_of_sample)
    )


def test_efficiency_ratio_definition(result: Outcome) -> None:
    _, _, res = result
    is_cagr = res.in_sample[:, METRIC_NAMES.index("cagr")].mean()
    assert res.efficiency == pytest.approx(res.oos_metrics["cagr"] / is_cagr)


def test_minimize_metric_picks_smallest() -> None:
    bars = random_walk_bars(3000, seed=5)
    windows = (Window(0, 2000, 2000, 3000),)
    res = walk_forward(
        bars,
        bars["ts"],
        sma_cross_signal,
        GRID,
        windows,
        ExecutionOptions().to_vector(),
        PPY,
        metric="max_drawdown",
    )
    train = price_arrays(bars, 0, 2000)
    scores = sweep_grid(*train, sma_cross_signal, GRID, ExecutionOptions().to_vector(), PPY)
    assert res.best_index[0] == int(np.argmin(scores[:, METRIC_NAMES.index("max_drawdown")]))
