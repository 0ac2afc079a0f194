"""Which source column holds which bar field.

Files from exchanges, brokers and charting tools name their columns differently
("Date", "<OPEN>", "open_time", "Vol."); matching is case-insensitive on a normalised name
against a short list of aliases, so common exports load without a mapping step but an
ambiguous file is refused rather than guessed at.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from stratopt.data.errors import ImportFormatError

PRICE_FIELDS = ("open", "high", "low", "close")

#: Accepted names per field, in order of preference (normalised form, see ``normalise``).
ALIASES: dict[str, tuple[str, ...]] = {
    "ts": ("ts", "timestamp", "datetime", "date_time", "open_time", "time", "date"),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c"),
    "volume": ("volume", "vol", "v", "tick_volume", "tickvol"),
}

#: Field order of headerless files and of row tuples.
POSITIONAL = ("ts", "open", "high", "low", "close", "volume")


def normalise(name: object) -> str:
    """Lower-case, strip brackets/quotes/dots and turn spaces and dashes into ``_``."""
    text = str(name).strip().lower()
    text = re.sub(r"[<>\"'.]", "", text)
    return re.sub(r"[\s\-]+", "_", text).strip("_")


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """Source column names for each bar field.

    ``ts`` is None when the time comes from the frame's index; ``time_of_day`` is set when
    the file splits the timestamp into a date column and a time column.
    """

    ts: str | None
    time_of_day: str | None
    open: str
    high: str
    low: str
    close: str
    volume: str | None

    def source_columns(self) -> list[str]:
        """The columns that have to be read, in a stable order."""
        names = [self.ts, self.time_of_day, self.open, self.high, self.low, self.close]
        names.append(self.volume)
        return [name for name in names if name is not None]


def _index(names: Sequence[str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name in names:
        found.setdefault(normalise(name), []).append(name)
    return found


def _single(found: dict[str, list[str]], alias: str, field: str) -> str | None:
    matches = found.get(alias, [])
    if len(matches) > 1:
        raise ImportFormatError(
            f"columns {', '.join(map(repr, matches))} all look like {field!r}; "
            "keep only one of them"
        )
    return matches[0] if matches else None


def _pick(found: dict[str, list[str]], field: str) -> str | None:
    for alias in ALIASES[field]:
        if (name := _single(found, alias, field)) is not None:
            return name
    return None


def _pick_time(found: dict[str, list[str]]) -> tuple[str | None, str | None]:
    """The timestamp column, or a (date, time-of-day) pair when the file splits them."""
    combined = ("ts", "timestamp", "datetime", "date_time", "open_time")
    if "date" in found and "time" in found and not any(alias in found for alias in combined):
        return _single(found, "date", "ts"), _single(found, "time", "ts")
    return _pick(found, "ts"), None


def resolve_columns(names: Sequence[str], *, index_has_time: bool = False) -> ColumnMap:
    """Map source column names to bar fields, or explain exactly what is missing.

    ``index_has_time`` lets a DataFrame with a DatetimeIndex omit the timestamp column.
    Volume is optional (many FX and index feeds have none) and becomes zeros.
    """
    found = _index(names)
    ts, time_of_day = _pick_time(found)
    picked = {field: _pick(found, field) for field in PRICE_FIELDS}
    missing = [field for field, name in picked.items() if name is None]
    if ts is None and not index_has_time:
        missing.insert(0, "ts")
    if missing:
        wanted = "; ".join(f"{field}: {', '.join(ALIASES[field])}" for field in missing)
        have = ", ".join(map(str, names)) or "(none)"
        raise ImportFormatError(
            f"missing column(s) {', '.join(missing)} (accepted names, case-insensitive: "
            f"{wanted}); the data has columns: {have}"
        )
    return ColumnMap(
        ts=ts,
        time_of_day=time_of_day,
        open=str(picked["open"]),
        high=str(picked["high"]),
        low=str(picked["low"]),
        close=str(picked["close"]),
        volume=_pick(found, "volume"),
    )
