"""Parameter-grid sweep: every combination of a strategy on one dataset, in parallel.

The kernel takes the strategy's signal function as a first-class numba function of a fixed
type (``SIGNAL_TYPE``). Declaring that type explicitly is what lets ``cache=True`` work:
passed as a plain dispatcher, the kernel would be re-specialized (and recompiled, ~1 s) in
every process for every strategy. The price is that a signal function must accept
C-contiguous float64 arrays and return a C-contiguous int8 array (``np.zeros(n, np.int8)``
or ``np.empty`` do), which INTERFACES.md requires anyway. The price arrays are typed
read-only, so a signal must not write to them, and the memory-mapped, read-only columns of
a loaded ``Bars`` go in without a copy (writable arrays convert to that type for free).

Memory does not grow with the grid: each combination simulates into scratch buffers that
are released before the next one and only its metrics row is kept, so the footprint is one
set of buffers per thread (about 100 bytes per bar) plus the (combinations x metrics)
result matrix.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numba import njit, prange, types

from stratopt.engine.metrics import METRIC_NAMES, metrics_of
from stratopt.engine.simulator import CFG_CASH, TRADE_COLUMNS, simulate_into

_F8 = types.Array(types.float64, 1, "C")
_F8_RO = types.Array(types.float64, 1, "C", readonly=True)
_F8_2D = types.Array(types.float64, 2, "C")
_I8 = types.Array(types.int8, 1, "C")

SIGNAL_SIGNATURE = _I8(_F8_RO, _F8_RO, _F8_RO, _F8_RO, _F8_RO, _F8)
SIGNAL_TYPE = types.FunctionType(SIGNAL_SIGNATURE)
N_METRICS = len(METRIC_NAMES)


@njit(
    _F8_2D(_F8_RO, _F8_RO, _F8_RO, _F8_RO, _F8_RO, SIGNAL_TYPE, _F8_2D, _F8, types.float64),
    cache=True,
    nogil=True,
    parallel=True,
)
def sweep_kernel(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    signal: Callable[..., np.ndarray],
    grid: np.ndarray,
    cfg: np.ndarray,
    periods_per_year: float,
) -> np.ndarray:
    """Metrics matrix (one row per grid row, columns in METRIC_NAMES order)."""
    n = close.shape[0]
    combos = grid.shape[0]
    out = np.empty((combos, N_METRICS), dtype=np.float64)
    for i in prange(combos):
        params = grid[i].copy()
        targets = signal(open_, high, low, close, volume, params)
        equity = np.empty(n, dtype=np.float64)
        position = np.empty(n, dtype=np.float64)
        trades = np.empty((n, TRADE_COLUMNS), dtype=np.float64)
        count = simulate_into(open_, high, low, close, targets, cfg, equity, position, trades)
        out[i] = metrics_of(
            equity, cfg[CFG_CASH], trades[:count], position, close, periods_per_year
        )
    return out


def _prices_array(values: np.ndarray) -> np.ndarray:
    """C-contiguous float64, read-only or not: no copy for a Bars column."""
    return np.ascontiguousarray(values, dtype=np.float64)


def _kernel_array(values: np.ndarray) -> np.ndarray:
    """C-contiguous, writable float64: the exact array type the compiled kernel accepts."""
    return np.require(values, dtype=np.float64, requirements=["C", "W"])


def sweep_grid(
    open_: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    volume: np.ndarray,
    signal: Callable[..., np.ndarray],
    grid: np.ndarray,
    cfg: np.ndarray,
    periods_per_year: float,
) -> np.ndarray:
    """Evaluate every row of ``grid`` (2-D float64 parameter vectors); see sweep_kernel."""
    matrix = np.asarray(grid, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError("grid must be a 2-D array with one parameter vector per row")
    if close.shape[0] == 0 or matrix.shape[0] == 0:
        return np.zeros((matrix.shape[0], N_METRICS), dtype=np.float64)
    return sweep_kernel(
        _prices_array(open_),
        _prices_array(high),
        _prices_array(low),
        _prices_array(close),
        _prices_array(volume),
        signal,
        _kernel_array(matrix),
        _kernel_array(cfg),
        float(periods_per_year),
    )
