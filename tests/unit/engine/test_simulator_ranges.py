"""The resumable kernel: any split of the bars into ranges equals one backtest run."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from stratopt.engine.options import ExecutionOptions
from stratopt.engine.simulator import (
    EXIT_END,
    STATE_LENGTH,
    TRADE_COLUMNS,
    close_out,
    new_state,
    simulate,
    simulate_into,
    simulate_range,
    trades_from_buffer,
)


def market(seed: int, n: int) -> tuple[np.ndarray, ...]:
    """Gappy random-walk bars and persistent random targets, so every rule gets exercised."""
    rng = np.random.default_rng(seed)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.02, n)))
    open_ = np.concatenate(([100.0], close[:-1])) * np.exp(rng.normal(0, 0.01, n))
    high = np.maximum(open_, close) * (1 + rng.uniform(0, 0.02, n))
    low = np.minimum(open_, close) * (1 - rng.uniform(0, 0.02, n))
    change = rng.random(n) < 0.1
    values = rng.integers(-1, 2, n)
    targets = np.zeros(n, dtype=np.int8)
    current = 0
    for t in range(n):
        current = values[t] if change[t] else current
        targets[t] = current
    return open_, high, low, close, targets


CONFIGS = [
    ExecutionOptions(),
    ExecutionOptions(direction="both", commission=0.001, slippage=0.002, position_size=0.8),
    ExecutionOptions(direction="both", stop_loss=0.03, take_profit=0.05, trailing_stop=0.02),
    ExecutionOptions(direction="short", fill_on_close=True, stop_loss=0.04, commission=0.0005),
    ExecutionOptions(direction="both", fill_on_close=True, take_profit=0.03, trailing_stop=0.025),
]


def chunked(
    arrays: tuple[np.ndarray, ...], cfg: ExecutionOptions, cuts: list[int]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Run [0, n) as consecutive ranges split at ``cuts``, then the end-of-data close."""
    o, h, lo, c, targets = arrays
    n = c.shape[0]
    vec = cfg.to_vector()
    state = new_state(vec)
    equity = np.empty(n)
    position = np.empty(n)
    trades = np.empty((n + 1, TRADE_COLUMNS))
    k = 0
    bounds = [0, *cuts, n]
    for a, b in itertools.pairwise(bounds):
        k = simulate_range(
            o[a:b], h[a:b], lo[a:b], c[a:b], targets[a:b], vec, state, a, n - 1,
            equity[a:b], position[a:b], trades, k,
        )  # fmt: skip
    if state[1] != 0:
        k = close_out(state, vec, n - 1, c[n - 1], EXIT_END, trades, k)
        equity[n - 1] = state[0]
    return equity, position, trades_from_buffer(trades[:k])


@pytest.mark.parametrize("cfg", CONFIGS, ids=range(len(CONFIGS)))
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_ranges_equal_one_run(cfg: ExecutionOptions, seed: int) -> None:
    arrays = market(seed, 3000)
    o, h, lo, c, targets = arrays
    whole = simulate(o, h, lo, c, targets, cfg)
    rng = np.random.default_rng(seed)
    splits = [
        sorted(rng.choice(np.arange(1, 3000), size=20, replace=False).tolist()),
        list(range(1, 3000)),  # one bar at a time, as the paper broker runs it
        [1500],
    ]
    for cuts in splits:
        equity, position, trades = chunked(arrays, cfg, cuts)
        assert equity.tobytes() == whole.equity.tobytes()
        assert position.tobytes() == whole.position.tobytes()
        assert trades.tobytes() == whole.trades.tobytes()


def test_simulate_into_is_a_fresh_state_range_plus_end_close() -> None:
    o, h, lo, c, targets = market(9, 500)
    vec = ExecutionOptions(direction="both", stop_loss=0.02).to_vector()
    eq1, pos1, buf1 = np.empty(500), np.empty(500), np.empty((500, TRADE_COLUMNS))
    k1 = simulate_into(o, h, lo, c, targets, vec, eq1, pos1, buf1)
    state = new_state(vec)
    assert state.shape == (STATE_LENGTH,) and state[0] == vec[0]
    eq2, pos2, buf2 = np.empty(500), np.empty(500), np.empty((501, TRADE_COLUMNS))
    k2 = simulate_range(o, h, lo, c, targets, vec, state, 0, 499, eq2, pos2, buf2, 0)
    assert state[1] != 0  # seed 9 ends in a position, so the end-of-data close is tested
    k2 = close_out(state, vec, 499, c[499], EXIT_END, buf2, k2)
    eq2[499] = state[0]
    assert k1 == k2
    assert buf1[:k1].tobytes() == buf2[:k2].tobytes()
    assert eq1.tobytes() == eq2.tobytes() and pos1.tobytes() == pos2.tobytes()


def test_state_carries_the_pending_target_across_ranges() -> None:
    # The open of bar 2 fills the target of bar 1, which was seen by the previous range.
    o = h = lo = c = np.full(4, 10.0)
    targets = np.array([0, 1, 1, 1], dtype=np.int8)
    vec = ExecutionOptions(initial_cash=100.0).to_vector()
    state = new_state(vec)
    equity, position, trades = np.empty(4), np.empty(4), np.empty((5, TRADE_COLUMNS))
    simulate_range(
        o[:2], h[:2], lo[:2], c[:2], targets[:2], vec, state, 0, -1,
        equity[:2], position[:2], trades, 0,
    )  # fmt: skip
    assert position[1] == 0.0
    simulate_range(
        o[2:], h[2:], lo[2:], c[2:], targets[2:], vec, state, 2, -1,
        equity[2:], position[2:], trades, 0,
    )  # fmt: skip
    assert position[2] == pytest.approx(10.0) and state[5] == 2  # entry_idx is absolute


def test_open_ended_feed_may_enter_at_any_close() -> None:
    # A backtest refuses a fill_on_close entry at its last close; final=-1 does not.
    o = h = lo = c = np.full(3, 10.0)
    targets = np.array([0, 0, 1], dtype=np.int8)
    vec = ExecutionOptions(fill_on_close=True).to_vector()
    for final, held in ((2, 0.0), (-1, 1000.0)):
        state = new_state(vec)
        equity, position, trades = np.empty(3), np.empty(3), np.empty((4, TRADE_COLUMNS))
        simulate_range(o, h, lo, c, targets, vec, state, 0, final, equity, position, trades, 0)
        assert position[2] == pytest.approx(held)
