"""Walk-forward analysis: optimize on a window, trade the next unseen one, repeat.

Windows. The data is cut into ``n_windows`` consecutive test segments of equal length.
Rolling windows train on the ``train`` bars right before each test segment; anchored
windows always train from bar 0 (growing). With ``train_ratio = r`` and k windows the
rolling train length T and test length S satisfy ``T / (T + S) = r`` and ``T + k S = n``;
anchored windows use the same test segments, so the two schemes are directly comparable.

In-sample, every grid row is swept on the train bars and the best one by ``metric`` (its
METRICS direction decides max or min) is kept. Out-of-sample, the strategy's signal is
computed from the start of the train window to the end of the test window, so indicators
are warmed up without peeking past the test bars, and only the test bars are simulated.
Each test segment starts flat with the equity the previous one ended with and closes any
position at its last bar, so the stitched curve is a real account that was re-optimized
at every segment boundary.

Efficiency ratio: CAGR of the stitched out-of-sample equity over the mean in-sample CAGR
of the chosen parameters (0.0 when the in-sample CAGR is 0). Near 1 means the in-sample
performance carried over; well below 1 (or negative) means over-fitting.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from stratopt.engine.grid_sweep import sweep_grid
from stratopt.engine.metrics import METRIC_NAMES, METRICS, compute_metrics, metric_index
from stratopt.engine.simulator import (
    CFG_CASH,
    TRADE_COLUMNS,
    TRADE_DTYPE,
    as_targets,
    simulate_into,
    trades_from_buffer,
)


@dataclass(frozen=True)
class Window:
    """Half-open bar ranges [train_start, train_stop) and [test_start, test_stop)."""

    train_start: int
    train_stop: int
    test_start: int
    test_stop: int


@dataclass(frozen=True)
class WalkForwardResult:
    """Per-window choices and scores, and the stitched out-of-sample account."""

    windows: tuple[Window, ...]
    best_index: np.ndarray
    best_params: np.ndarray
    in_sample: np.ndarray = field(repr=False)
    out_of_sample: np.ndarray = field(repr=False)
    oos_start: int
    oos_equity: np.ndarray = field(repr=False)
    oos_position: np.ndarray = field(repr=False)
    oos_trades: np.ndarray = field(repr=False)
    oos_metrics: dict[str, float]
    efficiency: float


def make_windows(
    n: int, n_windows: int = 5, train_ratio: float = 0.7, anchored: bool = False
) -> tuple[Window, ...]:
    """Split n bars into walk-forward windows (see module doc for the arithmetic)."""
    if n_windows < 1:
        raise ValueError("n_windows must be >= 1")
    if not 0.0 < train_ratio < 1.0:
        raise ValueError("train_ratio must be in (0, 1)")
    span = n / (train_ratio + n_windows * (1.0 - train_ratio))
    train = round(span * train_ratio)
    test = (n - train) // n_windows
    if train < 2 or test < 2:
        raise ValueError(f"{n} bars are too few for {n_windows} windows of train and test")
    windows = []
    for i in range(n_windows):
        test_start = train + i * test
        test_stop = n if i == n_windows - 1 else test_start + test
        train_start = 0 if anchored else test_start - train
        windows.append(Window(train_start, test_start, test_start, test_stop))
    return tuple(windows)


def _pick_best(scores: np.ndarray, metric: str) -> int:
    """Row of the best score (first on ties); NaN never wins."""
    clean = np.where(np.isnan(scores), -np.inf, scores)
    if METRICS[metric].direction == "minimize":
        clean = np.where(np.isnan(scores), -np.inf, -scores)
    return int(np.argmax(clean))


def walk_forward(
    prices: dict[str, np.ndarray],
    ts: np.ndarray,
    signal: Callable[..., np.ndarray],
    grid: np.ndarray,
    windows: tuple[Window, ...],
    cfg: np.ndarray,
    periods_per_year: float,
    metric: str = "sharpe",
) -> WalkForwardResult:
    """Optimize on each window's train bars, trade its test bars, stitch the tests.

    ``prices`` maps open/high/low/close/volume to float64 arrays; ``cfg`` is a config
    vector (``ExecutionOptions.to_vector``) whose cash is the starting equity of the first
    test segment.
    """
    column = metric_index(metric)
    matrix = np.ascontiguousarray(grid, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise ValueError("grid must be a non-empty 2-D array of parameter vectors")
    names = ("open", "high", "low", "close", "volume")
    arrays = [np.ascontiguousarray(prices[k], dtype=np.float64) for k in names]
    oos_start, oos_stop = windows[0].test_start, windows[-1].test_stop
    length = oos_stop - oos_start
    equity = np.empty(length, dtype=np.float64)
    position = np.empty(length, dtype=np.float64)
    trade_parts: list[np.ndarray] = []
    best_index = np.empty(len(windows), dtype=np.int64)
    in_sample = np.empty((len(windows), len(METRIC_NAMES)))
    out_of_sample = np.empty((len(windows), len(METRIC_NAMES)))
    run_cfg = np.array(cfg, dtype=np.float64)
    initial = float(run_cfg[CFG_CASH])
    for w, win in enumerate(windows):
        o, h, lo, c, v = (a[win.train_start : win.train_stop] for a in arrays)
        scores = sweep_grid(o, h, lo, c, v, signal, matrix, run_cfg, periods_per_year)
        best_index[w] = _pick_best(scores[:, column], metric)
        in_sample[w] = scores[best_index[w]]
        seg = slice(win.test_start - oos_start, win.test_stop - oos_start)
        trades, metrics = _trade_test_segment(
            arrays,
            win,
            signal,
            matrix[best_index[w]],
            run_cfg,
            periods_per_year,
            equity[seg],
            position[seg],
        )
        out_of_sample[w] = metrics
        trade_parts.append(trades)
        if length and seg.stop > seg.start:
            run_cfg[CFG_CASH] = max(equity[seg.stop - 1], 0.0)
    all_trades = np.concatenate(trade_parts) if trade_parts else np.empty(0, TRADE_DTYPE)
    oos_metrics = compute_metrics(
        equity,
        all_trades,
        ts[oos_start:oos_stop],
        periods_per_year,
        close=arrays[3][oos_start:oos_stop],
        position=position,
        initial_cash=initial,
    )
    is_cagr = float(np.mean(in_sample[:, METRIC_NAMES.index("cagr")]))
    efficiency = oos_metrics["cagr"] / is_cagr if is_cagr != 0.0 else 0.0
    return WalkForwardResult(
        windows=windows,
        best_index=best_index,
        best_params=matrix[best_index].copy(),
        in_sample=in_sample,
        out_of_sample=out_of_sample,
        oos_start=oos_start,
        oos_equity=equity,
        oos_position=position,
        oos_trades=all_trades,
        oos_metrics=oos_metrics,
        efficiency=float(efficiency) if np.isfinite(efficiency) else 0.0,
    )


def _trade_test_segment(
    arrays: list[np.ndarray],
    win: Window,
    signal: Callable[..., np.ndarray],
    params: np.ndarray,
    cfg: np.ndarray,
    periods_per_year: float,
    equity: np.ndarray,
    position: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Simulate one test segment into the stitched buffers; (trades, metrics row).

    Trade indices are shifted to positions in the full dataset.
    """
    warm = [a[win.train_start : win.test_stop] for a in arrays]
    targets = as_targets(signal(*warm, np.ascontiguousarray(params)))
    offset = win.test_start - win.train_start
    test = [a[win.test_start : win.test_stop] for a in arrays]
    n = win.test_stop - win.test_start
    buffer = np.empty((n, TRADE_COLUMNS), dtype=np.float64)
    o, h, lo, c = test[:4]
    count = simulate_into(o, h, lo, c, targets[offset:], cfg, equity, position, buffer)
    trades = trades_from_buffer(buffer[:count])
    trades["entry_idx"] += win.test_start
    trades["exit_idx"] += win.test_start
    metrics = compute_metrics(
        equity,
        trades,
        np.empty(0, np.int64),
        periods_per_year,
        close=test[3],
        position=position,
        initial_cash=float(cfg[CFG_CASH]),
    )
    return trades, np.array([metrics[name] for name in METRIC_NAMES])
