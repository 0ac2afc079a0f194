"""Monte Carlo robustness checks of a backtest: how much of the result was luck of ordering.

Three resamplers, each simulation seeded from ``(seed, simulation index)`` by SplitMix64 so
results are identical whatever the thread count or scheduling:

* ``shuffle``: permute the order of the closed trades. Compounded final return is the same
  for every permutation (multiplication commutes), so its percentiles collapse to the
  realized value; the drawdown distribution is the informative output.
* ``bootstrap``: draw trades with replacement (same count), which also varies final return.
* ``block_bootstrap``: rebuild the bar-return series from randomly placed blocks of
  consecutive bars (circular), keeping short-range autocorrelation and volatility clusters.

Trade-based paths are closed-trade equity: each trade's return on equity is
``pnl / equity before the trade``, and drawdowns are measured trade to trade, so they are
smaller than the bar-by-bar drawdown of the backtest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
from numba import njit, prange

Method = Literal["shuffle", "bootstrap", "block_bootstrap"]
PERCENTILES: tuple[int, ...] = (5, 25, 50, 75, 95)

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX1 = np.uint64(0xBF58476D1CE4E5B9)
_MIX2 = np.uint64(0x94D049BB133111EB)
_STREAM = np.uint64(0xD1B54A32D192ED03)
_TO_UNIT = 1.0 / 9007199254740992.0  # 2**-53


@dataclass(frozen=True)
class MonteCarloResult:
    """Distribution of final return and max drawdown over the simulated paths."""

    method: str
    n_sims: int
    seed: int
    final_return: dict[int, float]
    max_drawdown: dict[int, float]
    prob_loss: float
    final_returns: np.ndarray = field(repr=False)
    max_drawdowns: np.ndarray = field(repr=False)


@njit(cache=True, nogil=True)
def _next(state: np.uint64) -> tuple[np.uint64, np.uint64]:
    """One SplitMix64 step: (new state, 64 random bits)."""
    state = state + _GOLDEN
    z = state
    z = (z ^ (z >> np.uint64(30))) * _MIX1
    z = (z ^ (z >> np.uint64(27))) * _MIX2
    return state, z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True)
def _below(bits: np.uint64, bound: int) -> int:
    """Map 64 random bits to an integer in [0, bound)."""
    return min(int(float(bits >> np.uint64(11)) * _TO_UNIT * bound), bound - 1)


@njit(cache=True, nogil=True)
def _stream(seed: int, sim: int) -> np.uint64:
    return np.uint64(seed) + np.uint64(sim + 1) * _STREAM


@njit(cache=True, nogil=True)
def _compound(path_returns: np.ndarray, order: np.ndarray) -> tuple[float, float]:
    """(final return, max drawdown) of compounding returns in the given order."""
    equity = 1.0
    peak = 1.0
    worst = 0.0
    for j in range(order.shape[0]):
        equity *= 1.0 + path_returns[order[j]]
        peak = max(peak, equity)
        worst = max(worst, 1.0 - equity / peak)
    return equity - 1.0, worst


@njit(cache=True, nogil=True, parallel=True)
def trade_paths(
    trade_returns: np.ndarray, n_sims: int, seed: int, replace: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Final return and max drawdown of n_sims reorderings (or resamples) of the trades."""
    k = trade_returns.shape[0]
    finals = np.empty(n_sims, dtype=np.float64)
    drawdowns = np.empty(n_sims, dtype=np.float64)
    for sim in prange(n_sims):
        state = _stream(seed, sim)
        order = np.arange(k)
        if replace:
            for j in range(k):
                state, bits = _next(state)
                order[j] = _below(bits, k)
        else:
            for j in range(k - 1, 0, -1):
                state, bits = _next(state)
                swap = _below(bits, j + 1)
                order[j], order[swap] = order[swap], order[j]
        finals[sim], drawdowns[sim] = _compound(trade_returns, order)
    return finals, drawdowns


