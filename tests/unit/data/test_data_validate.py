from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from stratopt.data import Bars, BarValidationError, validate_arrays, validate_bars
from stratopt.data.validate import find_problems

Columns = dict[str, np.ndarray]


def columns_of(bars: Bars) -> Columns:
    names = ("ts", "open", "high", "low", "close", "volume")
    return {name: np.array(col) for name, col in zip(names, bars.columns(), strict=True)}


def check(cols: Columns) -> BarValidationError:
    with pytest.raises(BarValidationError) as info:
        validate_arrays(**cols)
    return info.value


def test_valid_bars_pass(make_simple: Callable[..., Bars]) -> None:
    bars = make_simple(50)
    validate_bars(bars)
    assert find_problems(*bars.columns()) == ([], 0)


def set_value(cols: Columns, field: str, row: int, value: float) -> None:
    cols[field][row - 1] = value


# Each case breaks data row 4 (2024-03-01T03:00:00Z) of bars whose row 4 is
# open 102.5, high 104, low 101.5, close 103.
RULES = [
    ("high", 102.9, "high", "high 102.9 < close 103.0"),
    ("open", 104.5, "high", "high 104.0 < open 104.5"),
    ("low", 102.8, "low", "low 102.8 > open 102.5"),
    ("close", 101.0, "low", "low 101.5 > close 101.0"),
    ("low", 104.5, "low", "low 104.5 > high 104.0"),
    ("close", np.nan, "close", "close is missing or NaN"),
    ("volume", np.inf, "volume", "volume is inf, not finite"),
    ("open", 0.0, "open", "open 0.0 must be > 0"),
    ("low", -3.0, "low", "low -3.0 must be > 0"),
    ("volume", -1.0, "volume", "volume -1.0 must be >= 0"),
]


@pytest.mark.parametrize(("column", "value", "field", "text"), RULES)
def test_each_rule_reports_row_timestamp_and_field(
    make_simple: Callable[..., Bars], column: str, value: float, field: str, text: str
) -> None:
    cols = columns_of(make_simple(10))
    set_value(cols, column, 4, value)
    error = check(cols)
    assert error.total == 1
    [problem] = error.problems
    assert (problem.row, problem.field) == (4, field)
    assert str(problem) == f"row 4 (2024-03-01T03:00:00Z): {text}"
    assert str(error) == f"invalid bars: row 4 (2024-03-01T03:00:00Z): {text}"


def test_duplicate_timestamp_names_the_earlier_row(make_simple: Callable[..., Bars]) -> None:
    cols = columns_of(make_simple(10))
    cols["ts"][6] = cols["ts"][5]
    [problem] = check(cols).problems
    assert problem.row == 7 and problem.field == "ts"
    assert "duplicate timestamp (same as row 6)" in str(problem)


def test_out_of_order_timestamp(make_simple: Callable[..., Bars]) -> None:
    cols = columns_of(make_simple(10))
    cols["ts"][[3, 4]] = cols["ts"][[4, 3]]
    [problem] = check(cols).problems
    assert problem.row == 5
    assert "earlier than row 4" in problem.message


def test_problems_are_capped_and_counted(make_simple: Callable[..., Bars]) -> None:
    cols = columns_of(make_simple(100))
    cols["volume"][10:60] = -1.0
    error = check(cols)
    assert error.total == 50
    assert len(error.problems) == 20
    assert [p.row for p in error.problems] == list(range(11, 31))
    assert str(error).splitlines()[0] == "invalid bars: 50 problems"
    assert str(error).splitlines()[-1].strip() == "... and 30 more"


def test_problems_from_several_rules_come_in_row_order(make_simple: Callable[..., Bars]) -> None:
    cols = columns_of(make_simple(30))
    set_value(cols, "volume", 20, -1)
    set_value(cols, "high", 3, 1.0)
    set_value(cols, "close", 9, np.nan)
    error = check(cols)
    assert [p.row for p in error.problems] == [3, 9, 20]


def test_broken_row_is_reported_once(make_simple: Callable[..., Bars]) -> None:
    cols = columns_of(make_simple(10))
    set_value(cols, "open", 2, -1.0)
    set_value(cols, "close", 5, np.nan)
    error = check(cols)
    assert error.total == 2


def test_empty_and_mismatched_inputs() -> None:
    empty = np.empty(0)
    error = check(dict(ts=empty.astype(np.int64), open=empty, high=empty, low=empty,
                       close=empty, volume=empty))  # fmt: skip
    assert "no data rows" in str(error)
    short = np.ones(2)
    error = check(dict(ts=np.arange(3), open=short, high=short, low=short, close=short,
                       volume=short))  # fmt: skip
    assert "differ in shape" in str(error)


def test_rows_mapping_changes_reported_row(make_simple: Callable[..., Bars]) -> None:
    cols = columns_of(make_simple(5))
    set_value(cols, "volume", 1, -1.0)
    with pytest.raises(BarValidationError) as info:
        validate_arrays(**cols, rows=np.arange(5, 0, -1))
    assert info.value.problems[0].row == 5
