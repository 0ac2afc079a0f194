"""Every signal function honours the INTERFACES.md contract; a few are checked by hand."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from stratopt.strategies import StrategyType, registry
from stratopt.strategies.rules import band_breakout_positions, band_reversion_positions

from .conftest import Arrays, from_close, make_bars

Params = dict[str, int | float | str]

# First bar at which each strategy *can* hold a position, derived from its indicators'
# warm-up (NaN before) plus one bar for rules that compare with the previous bar.
FIRST_TRADABLE_BAR: dict[str, Callable[[Params], int]] = {
    "sma_crossover": lambda p: int(p["slow"]),
    "ema_crossover": lambda p: int(p["slow"]),
    "macd_signal": lambda p: int(p["slow"]) + int(p["signal_period"]) - 1,
    "rsi_reversion": lambda p: int(p["period"]),
    "bollinger_reversion": lambda p: int(p["period"]),
    "bollinger_breakout": lambda p: int(p["period"]) - 1,
    "donchian_breakout": lambda p: int(p["entry_period"]),
    "roc_momentum": lambda p: int(p["period"]),
    "stochastic_reversion": lambda p: (
        int(p["k_period"]) + int(p["smooth_k"]) + int(p["d_period"]) - 2
    ),
    "supertrend": lambda p: int(p["atr_period"]) - 1,
    "adx_trend": lambda p: max(
        int(p["di_period"]) + 1, int(p["di_period"]) + int(p["adx_period"]) - 1
    ),
    "keltner_breakout": lambda p: max(int(p["ema_period"]), int(p["atr_period"])) - 1,
    "atr_volatility_breakout": lambda p: int(p["atr_period"]),
    "cci_reversion": lambda p: int(p["period"]),
}


def run(strategy: StrategyType, bars: Arrays, params: Params | None = None) -> np.ndarray:
    return strategy.signal(*bars, strategy.to_vector(params or {}))


def upper_params(strategy: StrategyType) -> Params:
    """Long look-backs near the top of each range, still satisfying the constraints."""
    params: dict[str, int] = {}
    for spec in strategy.params:
        if spec.kind == "int":
            assert spec.low is not None and spec.high is not None and spec.step is not None
            span = int((spec.high - spec.low) // spec.step)
            params[spec.name] = int(spec.low + (span * 3 // 4) * spec.step)
    for c in strategy.constraints:
        if c.left in params and c.right in params and params[c.left] >= params[c.right]:
            params[c.left] = int(strategy.defaults()[c.left])
    assert strategy.validate(params) == []
    return dict(params)


def test_every_strategy_has_a_warm_up_rule() -> None:
    assert set(FIRST_TRADABLE_BAR) == set(registry.names())


@pytest.mark.parametrize("name", registry.names())
@pytest.mark.parametrize("variant", ["defaults", "upper"])
def test_signal_contract(name: str, variant: str, bars: Arrays) -> None:
    strategy = registry.get(name)
    params = strategy.defaults() if variant == "defaults" else upper_params(strategy)
    out = run(strategy, bars, params)
    assert out.dtype == np.int8
    assert out.shape == bars.close.shape
    assert set(np.unique(out)) <= {-1, 0, 1}
    warm = FIRST_TRADABLE_BAR[name]({**strategy.defaults(), **params})
    assert not out[:warm].any(), f"position taken during the {warm}-bar warm-up"
    assert out.any(), "should trade at least once on 1500 random bars"
    if variant == "defaults":
        assert (out == 1).any() and (out == -1).any(), "long and short signals expected"


@pytest.mark.parametrize("name", registry.names())
def test_no_look_ahead(name: str, bars: Arrays) -> None:
    """A target may depend only on bars up to its own: truncating the future changes nothing."""
    strategy = registry.get(name)
    full = run(strategy, bars)
    for stop in (150, 611, 1200):
        np.testing.assert_array_equal(run(strategy, bars.prefix(stop)), full[:stop])


@pytest.mark.parametrize("name", registry.names())
def test_short_and_empty_inputs(name: str) -> None:
    strategy = registry.get(name)
    for n in (0, 1, 5):
        out = run(strategy, make_bars(3, 5).prefix(n))
        assert out.shape == (n,)
        assert not out.any()


@pytest.mark.parametrize("name", registry.names())
def test_parameters_change_the_signal(name: str, bars: Arrays) -> None:
    strategy = registry.get(name)
    assert not np.array_equal(run(strategy, bars), run(strategy, bars, upper_params(strategy)))


# ----------------------------------------------------------------------------- by hand


def test_sma_crossover_flips_exactly_at_the_crossing_bars() -> None:
    # SMA(2) vs SMA(3):
    # bar:   0    1    2     3     4      5      6     7     8     9
    # close: 10   9    8     7     8      10     12    11    8     6
    # sma2:  -   9.5  8.5   7.5   7.5    9      11    11.5  9.5   7
    # sma3:  -    -   9     8     7.67   8.33   10    11    10.33 8.33
    # Bars 2-4: fast below slow but no cross (bar 1 has no slow SMA). Bar 5: cross up.
    # Bar 8: cross down.
    # Lengths below the UI's bounds keep the arithmetic small; the kernel takes any vector.
    close = [10.0, 9.0, 8.0, 7.0, 8.0, 10.0, 12.0, 11.0, 8.0, 6.0]
    out = registry.get("sma_crossover").signal(*from_close(close), np.array([2.0, 3.0]))
    np.testing.assert_array_equal(out, [0, 0, 0, 0, 0, 1, 1, 1, -1, -1])


def test_donchian_breaks_on_the_previous_channel_and_exits_on_the_shorter_one() -> None:
    # entry 10 / exit 5 bars. Flat range 100..101 for 12 bars, breakout close 105 on bar 12,
    # drift, then a close below the lowest low of the previous 5 bars exits on bar 17.
    close = [100.0, 101.0] * 6 + [105.0, 106.0, 107.0, 106.5, 107.5, 104.0, 104.0]
    out = run(
        registry.get("donchian_breakout"),
        from_close(close),
        {"entry_period": 10, "exit_period": 5},
    )
    expected = [0] * 12 + [1, 1, 1, 1, 1, 0, 0]
    np.testing.assert_array_equal(out, expected)


def test_atr_breakout_holds_for_exactly_hold_bars() -> None:
    close = [100.0, 100.5] * 10 + [110.0] + [110.0 + 0.1 * i for i in range(1, 10)]
    out = run(
        registry.get("atr_volatility_breakout"),
        from_close(close),
        {"atr_period": 5, "mult": 2.0, "hold_bars": 3},
    )
    jump = 20
    assert not out[:jump].any()
    np.testing.assert_array_equal(out[jump : jump + 4], [1, 1, 1, 0])
    assert not out[jump + 4 :].any()


def test_rsi_reversion_enters_oversold_and_exits_at_the_exit_level() -> None:
    # Twenty falling closes hold RSI(2) at 0: long from its first value (bar 2). A rise of
    # 1.5 lifts it to 100 - 100 / (1 + 1.5) = 60: past the exit level but not overbought, so
    # flat. A dip keeps it at 60; a rise of 8 takes it to ~94.6: overbought, short.
    close = [100.0 - i for i in range(20)] + [82.5, 82.0, 90.0]
    out = run(
        registry.get("rsi_reversion"),
        from_close(close),
        {"period": 2, "oversold": 30.0, "overbought": 70.0, "exit_level": 50.0},
    )
    np.testing.assert_array_equal(out[:2], [0, 0])
    assert (out[2:20] == 1).all()
    np.testing.assert_array_equal(out[20:], [0, 0, -1])


def test_band_rules_by_hand() -> None:
    nan = np.nan
    upper = np.array([nan, 110.0, 110.0, 110.0, 110.0, 110.0, 110.0, 110.0])
    mid = np.array([nan, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0, 100.0])
    lower = np.array([nan, 90.0, 90.0, 90.0, 90.0, 90.0, 90.0, 90.0])
    close = np.array([120.0, 111.0, 105.0, 99.0, 85.0, 92.0, 101.0, 95.0])
    np.testing.assert_array_equal(
        band_breakout_positions(close, upper, mid, lower), [0, 1, 1, 0, -1, -1, 0, 0]
    )
    # Reversion waits for the close back inside: short on bar 2, covered at the mid on bar 3;
    # long when back above the lower band on bar 5, closed at the mid on bar 6.
    np.testing.assert_array_equal(
        band_reversion_positions(close, upper, mid, lower), [0, 0, -1, 0, 0, 1, 0, 0]
    )


def test_fused_sma_crossover_equals_the_composed_indicators() -> None:
    """The fused kernel must give exactly what sma + crossover_positions give."""
    from stratopt.engine.indicators import sma
    from stratopt.strategies import registry
    from stratopt.strategies.rules import crossover_positions

    rng = np.random.default_rng(11)
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, 50_000)))
    close[[100, 101, 7_000]] = np.nan  # NaN handling must match too
    zeros = np.zeros_like(close)
    stype = registry.get("sma_crossover")
    for fast, slow in [(2, 5), (10, 50), (37, 200), (199, 400)]:
        want = crossover_positions(sma(close, fast), sma(close, slow))
        got = stype.signal(
            zeros, zeros, zeros, close, zeros, stype.to_vector({"fast": fast, "slow": slow})
        )
        assert np.array_equal(got, want), (fast, slow)
