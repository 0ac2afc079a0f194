"""Property test: the numba simulator matches the plain-Python reference on random inputs."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stratopt.engine.options import ExecutionOptions
from stratopt.engine.simulator import SimResult, simulate

from ._reference import reference_simulate

FIELDS_EXACT = ("entry_idx", "exit_idx", "side", "bars_held", "exit_reason")
FIELDS_CLOSE = ("entry_price", "exit_price", "size", "pnl", "ret")


@st.composite
def ohlc_bars(draw: st.DrawFn) -> tuple[list[float], ...]:
    """Valid OHLC (low <= open, close <= high) with occasional large gaps between bars."""
    n = draw(st.integers(min_value=1, max_value=60))
    moves = st.floats(min_value=-0.08, max_value=0.08, allow_nan=False)
    wicks = st.floats(min_value=0.0, max_value=0.05, allow_nan=False)
    price = draw(st.floats(min_value=1.0, max_value=1000.0))
    o, h, lo, c = [], [], [], []
    for _ in range(n):
        open_ = price * math.exp(draw(moves))
        close = open_ * math.exp(draw(moves))
        o.append(open_)
        c.append(close)
        h.append(max(open_, close) * (1.0 + draw(wicks)))
        lo.append(min(open_, close) * (1.0 - draw(wicks)))
        price = close
    return o, h, lo, c


@st.composite
def targets_for(draw: st.DrawFn, n: int) -> list[int]:
    """Targets that mostly persist (like real signals) but also flip bar to bar."""
    values: list[int] = []
    current = 0
    for _ in range(n):
        if draw(st.integers(min_value=0, max_value=3)) == 0:
            current = draw(st.sampled_from([-1, 0, 1]))
        values.append(current)
    return values


fractions = st.one_of(st.just(0.0), st.floats(min_value=0.002, max_value=0.15))

options = st.fixed_dictionaries(
    {
        "initial_cash": st.floats(min_value=100.0, max_value=1e6),
        "commission": st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=0.01)),
        "slippage": st.one_of(st.just(0.0), st.floats(min_value=0.0, max_value=0.01)),
        "position_size": st.floats(min_value=0.05, max_value=1.0),
        "direction": st.sampled_from(["long", "short", "both"]),
        "fill_on_close": st.booleans(),
        "stop_loss": fractions,
        "take_profit": fractions,
        "trailing_stop": fractions,
    }
)


Bars = tuple[list[float], list[float], list[float], list[float]]


def _assert_same(
    run: SimResult, equity: list[float], units: list[float], trades: list[dict[str, float]]
) -> None:
    assert len(run.trades) == len(trades)
    for got, want in zip(run.trades, trades, strict=True):
        for name in FIELDS_EXACT:
            assert got[name] == want[name], (name, got, want)
        for name in FIELDS_CLOSE:
            assert math.isclose(got[name], want[name], rel_tol=1e-9, abs_tol=1e-9), (name, got)
    np.testing.assert_allclose(run.equity, equity, rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(run.position, units, rtol=1e-9, atol=1e-12)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), bars=ohlc_bars(), opts=options)
def test_numba_simulator_matches_reference(
    data: st.DataObject, bars: Bars, opts: dict[str, Any]
) -> None:
    o, h, lo, c = bars
    targets = data.draw(targets_for(len(c)))
    run = simulate(
        np.array(o),
        np.array(h),
        np.array(lo),
        np.array(c),
        np.array(targets, dtype=np.int8),
        ExecutionOptions(**opts),
    )
    equity, units, trades = reference_simulate(o, h, lo, c, targets, opts)
    _assert_same(run, equity, units, trades)


@settings(max_examples=60, deadline=None)
@given(bars=ohlc_bars(), opts=options, seed=st.integers(0, 2**32 - 1))
def test_accounting_identity(bars: Bars, opts: dict[str, Any], seed: int) -> None:
    """Final equity is initial cash plus the sum of trade P&L: nothing leaks."""
    o, h, lo, c = bars
    targets = np.random.default_rng(seed).integers(-1, 2, len(c)).astype(np.int8)
    run = simulate(
        np.array(o), np.array(h), np.array(lo), np.array(c), targets, ExecutionOptions(**opts)
    )
    expected = opts["initial_cash"] + run.trades["pnl"].sum()
    assert math.isclose(run.equity[-1], expected, rel_tol=1e-9, abs_tol=1e-6)
    assert np.all(run.trades["exit_idx"] >= run.trades["entry_idx"])
    assert np.all(np.diff(run.trades["entry_idx"]) >= 0)
