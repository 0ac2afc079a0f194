"""ExecutionOptions: one set of defaults and bounds, presence for merging, the kernel vector."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

from stratopt.engine import ExecutionOptions, InvalidExecutionOptions
from stratopt.engine.options import FIELDS
from stratopt.engine.simulator import (
    CFG_CASH,
    CFG_COMMISSION,
    CFG_DIRECTION,
    CFG_FILL_ON_CLOSE,
    CFG_LENGTH,
    CFG_SIZE,
    CFG_SLIPPAGE,
    CFG_STOP_LOSS,
    CFG_TAKE_PROFIT,
    CFG_TRAILING,
)

# (field, value, accepted): both ends of every range, and just outside them.
BOUNDS_TABLE: list[tuple[str, Any, bool]] = [
    ("initial_cash", 0.0, False),
    ("initial_cash", 1e-9, True),
    ("initial_cash", 1e12, True),
    ("initial_cash", 1.1e12, False),
    ("initial_cash", float("inf"), False),
    ("position_size", 0.0, False),
    ("position_size", 1e-6, True),
    ("position_size", 1.0, True),
    ("position_size", 1.01, False),
    ("commission", 0.0, True),
    ("commission", 0.1, True),
    ("commission", 0.10001, False),
    ("commission", -1e-9, False),
    ("commission", float("nan"), False),
    ("slippage", 0.0, True),
    ("slippage", 0.1, True),
    ("slippage", 0.2, False),
    ("stop_loss", 0.0, True),
    ("stop_loss", 0.99, True),
    ("stop_loss", 0.995, False),
    ("trailing_stop", 0.99, True),
    ("trailing_stop", 1.0, False),
    ("take_profit", 0.0, True),
    ("take_profit", 100.0, True),
    ("take_profit", 100.5, False),
    ("take_profit", -0.1, False),
    ("periods_per_year", 0.0, True),
    ("periods_per_year", 1e7, True),
    ("periods_per_year", 1.1e7, False),
    ("periods_per_year", -1.0, False),
    ("periods_per_year", None, True),
    ("direction", "long", True),
    ("direction", "short", True),
    ("direction", "both", True),
    ("direction", "sideways", False),
    ("fill_on_close", True, True),
    ("fill_on_close", 1, False),
    ("commission", "0.001", False),
    ("commission", True, False),
    ("size", 0.5, False),
]


@pytest.mark.parametrize(("name", "value", "accepted"), BOUNDS_TABLE)
def test_one_set_of_bounds(name: str, value: Any, accepted: bool) -> None:
    problems = ExecutionOptions.problems({name: value})
    if accepted:
        assert problems == []
        ExecutionOptions.from_dict({name: value})
        return
    assert [f for f, _ in problems] == [name]
    with pytest.raises(InvalidExecutionOptions) as e:
        ExecutionOptions.from_dict({name: value})
    assert isinstance(e.value, ValueError)
    assert e.value.violations == tuple(problems)
    assert name in str(e.value), "the message names the field"


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(InvalidExecutionOptions) as e:
        ExecutionOptions(commission=0.5, stop_loss=1.0, direction="up")  # type: ignore[typeddict-item]
    assert [f for f, _ in e.value.violations] == ["commission", "stop_loss", "direction"]
    assert dict(e.value.violations)["commission"] == "must be in [0, 0.1]"


def test_defaults_and_presence() -> None:
    o = ExecutionOptions()
    assert o.explicit == frozenset() and o.to_dict() == {}
    assert (o.initial_cash, o.position_size, o.direction) == (10_000.0, 1.0, "long")
    assert o.periods_per_year is None and not o.fill_on_close
    zero = ExecutionOptions(commission=0.0, fill_on_close=False)
    assert zero.explicit == {"commission", "fill_on_close"}
    assert zero.to_dict() == {"fill_on_close": False, "commission": 0.0}
    assert zero != o, "presence is part of the value"


def test_explicit_zeros_win_a_merge() -> None:
    stored = ExecutionOptions(commission=0.001, stop_loss=0.05, fill_on_close=True)
    request = ExecutionOptions(commission=0.0, stop_loss=0.0, fill_on_close=False)
    merged = request.over(stored)
    assert (merged.commission, merged.stop_loss, merged.fill_on_close) == (0.0, 0.0, False)
    assert ExecutionOptions().over(stored) == stored, "nothing given: the stored values stay"
    partial = ExecutionOptions(direction="both").over(stored)
    assert partial.commission == 0.001 and partial.direction == "both"
    assert partial.explicit == {"commission", "stop_loss", "fill_on_close", "direction"}


def test_storage_form_round_trips_and_keeps_the_row_shape() -> None:
    row = {"position_size": 0.5, "direction": "both", "commission": 0.001}
    o = ExecutionOptions.from_dict(row)
    assert o.to_dict() == row
    assert json.loads(json.dumps(o.to_dict())) == row
    assert ExecutionOptions.from_dict(o.to_dict()) == o
    inferred = ExecutionOptions(periods_per_year=None)
    assert inferred.to_dict() == {"periods_per_year": 0.0}
    assert ExecutionOptions.from_dict(inferred.to_dict()) == inferred


def test_resolved_fills_every_field() -> None:
    o = ExecutionOptions(commission=0.002).resolved()
    assert o.explicit == frozenset(FIELDS)
    full = o.to_dict()
    assert list(full) == list(FIELDS)
    assert full["commission"] == 0.002 and full["direction"] == "long"
    assert full["periods_per_year"] == 0.0
    assert ExecutionOptions.from_dict(full) == o


def test_replace_keeps_presence() -> None:
    o = ExecutionOptions(commission=0.001).replace(periods_per_year=252.0)
    assert o.explicit == {"commission", "periods_per_year"} and o.periods_per_year == 252.0
    with pytest.raises(InvalidExecutionOptions):
        o.replace(commission=0.3)


def test_kernel_vector_layout() -> None:
    o = ExecutionOptions(
        initial_cash=5_000.0,
        position_size=0.5,
        direction="short",
        fill_on_close=True,
        commission=0.001,
        slippage=0.002,
        stop_loss=0.03,
        take_profit=0.06,
        trailing_stop=0.04,
        periods_per_year=252,
    )
    vec = o.to_vector()
    assert vec.dtype == np.float64 and vec.shape == (CFG_LENGTH,)
    expected = {
        CFG_CASH: 5_000.0,
        CFG_SIZE: 0.5,
        CFG_DIRECTION: -1.0,
        CFG_FILL_ON_CLOSE: 1.0,
        CFG_COMMISSION: 0.001,
        CFG_SLIPPAGE: 0.002,
        CFG_STOP_LOSS: 0.03,
        CFG_TAKE_PROFIT: 0.06,
        CFG_TRAILING: 0.04,
    }
    assert {i: vec[i] for i in expected} == expected
