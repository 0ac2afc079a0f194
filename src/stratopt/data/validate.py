"""Strict validation of bar arrays.

Every way bars enter the system (file import, upload, DataFrame conversion, storage) runs
these checks, so the engine can trust its inputs without re-checking them in hot loops.
The checks are vectorised; only the first few offending rows are turned into messages.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from stratopt.data.errors import MAX_REPORTED_PROBLEMS, BarValidationError, Problem

if TYPE_CHECKING:
    from stratopt.data.bars import Bars

__all__ = ["BarValidationError", "Problem", "find_problems", "validate_arrays", "validate_bars"]

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
PRICE_FIELDS = ("open", "high", "low", "close")

# A rule turns the offending indexes into messages; ``limit`` keeps work proportional to
# what is reported, not to how broken the file is.
MessageFn = Callable[[int], tuple[str, str]]


class _Collector:
    """Gathers problems rule by rule while counting all of them."""

    def __init__(self, ts: I64, rows: I64 | None, limit: int) -> None:
        self.ts = ts
        self.rows = rows
        self.limit = limit
        self.total = 0
        self.found: list[tuple[int, int, Problem]] = []
        self.rule = 0

    def add(self, mask: NDArray[np.bool_], message: MessageFn) -> None:
        """Record the rows where ``mask`` is True; ``message(i)`` -> (field, text)."""
        self.rule += 1
        bad = np.flatnonzero(mask)
        self.total += int(bad.size)
        for i in bad[: self.limit].tolist():
            field, text = message(i)
            row = int(self.rows[i]) if self.rows is not None else i + 1
            self.found.append((row, self.rule, Problem(row, int(self.ts[i]), field, text)))

    def problems(self) -> list[Problem]:
        """The reported problems in file order (then rule order within a row)."""
        self.found.sort(key=lambda item: (item[0], item[1]))
        return [problem for _, _, problem in self.found[: self.limit]]


def _num(value: float) -> str:
    """Shortest text that round-trips, so two close prices never print the same."""
    return repr(float(value))


def _check_order(c: _Collector, ts: I64) -> None:
    if ts.size < 2:
        return
    step = np.diff(ts)

    def message(i: int) -> tuple[str, str]:
        prev = i - 1
        prev_row = int(c.rows[prev]) if c.rows is not None else prev + 1
        if ts[i] == ts[prev]:
            return "ts", f"duplicate timestamp (same as row {prev_row})"
        return "ts", f"timestamp is earlier than row {prev_row}; sort the rows by time"

    mask = np.concatenate(([False], step <= 0))
    c.add(mask, message)


def _check_finite(c: _Collector, columns: dict[str, F64]) -> None:
    for field, values in columns.items():

        def message(i: int, field: str = field, values: F64 = values) -> tuple[str, str]:
            kind = "missing or NaN" if np.isnan(values[i]) else f"{_num(values[i])}, not finite"
            return field, f"{field} is {kind}"

        c.add(~np.isfinite(values), message)


def _check_signs(c: _Collector, columns: dict[str, F64]) -> None:
    for field in PRICE_FIELDS:
        values = columns[field]

        def message(i: int, field: str = field, values: F64 = values) -> tuple[str, str]:
            return field, f"{field} {_num(values[i])} must be > 0"

        c.add(values <= 0, message)
    volume = columns["volume"]
    c.add(volume < 0, lambda i: ("volume", f"volume {_num(volume[i])} must be >= 0"))


def _check_ranges(c: _Collector, o: F64, h: F64, lo: F64, cl: F64) -> None:
    # Rows with a missing or non-positive price already have their real problem reported;
    # comparing such a value with the others would only repeat it.
    usable = np.ones(o.shape, dtype=bool)
    for prices in (o, h, lo, cl):
        usable &= np.isfinite(prices) & (prices > 0)
    crossed = usable & (lo > h)
    c.add(crossed, lambda i: ("low", f"low {_num(lo[i])} > high {_num(h[i])}"))

    def high_message(i: int) -> tuple[str, str]:
        name, value = ("open", o[i]) if o[i] > cl[i] else ("close", cl[i])
        return "high", f"high {_num(h[i])} < {name} {_num(value)}"

    def low_message(i: int) -> tuple[str, str]:
        name, value = ("open", o[i]) if o[i] < cl[i] else ("close", cl[i])
        return "low", f"low {_num(lo[i])} > {name} {_num(value)}"

    # Likewise a row whose low is above its high gets one message, not three.
    usable &= ~crossed
    c.add(usable & (h < np.maximum(o, cl)), high_message)
    c.add(usable & (lo > np.minimum(o, cl)), low_message)


def find_problems(
    ts: I64,
    open: F64,
    high: F64,
    low: F64,
    close: F64,
    volume: F64,
    *,
    rows: I64 | None = None,
    limit: int = MAX_REPORTED_PROBLEMS,
) -> tuple[list[Problem], int]:
    """Return (first ``limit`` problems in row order, total number of problems).

    ``rows`` maps array positions to source row numbers when they differ from position+1
    (a file that was read in reverse, a later block of a stream).
    """
    columns = {"open": open, "high": high, "low": low, "close": close, "volume": volume}
    sizes = {name: arr.shape for name, arr in {"ts": ts, **columns}.items()}
    if len(set(sizes.values())) != 1 or ts.ndim != 1:
        shapes = ", ".join(f"{name} {shape}" for name, shape in sizes.items())
        return [Problem(None, None, "ts", f"columns differ in shape: {shapes}")], 1
    if ts.size == 0:
        return [Problem(None, None, "ts", "no data rows")], 1
    c = _Collector(ts, rows, limit)
    _check_order(c, ts)
    # Comparisons with NaN are False, so the rules below skip missing values on their own.
    with np.errstate(invalid="ignore"):
        _check_finite(c, columns)
        _check_signs(c, columns)
        _check_ranges(c, open, high, low, close)
    return c.problems(), c.total


def validate_arrays(
    ts: I64,
    open: F64,
    high: F64,
    low: F64,
    close: F64,
    volume: F64,
    *,
    rows: I64 | None = None,
) -> None:
    """Raise :class:`BarValidationError` unless the arrays form valid bars."""
    problems, total = find_problems(ts, open, high, low, close, volume, rows=rows)
    if total:
        raise BarValidationError(problems, total)


def validate_bars(bars: Bars) -> None:
    """Raise :class:`BarValidationError` unless ``bars`` are valid."""
    validate_arrays(bars.ts, bars.open, bars.high, bars.low, bars.close, bars.volume)
