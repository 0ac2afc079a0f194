"""Injectable clocks: wall time for anything persisted or put in a token, monotonic time for
rate limiting (wall clocks jump under NTP; a bucket must not refill because of it)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

WallClock = Callable[[], datetime]
MonotonicClock = Callable[[], float]


def utc_now() -> datetime:
    return datetime.now(UTC)
