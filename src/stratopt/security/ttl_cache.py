"""A small time-bounded cache for per-call lookups (users, sessions).

Every authenticated call needs the caller's user row (is it disabled? what is its role
now?) and, for JWT callers, whether their session was logged out. Reading both from the
database on every call would double the cost of small RPCs; caching them for a couple of
seconds bounds how stale a decision can be ("a disabled user is locked out within 2 s")
while absorbing bursts. Entries are evicted explicitly when this process makes the change.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from stratopt.security.clock import MonotonicClock

V = TypeVar("V")


class TtlCache(Generic[V]):
    """LRU with a time-to-live; a TTL of 0 disables caching."""

    def __init__(
        self,
        ttl_seconds: float,
        *,
        max_entries: int = 10_000,
        clock: MonotonicClock = time.monotonic,
    ) -> None:
        if ttl_seconds < 0 or max_entries < 1:
            raise ValueError("ttl_seconds must be >= 0 and max_entries >= 1")
        self.ttl = ttl_seconds
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, V]] = OrderedDict()
        self._lock = threading.Lock()

    async def get_or_load(self, key: str, load: Callable[[], Awaitable[V]]) -> V:
        """The cached value, or `load()`'s (cached, including "not found" answers such as
        None, so unknown ids cannot be used to hammer the database)."""
        now = self._clock()
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] > now:
                self._entries.move_to_end(key)
                return hit[1]
        value = await load()
        if self.ttl > 0:
            with self._lock:
                self._entries[key] = (now + self.ttl, value)
                self._entries.move_to_end(key)
                while len(self._entries) > self._max:
                    self._entries.popitem(last=False)
        return value

    def forget(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)
