"""Incremental signals: the window rule, and ensembles combined as the backtest does."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from stratopt.engine.ensemble import combine
from stratopt.live.history import BarHistory
from stratopt.live.signals import (
    LOOKBACK_MULTIPLE,
    MIN_WINDOW,
    EnsembleSignal,
    StrategySignal,
    lookback,
    window_for,
)
from stratopt.strategies import registry
from stratopt.strategies.base import StrategyType

from ._replay import synthetic


def history_of(bars: Any, keep: int | None = None) -> BarHistory:
    history = BarHistory(keep=keep)
    for i in range(len(bars.ts)):
        history.append(
            int(bars.ts[i]), bars.open[i], bars.high[i], bars.low[i], bars.close[i], bars.volume[i]
        )
    return history


def test_window_rule() -> None:
    macd = registry.get("macd_signal")
    assert lookback(macd) == 12 + 26 + 9  # nested smoothing adds up
    assert lookback(macd, {"fast": 50, "slow": 100, "signal_period": 50}) == 200
    assert window_for(5) == MIN_WINDOW
    assert window_for(47) == 47 * LOOKBACK_MULTIPLE
    assert window_for(200) == 200 * LOOKBACK_MULTIPLE
    assert StrategySignal(macd, {"fast": 50, "slow": 100, "signal_period": 50}).window == 10_000
    assert StrategySignal(macd, window=123).window == 123


@pytest.mark.parametrize("name", registry.names())
def test_rule_window_past_its_length_matches_full_history(name: str) -> None:
    """Once history outgrows the window, the newest target still equals the full run's.

    The rule without its floor (50 x the summed periods), on 6,000 bars: a harder test
    than production, where the floor makes the shortest windows longer.
    """
    stype = registry.get(name)
    bars = synthetic(6000, seed=11)
    prices = (bars.open, bars.high, bars.low, bars.close, bars.volume)
    full = stype.signal(*prices, stype.to_vector({}))
    window = LOOKBACK_MULTIPLE * lookback(stype)
    signal = StrategySignal(stype, window=window)
    history = BarHistory(keep=window)
    mismatches = []
    for i in range(6000):
        history.append(
            int(bars.ts[i]), bars.open[i], bars.high[i], bars.low[i], bars.close[i], bars.volume[i]
        )
        if i >= window and i % 5 == 0 and signal.target(history) != full[i]:
            mismatches.append(i)
    assert mismatches == []


def test_target_is_the_last_value_of_the_full_computation_while_history_is_short() -> None:
    bars = synthetic(800, seed=3)
    stype = registry.get("keltner_breakout")
    full = stype.signal(
        bars.open, bars.high, bars.low, bars.close, bars.volume, stype.to_vector({})
    )
    signal = StrategySignal(stype)
    history = history_of(bars)
    np.testing.assert_array_equal(signal.targets(history), full)
    assert signal.target(history) == full[-1]
    with pytest.raises(ValueError, match="no bars"):
        signal.target(BarHistory())


def test_invalid_parameters_are_refused_up_front() -> None:
    with pytest.raises(ValueError, match="invalid parameters"):
        StrategySignal(registry.get("sma_crossover"), {"fast": 60, "slow": 50})


def test_ensemble_newest_target_equals_combining_full_arrays() -> None:
    """Weights that cancel to ~0 are where summing one column instead of several differs."""
    bars = synthetic(700, seed=4)
    members: list[tuple[StrategyType, dict[str, Any], float]] = [
        (registry.get("sma_crossover"), {}, 0.1),
        (registry.get("ema_crossover"), {}, 0.2),
        (registry.get("supertrend"), {}, 0.3),
        (registry.get("macd_signal"), {}, 0.1),
        (registry.get("roc_momentum"), {}, 0.2),
        (registry.get("adx_trend"), {}, 0.3),
        (registry.get("cci_reversion"), {}, 0.1),
        (registry.get("donchian_breakout"), {}, 0.2),
        (registry.get("rsi_reversion"), {}, 0.3),
    ]
    prices = (bars.open, bars.high, bars.low, bars.close, bars.volume)
    targets = [s.signal(*prices, s.to_vector(p)) for s, p, _ in members]
    expected = combine(targets, [w for *_, w in members], "weighted_vote")
    signal = EnsembleSignal(members, "weighted_vote")
    history = BarHistory()
    got = []
    for i in range(700):
        history.append(
            int(bars.ts[i]), bars.open[i], bars.high[i], bars.low[i], bars.close[i], bars.volume[i]
        )
        got.append(signal.target(history))
    assert got == expected.tolist()


def test_ensemble_validation() -> None:
    sma = registry.get("sma_crossover")
    with pytest.raises(ValueError, match="at least one member"):
        EnsembleSignal([], "majority")
    with pytest.raises(ValueError, match="method must be one of"):
        EnsembleSignal([(sma, {}, 1.0)], "average")
    with pytest.raises(ValueError, match="weight of sma_crossover"):
        EnsembleSignal([(sma, {}, 0.0)], "majority")
    ens = EnsembleSignal([(sma, {}, 1.0), (registry.get("macd_signal"), {"slow": 100}, 1.0)])
    assert ens.window == window_for(12 + 100 + 9)
