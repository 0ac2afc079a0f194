"""Turn a table of source columns (CSV block, Parquet file, DataFrame) into bar arrays.

This is where text becomes numbers: timestamps in any accepted spelling become UTC epoch
nanoseconds and price text becomes float64. Values that cannot be converted are reported
with their row number and original text instead of silently becoming NaN.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from stratopt.data.columns import PRICE_FIELDS, ColumnMap
from stratopt.data.errors import MAX_REPORTED_PROBLEMS, BarValidationError, Problem

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

#: Epoch units by magnitude: a value below the bound is read in that unit. Seconds end at
#: 1e11 (year 5138) and milliseconds start at 1e11 (March 1973), so any realistic market
#: data lands in exactly one bucket.
EPOCH_UNITS: tuple[tuple[float, str, int], ...] = (
    (1e11, "s", 1_000_000_000),
    (1e14, "ms", 1_000_000),
    (1e17, "us", 1_000),
    (float("inf"), "ns", 1),
)
UNIT_SCALE = {unit: scale for _, unit, scale in EPOCH_UNITS}
YYYYMMDD = "yyyymmdd"
INT64_MAX = np.iinfo(np.int64).max
TS_HINT = "use ISO 8601 like 2024-03-01T10:00:00Z, or epoch seconds/milliseconds"


@dataclass(frozen=True, slots=True)
class RawColumns:
    """The six decoded columns of an import, before validation makes them a
    :class:`~stratopt.data.bars.Bars` (the one bar container); never leaves the package."""

    ts: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64

    @property
    def size(self) -> int:
        return int(self.ts.size)

    def columns(self) -> tuple[I64, F64, F64, F64, F64, F64]:
        return self.ts, self.open, self.high, self.low, self.close, self.volume

    def reversed(self) -> RawColumns:
        flip = slice(None, None, -1)
        return RawColumns(
            np.ascontiguousarray(self.ts[flip]),
            np.ascontiguousarray(self.open[flip]),
            np.ascontiguousarray(self.high[flip]),
            np.ascontiguousarray(self.low[flip]),
            np.ascontiguousarray(self.close[flip]),
            np.ascontiguousarray(self.volume[flip]),
        )

    @staticmethod
    def concat(parts: Sequence[RawColumns]) -> RawColumns:
        if not parts:
            return RawColumns(np.empty(0, np.int64), *(np.empty(0) for _ in range(5)))
        if len(parts) == 1:
            return parts[0]
        return RawColumns(
            np.concatenate([p.ts for p in parts]),
            np.concatenate([p.open for p in parts]),
            np.concatenate([p.high for p in parts]),
            np.concatenate([p.low for p in parts]),
            np.concatenate([p.close for p in parts]),
            np.concatenate([p.volume for p in parts]),
        )


def ascending(arrays: RawColumns) -> tuple[RawColumns, I64 | None]:
    """Flip newest-first data (common in broker exports) to oldest-first.

    Only data that is strictly decreasing from start to end is flipped, because that is
    unambiguous; anything else is left for validation to report. Returns the source row
    numbers when flipped so errors still point at the right line of the file.
    """
    if arrays.size > 1 and bool(np.all(np.diff(arrays.ts) < 0)):
        return arrays.reversed(), np.arange(arrays.size, 0, -1, dtype=np.int64)
    return arrays, None


class _Problems:
    def __init__(self) -> None:
        self.items: list[Problem] = []
        self.total = 0

    def add(self, bad: NDArray[np.bool_], first_row: int, describe: _Describe) -> None:
        idx = np.flatnonzero(bad)
        self.total += int(idx.size)
        for i in idx[:MAX_REPORTED_PROBLEMS].tolist():
            field, text = describe(i)
            self.items.append(Problem(first_row + i, None, field, text))

    def raise_if_any(self) -> None:
        if self.total:
            self.items.sort(key=lambda p: p.row or 0)
            raise BarValidationError(self.items, self.total)


class _Describe:
    """Message for a value that failed conversion, quoting what the file contained."""

    def __init__(self, field: str, raw: pd.Series, what: str) -> None:
        self.field, self.raw, self.what = field, raw, what

    def __call__(self, i: int) -> tuple[str, str]:
        value = self.raw.iloc[i]
        if _is_blank(value):
            return self.field, f"{self.field} is missing"
        return self.field, f"{self.field} {str(value)!r} is not {self.what}"


def _is_blank(value: object) -> bool:
    return value is None or bool(pd.isna(value)) or str(value).strip() == ""  # type: ignore[arg-type]


def _is_datetime(values: pd.Series) -> bool:
    return isinstance(values.dtype, pd.DatetimeTZDtype) or values.dtype.kind == "M"


def _is_number(values: pd.Series) -> bool:
    return values.dtype.kind in "iufb"


@dataclass
class TimestampDecoder:
    """Converts timestamp columns to epoch nanoseconds.

    Stateful so a stream of CSV blocks interprets epoch numbers with one unit: the unit is
    detected from the first numeric block and then kept, otherwise a block of small values
    could be read as seconds while the rest of the file is milliseconds.
    """

    epoch_unit: str | None = None

    def decode(self, values: pd.Series, first_row: int, problems: _Problems) -> I64:
        describe = _Describe("ts", values, f"a recognised date/time ({TS_HINT})")
        if _is_datetime(values):
            return _datetimes_to_ns(values, first_row, problems, describe)
        if _is_number(values):
            return self._epoch_to_ns(values, first_row, problems, describe)
        return _datetimes_to_ns(_parse_text(values), first_row, problems, describe)

    def _epoch_to_ns(
        self, values: pd.Series, first_row: int, problems: _Problems, describe: _Describe
    ) -> I64:
        numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
        missing = ~np.isfinite(numbers)
        if self.epoch_unit is None and not missing.all():
            self.epoch_unit = _detect_epoch_unit(numbers[~missing] if missing.any() else numbers)
        if self.epoch_unit == YYYYMMDD:
            text = pd.Series(np.where(missing, 0, numbers).astype(np.int64)).astype(str)
            dates = pd.to_datetime(text.mask(missing), format="%Y%m%d", errors="coerce")
            return _datetimes_to_ns(dates, first_row, problems, describe)
        scale = UNIT_SCALE[self.epoch_unit or "s"]
        if values.dtype.kind in "iu":  # exact: no detour through float64
            whole = values.to_numpy(dtype=np.int64, na_value=0)
            frac = None
        else:
            floor = np.floor(np.where(missing, 0.0, numbers))
            whole, frac = floor.astype(np.int64), numbers - floor
        bad = missing | (np.abs(whole) > INT64_MAX // scale - 1)
        if bad.any():
            problems.add(bad, first_row, describe)
            whole = np.where(bad, 0, whole)
        ns = whole * scale
        if frac is not None and scale > 1:
            ns += np.rint(np.where(bad, 0.0, frac) * scale).astype(np.int64)
        return ns


def _detect_epoch_unit(numbers: F64) -> str:
    if _looks_like_yyyymmdd(numbers):
        return YYYYMMDD
    magnitude = float(np.max(np.abs(numbers)))
    return next(unit for bound, unit, _ in EPOCH_UNITS if magnitude < bound)


def _looks_like_yyyymmdd(numbers: F64) -> bool:
    """Dates written as integers (20240301) instead of epoch seconds from August 1970."""
    if numbers.min() < 19000101 or numbers.max() > 21001231:
        return False
    if not np.array_equal(numbers, np.floor(numbers)):
        return False
    text = pd.Series(numbers.astype(np.int64).astype(str))
    return bool(pd.to_datetime(text, format="%Y%m%d", errors="coerce").notna().all())


def _parse_text(values: pd.Series) -> pd.Series:
    """Text to UTC datetimes: ISO 8601 first (fast, unambiguous), then other spellings.

    For text like 03/04/2024 the whole column is read month-first and then day-first, and
    the first reading that accepts every value wins, so a European file is recognised by
    its days above 12 instead of being mixed up value by value. Whatever still fails is
    tried per value and otherwise reported.
    """
    present = values.notna()
    parsed = pd.to_datetime(values, utc=True, format="ISO8601", errors="coerce")
    if not (parsed.isna() & present).any():
        return parsed
    for dayfirst in (False, True):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "could not infer format" is expected here
            guess = pd.to_datetime(values, utc=True, dayfirst=dayfirst, errors="coerce")
        if not (guess.isna() & present).any():
            return guess
    retry = parsed.isna() & present
    again = pd.to_datetime(values[retry], utc=True, format="mixed", errors="coerce")
    parsed = parsed.dt.as_unit("ns")
    parsed[retry] = again.dt.as_unit("ns")
    return parsed


def _datetimes_to_ns(
    values: pd.Series, first_row: int, problems: _Problems, describe: _Describe
) -> I64:
    index = pd.DatetimeIndex(values)
    index = index.tz_localize("UTC") if index.tz is None else index.tz_convert("UTC")
    try:
        ns = index.as_unit("ns").asi8
    except (OverflowError, pd.errors.OutOfBoundsDatetime) as exc:
        raise BarValidationError(
            [Problem(None, None, "ts", f"timestamps outside 1677..2262 are not supported: {exc}")]
        ) from exc
    missing = np.asarray(index.isna())
    if not missing.any():
        return np.asarray(ns, dtype=np.int64)
    problems.add(missing, first_row, describe)
    return np.where(missing, 0, ns).astype(np.int64)


def _numbers(values: pd.Series, field: str, first_row: int, problems: _Problems) -> F64:
    if _is_number(values):
        return values.to_numpy(dtype=np.float64, na_value=np.nan)
    text = values.astype("str").str.strip()
    numbers = pd.to_numeric(text, errors="coerce")
    blank = values.isna() | text.isin(["", "nan", "NaN", "None"])
    failed = np.array(numbers.isna() & ~blank, dtype=bool)
    problems.add(failed, first_row, _Describe(field, values, "a number"))
    return numbers.to_numpy(dtype=np.float64, na_value=np.nan)


def _time_values(frame: pd.DataFrame, columns: ColumnMap) -> pd.Series:
    if columns.ts is None:
        return pd.Series(frame.index, index=range(len(frame)))
    values = frame[columns.ts].reset_index(drop=True)
    if columns.time_of_day is None:
        return values
    time_of_day = frame[columns.time_of_day].reset_index(drop=True)
    if _is_datetime(values):
        values = values.dt.strftime("%Y-%m-%d")
    return values.astype("str").str.strip() + " " + time_of_day.astype("str").str.strip()


def decode_frame(
    frame: pd.DataFrame, columns: ColumnMap, decoder: TimestampDecoder, *, first_row: int = 1
) -> RawColumns:
    """Convert the mapped columns of ``frame``; raise with row numbers on bad values.

    ``first_row`` is the source row number of the frame's first row, so blocks of a stream
    report positions in the whole upload.
    """
    problems = _Problems()
    ts = decoder.decode(_time_values(frame, columns), first_row, problems)
    prices = {
        field: _numbers(frame[getattr(columns, field)], field, first_row, problems)
        for field in PRICE_FIELDS
    }
    volume = (
        np.zeros(len(frame))
        if columns.volume is None
        else _numbers(frame[columns.volume], "volume", first_row, problems)
    )
    problems.raise_if_any()
    return RawColumns(ts, prices["open"], prices["high"], prices["low"], prices["close"], volume)
