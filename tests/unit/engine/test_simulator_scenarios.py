"""Hand-computed scenarios pinning down each rule of the simulator's documented semantics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from stratopt.engine.options import ExecutionOptions
from stratopt.engine.simulator import (
    EXIT_END,
    EXIT_SIGNAL,
    EXIT_STOP,
    EXIT_TARGET,
    EXIT_TRAIL,
    SimResult,
    simulate,
)


def run(
    bars: Sequence[tuple[float, float, float, float]], targets: list[int], **opts: Any
) -> SimResult:
    o, h, lo, c = (np.array(col, dtype=np.float64) for col in zip(*bars, strict=True))
    return simulate(o, h, lo, c, np.array(targets, dtype=np.int8), ExecutionOptions(**opts))


FLAT = [(100.0, 101.0, 99.0, 100.0)] * 4


def test_signal_fills_at_next_open() -> None:
    bars = [(10, 11, 9, 10), (12, 13, 11, 12), (14, 15, 13, 15), (16, 17, 15, 16)]
    res = run(bars, [1, 1, 0, 0], initial_cash=1200.0)
    trade = res.trades[0]
    assert (trade["entry_idx"], trade["exit_idx"]) == (1, 3)
    assert trade["entry_price"] == 12.0 and trade["exit_price"] == 16.0
    assert trade["size"] == pytest.approx(100.0)
    assert trade["exit_reason"] == EXIT_SIGNAL
    np.testing.assert_allclose(res.equity, [1200.0, 1200.0, 1500.0, 1600.0])
    np.testing.assert_allclose(res.position, [0.0, 100.0, 100.0, 0.0])


def test_fill_on_close_uses_signal_bar_close() -> None:
    bars = [(10, 11, 9, 10), (12, 13, 11, 12), (14, 15, 13, 15), (16, 17, 15, 16)]
    res = run(bars, [1, 1, 0, 0], initial_cash=1000.0, fill_on_close=True)
    trade = res.trades[0]
    assert (trade["entry_idx"], trade["exit_idx"]) == (0, 2)
    assert (trade["entry_price"], trade["exit_price"]) == (10.0, 15.0)
    np.testing.assert_allclose(res.equity, [1000.0, 1200.0, 1500.0, 1500.0])


def test_commission_and_slippage_costs() -> None:
    bars = [(100, 100, 100, 100), (100, 100, 100, 100), (110, 110, 110, 110)]
    res = run(bars, [1, 0, 0], initial_cash=1000.0, commission=0.01, slippage=0.02)
    trade = res.trades[0]
    entry = 100 * 1.02
    units = 1000 / (entry * 1.01)
    exit_ = 110 * 0.98
    pnl = units * (exit_ - entry) - units * entry * 0.01 - units * exit_ * 0.01
    assert trade["entry_price"] == pytest.approx(entry)
    assert trade["exit_price"] == pytest.approx(exit_)
    assert trade["size"] == pytest.approx(units)
    assert trade["pnl"] == pytest.approx(pnl)
    assert trade["ret"] == pytest.approx(pnl / (units * entry))
    assert res.equity[-1] == pytest.approx(1000 + pnl)
    assert res.equity[1] == pytest.approx(units * 100)  # cash 0 after an all-in entry


def test_size_is_fraction_of_equity() -> None:
    res = run(FLAT, [1, 1, 1, 1], initial_cash=1000.0, position_size=0.25)
    assert res.trades[0]["size"] == pytest.approx(2.5)


def test_long_only_treats_short_target_as_flat_and_both_reverses() -> None:
    bars = [(10, 10, 10, 10), (10, 10, 10, 10), (20, 20, 20, 20), (20, 20, 20, 20)]
    long_only = run(bars, [1, -1, -1, -1], initial_cash=100.0)
    assert len(long_only.trades) == 1
    assert long_only.trades[0]["exit_reason"] == EXIT_SIGNAL
    assert long_only.position[-1] == 0.0
    both = run(bars, [1, -1, -1, -1], initial_cash=100.0, direction="both")
    assert [t["side"] for t in both.trades] == [1, -1]
    assert both.trades[1]["entry_idx"] == both.trades[0]["exit_idx"] == 2
    assert both.trades[1]["exit_reason"] == EXIT_END
    short_only = run(bars, [1, -1, -1, -1], initial_cash=100.0, direction="short")
    assert [t["side"] for t in short_only.trades] == [-1]


def test_stop_can_fire_on_entry_bar() -> None:
    bars = [(100, 100, 100, 100), (100, 101, 94, 98), (98, 99, 97, 98)]
    res = run(bars, [1, 1, 1], stop_loss=0.05)
    trade = res.trades[0]
    assert (trade["entry_idx"], trade["exit_idx"]) == (1, 1)
    assert trade["exit_reason"] == EXIT_STOP
    assert trade["exit_price"] == pytest.approx(95.0)
    assert trade["bars_held"] == 0


def test_stop_does_not_fire_on_entry_bar_when_filling_on_close() -> None:
    bars = [(100, 100, 90, 100), (100, 101, 99, 100), (100, 100, 94, 96)]
    res = run(bars, [1, 1, 1], stop_loss=0.05, fill_on_close=True)
    trade = res.trades[0]
    assert (trade["entry_idx"], trade["exit_idx"], trade["exit_reason"]) == (0, 2, EXIT_STOP)


def test_gap_through_stop_fills_at_open() -> None:
    bars = [(100, 100, 100, 100), (100, 101, 99, 100), (90, 92, 88, 91)]
    res = run(bars, [1, 1, 1], stop_loss=0.05)
    assert res.trades[0]["exit_price"] == 90.0
    assert res.trades[0]["exit_reason"] == EXIT_STOP


def test_gap_through_target_fills_at_open() -> None:
    bars = [(100, 100, 100, 100), (100, 101, 99, 100), (120, 125, 80, 121)]
    res = run(bars, [1, 1, 1], stop_loss=0.05, take_profit=0.1)
    assert res.trades[0]["exit_price"] == 120.0
    assert res.trades[0]["exit_reason"] == EXIT_TARGET


def test_stop_wins_when_both_levels_inside_one_bar() -> None:
    bars = [(100, 100, 100, 100), (100, 100.5, 99.5, 100), (100, 111, 94, 105)]
    res = run(bars, [1, 1, 1], stop_loss=0.05, take_profit=0.1)
    assert res.trades[0]["exit_reason"] == EXIT_STOP
    assert res.trades[0]["exit_price"] == pytest.approx(95.0)


def test_target_hit_exits_at_level() -> None:
    bars = [(100, 100, 100, 100), (100, 100.5, 99.5, 100), (100, 111, 99, 105)]
    res = run(bars, [1, 1, 1], stop_loss=0.05, take_profit=0.1)
    assert res.trades[0]["exit_reason"] == EXIT_TARGET
    assert res.trades[0]["exit_price"] == pytest.approx(110.0)


def test_exact_touch_of_stop_level_triggers() -> None:
    bars = [(100, 100, 100, 100), (100, 100, 100, 100), (100, 100, 95, 99)]
    res = run(bars, [1, 1, 1], stop_loss=0.05)
    assert res.trades[0]["exit_reason"] == EXIT_STOP
    assert res.trades[0]["exit_idx"] == 2


def test_short_stop_and_target_mirror_long() -> None:
    bars = [(100, 100, 100, 100), (100, 100, 100, 100), (100, 106, 99, 104)]
    res = run(bars, [-1, -1, -1], direction="short", stop_loss=0.05)
    assert res.trades[0]["exit_price"] == pytest.approx(105.0)
    assert res.trades[0]["pnl"] < 0
    bars = [(100, 100, 100, 100), (100, 100, 100, 100), (100, 101, 89, 95)]
    res = run(bars, [-1, -1, -1], direction="short", take_profit=0.1)
    assert res.trades[0]["exit_price"] == pytest.approx(90.0)
    assert res.trades[0]["exit_reason"] == EXIT_TARGET


def test_trailing_stop_follows_best_price() -> None:
    bars = [
        (100, 100, 100, 100),
        (100, 100, 100, 100),
        (100, 120, 100, 118),
        (118, 119, 107, 110),
    ]
    res = run(bars, [1, 1, 1, 1], trailing_stop=0.1, stop_loss=0.2)
    trade = res.trades[0]
    assert trade["exit_reason"] == EXIT_TRAIL
    assert trade["exit_price"] == pytest.approx(108.0)  # 120 * 0.9
    assert trade["exit_idx"] == 3


def test_trailing_uses_open_gap_before_checking() -> None:
    bars = [(100, 100, 100, 100), (100, 100, 100, 100), (130, 131, 116, 120)]
    res = run(bars, [1, 1, 1], trailing_stop=0.1)
    assert res.trades[0]["exit_price"] == pytest.approx(117.0)  # best = open 130


@pytest.mark.parametrize(
    ("direction", "target", "bar"),
    [
        ("long", 1, (100, 100, 94, 96)),
        ("short", -1, (100, 106, 100, 104)),
    ],
)
def test_equal_stop_and_trail_levels_report_stop(
    direction: str, target: int, bar: tuple[float, float, float, float]
) -> None:
    bars = [(100, 100, 100, 100), bar]
    res = run(bars, [target, target], direction=direction, stop_loss=0.05, trailing_stop=0.05)
    assert res.trades[0]["exit_reason"] == EXIT_STOP
    assert res.trades[0]["exit_price"] == pytest.approx(95.0 if target > 0 else 105.0)


def test_no_reentry_after_stop_until_target_changes() -> None:
    down = (100, 100, 90, 95)
    bars = [
        (100, 100, 100, 100),
        (100, 100, 100, 100),
        down,
        (95, 96, 94, 95),
        (95, 96, 94, 95),
        (95, 96, 94, 95),
        (95, 96, 94, 95),
    ]
    res = run(bars, [1, 1, 1, 1, 0, 1, 1], stop_loss=0.05)
    assert len(res.trades) == 2
    assert res.trades[0]["exit_reason"] == EXIT_STOP
    assert res.trades[1]["entry_idx"] == 6  # target went 0 at bar 4, back to 1 at bar 5
    assert res.position[3] == 0.0 and res.position[4] == 0.0


def test_open_position_closed_at_end() -> None:
    bars = [(10, 10, 10, 10), (10, 10, 10, 10), (12, 12, 12, 12)]
    res = run(bars, [1, 1, 1], initial_cash=100.0, commission=0.01)
    trade = res.trades[-1]
    assert trade["exit_reason"] == EXIT_END
    assert trade["exit_idx"] == 2 and trade["exit_price"] == 12.0
    assert res.equity[-1] == pytest.approx(100.0 + trade["pnl"])
    assert res.position[-1] > 0  # units held during the final bar


def test_no_entry_on_last_close_when_filling_on_close() -> None:
    res = run(FLAT, [0, 0, 0, 1], fill_on_close=True)
    assert len(res.trades) == 0


def test_options_reject_nonsense() -> None:
    with pytest.raises(ValueError, match="position_size"):
        ExecutionOptions(position_size=1.5)
    with pytest.raises(ValueError, match="direction"):
        ExecutionOptions(direction="sideways")  # type: ignore[typeddict-item]
    with pytest.raises(ValueError, match="commission"):
        ExecutionOptions(commission=-0.1)
    with pytest.raises(ValueError, match="periods_per_year"):
        ExecutionOptions(periods_per_year=-1.0)
    assert ExecutionOptions(periods_per_year=0.0).periods_per_year is None  # 0 = infer
    assert ExecutionOptions.problems({"stop_loss": 0.1, "take_profit": 2.0}) == []


def test_mismatched_lengths_rejected() -> None:
    arr = np.ones(3)
    with pytest.raises(ValueError, match="same length"):
        simulate(arr, arr, arr, arr, np.ones(2, dtype=np.int8))
