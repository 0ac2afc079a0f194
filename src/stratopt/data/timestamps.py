"""Scalar timestamp helpers: everything inside the data package is UTC epoch nanoseconds.

Users type dates as strings or datetimes; these helpers are the one place that turns them
into the package's integer nanoseconds and back, so "naive means UTC" is decided once.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal, TypeAlias

import numpy as np
import pandas as pd

NS_PER_SECOND = 1_000_000_000

TimeLike: TypeAlias = int | str | datetime | date | pd.Timestamp | np.datetime64
Unit: TypeAlias = Literal["s", "ms", "us", "ns"]


def to_epoch_ns(value: TimeLike) -> int:
    """Convert a point in time to UTC epoch nanoseconds.

    Integers are taken as already being epoch nanoseconds (the package's native unit);
    strings are ISO 8601; naive strings and datetimes are read as UTC, never local time,
    because a server's local zone must not change which bars a backtest sees.
    """
    if isinstance(value, bool):
        raise ValueError("a boolean is not a point in time")
    if isinstance(value, int | np.integer):
        return int(value)
    try:
        stamp = pd.Timestamp(value)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{value!r} is not a recognised date/time (use ISO 8601)") from exc
    if stamp is pd.NaT:
        raise ValueError(f"{value!r} is not a point in time")
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return int(stamp.as_unit("ns").value)


def format_ts(ts_ns: int) -> str:
    """ISO 8601 in UTC with a ``Z``, using only as much sub-second precision as needed.

    Error messages quote these, so they must match how the user's file most likely spelled
    the time (whole seconds for ordinary bars).
    """
    unit: Unit
    if ts_ns % NS_PER_SECOND == 0:
        unit = "s"
    elif ts_ns % 1_000_000 == 0:
        unit = "ms"
    elif ts_ns % 1_000 == 0:
        unit = "us"
    else:
        unit = "ns"
    stamp = np.array([ts_ns], dtype="datetime64[ns]")
    return str(np.datetime_as_string(stamp, unit=unit, timezone="UTC")[0])
