"""Live bars and the checks a feed runs on each one before any strategy sees it.

A backtest trusts its bars because every import path validates them as a whole
(``stratopt.data.validate``). A live feed delivers bars one at a time, so the same rules
are applied per bar here, plus the ones only a stream has: a declared symbol set and
strictly increasing timestamps per symbol. A rejected bar changes nothing: the validator
only remembers a bar's timestamp once the bar is accepted, so a bad bar can neither block
nor reorder the good ones after it.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeGuard

NS_PER_SECOND = 1_000_000_000


@dataclass(frozen=True, slots=True)
class LiveBar:
    """One completed bar of one symbol; ``ts`` is its open time in UTC epoch nanoseconds."""

    symbol: str
    ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class BarRejected(ValueError):
    """A bar failed validation; ``reason`` says why in words an end user can act on."""

    def __init__(self, bar: LiveBar, reason: str) -> None:
        super().__init__(f"{bar.symbol} bar at {format_ts(bar.ts)} rejected: {reason}")
        self.bar = bar
        self.reason = reason


def format_ts(ts: object) -> str:
    """ISO 8601 UTC text for epoch nanoseconds (or the value's repr if it is not one)."""
    if not _is_int(ts):
        return repr(ts)
    seconds, nanos = divmod(int(ts), NS_PER_SECOND)
    try:
        stamp = datetime.fromtimestamp(seconds, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return f"{ts} ns"
    text = stamp.strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{nanos:09d}Z" if nanos else f"{text}Z"


def _is_int(value: object) -> TypeGuard[numbers.Integral]:
    """An integer, numpy's included, but not a bool."""
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _num(value: float) -> str:
    """Shortest text that round-trips, so two close prices never print the same."""
    return repr(float(value))


def bar_problem(bar: LiveBar) -> str | None:
    """The first thing wrong with a bar on its own (no feed context), or None.

    Same rules as dataset validation: finite numbers, prices > 0 (a zero price would size
    an infinite position), volume >= 0, low <= high, open and close within [low, high].
    """
    o, h, lo, c, v = bar.open, bar.high, bar.low, bar.close, bar.volume
    if (  # the common case, decided in a few comparisons: plain finite floats, a valid bar
        type(bar.ts) is int
        and type(o) is float
        and type(h) is float
        and type(lo) is float
        and type(c) is float
        and type(v) is float
        and 0.0 < lo <= o <= h < math.inf
        and lo <= c <= h
        and 0.0 <= v < math.inf
    ):
        return None
    if not _is_int(bar.ts):
        return f"timestamp must be integer epoch nanoseconds, got {bar.ts!r}"
    fields = {
        "open": bar.open,
        "high": bar.high,
        "low": bar.low,
        "close": bar.close,
        "volume": bar.volume,
    }
    for name, value in fields.items():
        if not isinstance(value, numbers.Real) or isinstance(value, bool):
            return f"{name} must be a number, got {value!r}"
        if math.isnan(value):
            return f"{name} is NaN"
        if math.isinf(value):
            return f"{name} is {_num(value)}, not finite"
    for name in ("open", "high", "low", "close"):
        if fields[name] <= 0:
            return f"{name} {_num(fields[name])} must be > 0"
    if bar.volume < 0:
        return f"volume {_num(bar.volume)} must be >= 0"
    if bar.low > bar.high:
        return f"high {_num(bar.high)} is below low {_num(bar.low)}"
    for name in ("open", "close"):
        value = fields[name]
        if not bar.low <= value <= bar.high:
            return (
                f"{name} {_num(value)} is outside the bar's range "
                f"[low {_num(bar.low)}, high {_num(bar.high)}]"
            )
    return None


class FeedValidator:
    """Per-feed gate: a declared symbol set and the last accepted timestamp per symbol.

    Not thread-safe; one feed task owns one validator.
    """

    def __init__(self, symbols: Iterable[str]) -> None:
        self._symbols = frozenset(symbols)
        if not self._symbols:
            raise ValueError("a feed needs at least one symbol")
        self._last_ts: dict[str, int] = {}

    @property
    def symbols(self) -> frozenset[str]:
        return self._symbols

    def last_ts(self, symbol: str) -> int | None:
        """Timestamp of the last accepted bar of ``symbol`` (None before the first)."""
        return self._last_ts.get(symbol)

    def problem(self, bar: LiveBar) -> str | None:
        """Why ``bar`` would be rejected now, or None if it would be accepted (no side effect)."""
        if bar.symbol not in self._symbols:
            known = ", ".join(sorted(self._symbols))
            return f"unknown symbol {bar.symbol!r}; this feed carries {known}"
        if bar.ts == 0:
            # What a bar without a time becomes (see api.live_convert); never a real bar.
            return "time is missing: every bar needs its open time"
        found = bar_problem(bar)
        if found:
            return found
        last = self._last_ts.get(bar.symbol)
        if last is not None and bar.ts <= last:
            relation = "repeats" if bar.ts == last else "is earlier than"
            return (
                f"timestamp {format_ts(bar.ts)} {relation} the last accepted bar "
                f"({format_ts(last)}); bars must arrive in strictly increasing time"
            )
        return None

    def accept(self, bar: LiveBar) -> LiveBar:
        """Return ``bar`` and remember its time, or raise BarRejected leaving state untouched."""
        reason = self.problem(bar)
        if reason is not None:
            raise BarRejected(bar, reason)
        self._last_ts[bar.symbol] = bar.ts
        return bar

    def restore(self, last_ts: dict[str, int]) -> None:
        """Resume after a restart: the last accepted timestamp of each symbol."""
        unknown = set(last_ts) - self._symbols
        if unknown:
            raise ValueError(f"unknown symbols in saved feed state: {sorted(unknown)}")
        self._last_ts = dict(last_ts)

    def snapshot(self) -> dict[str, int]:
        """The last accepted timestamp of each symbol (what ``restore`` takes)."""
        return dict(self._last_ts)
