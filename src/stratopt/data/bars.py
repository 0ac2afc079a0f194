"""``Bars``: the one in-memory shape of OHLCV data in stratopt.

Plain contiguous numpy columns rather than a DataFrame, because the engine's numba kernels
take arrays and a loaded dataset should be usable without copying (storage hands out
memory-mapped arrays). The arrays are read-only so one loaded dataset can be shared by many
concurrent backtests without any of them being able to corrupt it.

It is the only bar container: importers, storage, resampling, ``engine.backtest`` (which
takes a Bars as is), the optimizer and the job workers all pass this value. (The importers'
``tables.RawColumns`` are the not-yet-validated columns of a file being decoded, never
passed outside ``stratopt.data``.)
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from stratopt.data.columns import resolve_columns
from stratopt.data.tables import TimestampDecoder, ascending, decode_frame
from stratopt.data.timestamps import NS_PER_SECOND, TimeLike, format_ts, to_epoch_ns
from stratopt.data.validate import validate_arrays

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
FLOAT_FIELDS = ("open", "high", "low", "close", "volume")
UTC_NS = pd.DatetimeTZDtype("ns", "UTC")


def _frozen(values: NDArray[np.generic], dtype: type[np.generic], name: str) -> NDArray[np.generic]:
    """A read-only, C-contiguous, 1-D view of ``values`` as ``dtype`` (copying only if needed)."""
    array = np.ascontiguousarray(values, dtype=dtype)
    if array.ndim != 1:
        raise ValueError(f"Bars.{name} must be 1-D, got shape {array.shape}")
    view = array.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, eq=False)
class Bars:
    """OHLCV bars: ``ts`` is UTC epoch nanoseconds (strictly increasing), the rest float64.

    The constructor only enforces the structure (dtypes, contiguity, equal lengths), which
    is O(1) for arrays that already have the right layout; the content rules are checked by
    :mod:`stratopt.data.validate`, which every import path and :meth:`from_arrays` run.
    """

    ts: I64
    open: F64
    high: F64
    low: F64
    close: F64
    volume: F64

    def __post_init__(self) -> None:
        object.__setattr__(self, "ts", _frozen(self.ts, np.int64, "ts"))
        for name in FLOAT_FIELDS:
            object.__setattr__(self, name, _frozen(getattr(self, name), np.float64, name))
        lengths = {name: getattr(self, name).size for name in ("ts", *FLOAT_FIELDS)}
        if len(set(lengths.values())) != 1:
            raise ValueError(f"Bars columns differ in length: {lengths}")

    @classmethod
    def from_arrays(
        cls,
        ts: I64,
        open: F64,
        high: F64,
        low: F64,
        close: F64,
        volume: F64,
        *,
        rows: I64 | None = None,
    ) -> Bars:
        """Build validated bars (raises :class:`BarValidationError`).

        ``rows`` gives the source row number of each element for error messages.
        """
        bars = cls(ts, open, high, low, close, volume)
        validate_arrays(*bars.columns(), rows=rows)
        return bars

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Bars:
        """Validated bars from a DataFrame.

        Columns are matched like file imports (case-insensitive, aliases such as ``o`` or
        ``vol``); the time comes from a timestamp column or a DatetimeIndex; naive times are
        UTC; newest-first frames are flipped; a missing volume column becomes zeros.
        """
        index_has_time = isinstance(frame.index, pd.DatetimeIndex)
        columns = resolve_columns([str(c) for c in frame.columns], index_has_time=index_has_time)
        frame = frame.rename(columns=str)
        arrays, rows = ascending(decode_frame(frame, columns, TimestampDecoder()))
        return cls.from_arrays(*arrays.columns(), rows=rows)

    def to_frame(self) -> pd.DataFrame:
        """A DataFrame with a UTC DatetimeIndex named ``ts`` and float columns."""
        data = {name: getattr(self, name) for name in FLOAT_FIELDS}
        return pd.DataFrame(data, index=self.index, copy=True)

    @cached_property
    def index(self) -> pd.DatetimeIndex:
        """The bar times as a UTC DatetimeIndex named ``ts``, built once per Bars."""
        return pd.DatetimeIndex(self.ts.view("datetime64[ns]"), dtype=UTC_NS, name="ts")

    def columns(self) -> tuple[I64, F64, F64, F64, F64, F64]:
        """(ts, open, high, low, close, volume), the order the engine and files use."""
        return self.ts, self.open, self.high, self.low, self.close, self.volume

    def __len__(self) -> int:
        return int(self.ts.size)

    def __repr__(self) -> str:
        if not len(self):
            return "Bars(n=0)"
        span = f"{format_ts(self.first_ts)}..{format_ts(self.last_ts)}"
        return f"Bars(n={len(self)}, {span}, timeframe={self.timeframe_seconds}s)"

    def slice(self, start: int | None = None, stop: int | None = None) -> Bars:
        """Bars ``start:stop`` by position, as views (no copy)."""
        s = slice(start, stop)
        return Bars(
            self.ts[s], self.open[s], self.high[s], self.low[s], self.close[s], self.volume[s]
        )

    def between(self, start: TimeLike | None = None, end: TimeLike | None = None) -> Bars:
        """Bars with ``start <= ts < end`` (half-open, so adjacent periods never overlap).

        Bounds are epoch nanoseconds, ISO strings or datetimes (naive = UTC); None leaves
        that side open. Views, no copy.
        """
        lo = 0 if start is None else int(np.searchsorted(self.ts, to_epoch_ns(start), "left"))
        hi = len(self) if end is None else int(np.searchsorted(self.ts, to_epoch_ns(end), "left"))
        return self.slice(lo, max(lo, hi))

    @property
    def first_ts(self) -> int:
        """Epoch ns of the first bar (IndexError when empty)."""
        return int(self.ts[0])

    @property
    def last_ts(self) -> int:
        """Epoch ns of the last bar (IndexError when empty)."""
        return int(self.ts[-1])

    @cached_property
    def timeframe_seconds(self) -> int:
        """Bar spacing in whole seconds: the median gap, so weekends and outages don't count.

        0 when there are fewer than two bars.
        """
        if len(self) < 2:
            return 0
        return round(float(np.median(np.diff(self.ts))) / NS_PER_SECOND)

    def equals(self, other: Bars) -> bool:
        """Same length and identical values in every column (NaN never equals NaN)."""
        return len(self) == len(other) and all(
            np.array_equal(mine, theirs)
            for mine, theirs in zip(self.columns(), other.columns(), strict=True)
        )