@njit(cache=True, nogil=True, parallel=True)
def block_paths(
    bar_returns: np.ndarray, n_sims: int, seed: int, block: int
) -> tuple[np.ndarray, np.ndarray]:
    """Final return and max drawdown of n_sims circular block-bootstrap return paths."""
    n = bar_returns.shape[0]
    finals = np.empty(n_sims, dtype=np.float64)
    drawdowns = np.empty(n_sims, dtype=np.float64)
    for sim in prange(n_sims):
        state = _stream(seed, sim)
        equity = 1.0
        peak = 1.0
        worst = 0.0
        filled = 0
        while filled < n:
            state, bits = _next(state)
            start = _below(bits, n)
            for j in range(min(block, n - filled)):
                equity *= 1.0 + bar_returns[(start + j) % n]
                peak = max(peak, equity)
                worst = max(worst, 1.0 - equity / peak)
            filled += block
        finals[sim] = equity - 1.0
        drawdowns[sim] = worst
    return finals, drawdowns


def trade_equity_returns(pnl: np.ndarray, initial_cash: float) -> np.ndarray:
    """Each trade's P&L over the equity it started from (trades never overlap)."""
    pnl = np.asarray(pnl, dtype=np.float64)
    before = initial_cash + np.concatenate(([0.0], np.cumsum(pnl)[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(before > 0.0, pnl / before, 0.0)
    return np.ascontiguousarray(out)


def bar_returns(equity: np.ndarray, initial_cash: float) -> np.ndarray:
    """Bar returns with the same conventions as metrics (dead account => 0)."""
    eq = np.asarray(equity, dtype=np.float64)
    prev = np.concatenate(([initial_cash], eq[:-1]))
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(prev > 0.0, eq / prev - 1.0, 0.0)
    return np.ascontiguousarray(out)


def default_block_size(n: int) -> int:
    """n^(1/3), the usual rule of thumb for block bootstrap of dependent series."""
    return max(1, round(n ** (1.0 / 3.0)))


def _summarize(
    method: str, seed: int, finals: np.ndarray, drawdowns: np.ndarray
) -> MonteCarloResult:
    def pct(values: np.ndarray) -> dict[int, float]:
        if values.shape[0] == 0:
            return dict.fromkeys(PERCENTILES, 0.0)
        return dict(zip(PERCENTILES, np.percentile(values, PERCENTILES).tolist(), strict=True))

    return MonteCarloResult(
        method=method,
        n_sims=int(finals.shape[0]),
        seed=seed,
        final_return=pct(finals),
        max_drawdown=pct(drawdowns),
        prob_loss=float(np.mean(finals < 0.0)) if finals.shape[0] else 0.0,
        final_returns=finals,
        max_drawdowns=drawdowns,
    )


def monte_carlo(
    *,
    method: Method = "shuffle",
    n_sims: int = 1000,
    seed: int = 0,
    trade_pnl: np.ndarray | None = None,
    equity: np.ndarray | None = None,
    initial_cash: float = 10_000.0,
    block_size: int | None = None,
) -> MonteCarloResult:
    """Resample a run: trade methods need ``trade_pnl``, ``block_bootstrap`` needs ``equity``."""
    if n_sims < 1:
        raise ValueError("n_sims must be >= 1")
    if not 0 <= seed < 2**63:
        raise ValueError("seed must be in [0, 2**63)")
    if method in ("shuffle", "bootstrap"):
        if trade_pnl is None:
            raise ValueError(f"method {method!r} needs trade_pnl")
        returns = trade_equity_returns(trade_pnl, initial_cash)
        finals, drawdowns = trade_paths(returns, n_sims, seed, method == "bootstrap")
    elif method == "block_bootstrap":
        if equity is None:
            raise ValueError("method 'block_bootstrap' needs equity")
        returns = bar_returns(equity, initial_cash)
        block = block_size or default_block_size(returns.shape[0])
        if block < 1:
            raise ValueError("block_size must be >= 1")
        if returns.shape[0] == 0:
            finals = drawdowns = np.zeros(n_sims)
        else:
            finals, drawdowns = block_paths(returns, n_sims, seed, block)
    else:
        raise ValueError("method must be 'shuffle', 'bootstrap' or 'block_bootstrap'")
    return _summarize(method, seed, finals, drawdowns)
