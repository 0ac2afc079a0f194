"""A small time-bounded cache for per-call lookups (users, sessions).

Every authenticated call needs the caller's user row (is it disabled? what is its role
now?) and, for JWT callers, whether their session was logged out. Reading both from the
database on every call would double the cost of small RPCs; caching them for a couple of
seconds bounds how stale a decision can be ("a disabled user is locked out within 2 s")
while absorbing bursts. Entries are evicted explicitly when this process makes the change.

Loads are single-flight: when an entry expires under load, the calls that need it share
one load instead of each starting its own. Without that, 64 concurrent calls of one user
ran 64 database reads for the session and 64 for the user every time the entry expired,
which was about 40 % of a GetStrategy's CPU at concurrency 64 (bench/load.py).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from stratopt.security.clock import MonotonicClock

V = TypeVar("V")


class TtlCache(Generic[V]):
    """LRU with a time-to-live; a TTL of 0 disables caching (and sharing of loads)."""

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
        # Loads under way, by key. A load started before `forget(key)` may have read the
        # old value: forgetting drops it here and bumps the generation, so its result is
        # neither shared with later callers nor stored.
        self._loading: dict[str, asyncio.Future[V]] = {}
        self._generation = 0

    async def get_or_load(self, key: str, load: Callable[[], Awaitable[V]]) -> V:
        """The cached value, or `load()`'s (cached, including "not found" answers such as
        None, so unknown ids cannot be used to hammer the database). Concurrent callers of
        a missing key wait for the same load; cancelling one of them does not cancel it."""
        now = self._clock()
        with self._lock:
            hit = self._entries.get(key)
            if hit is not None and hit[0] > now:
                self._entries.move_to_end(key)
                return hit[1]
        if self.ttl == 0:
            return await load()
        pending = self._loading.get(key)
        if pending is None or pending.get_loop() is not asyncio.get_running_loop():
            pending = asyncio.ensure_future(self._load(key, load, now, self._generation))
            self._loading[key] = pending
        return await asyncio.shield(pending)

    async def _load(
        self, key: str, load: Callable[[], Awaitable[V]], now: float, generation: int
    ) -> V:
        try:
            value = await load()
        finally:
            if self._loading.get(key) is asyncio.current_task():
                del self._loading[key]
        if generation == self._generation:
            with self._lock:
                self._entries[key] = (now + self.ttl, value)
                self._entries.move_to_end(key)
                while len(self._entries) > self._max:
                    self._entries.popitem(last=False)
        return value

    def forget(self, key: str) -> None:
        with self._lock:
            self._entries.pop(key, None)
            self._loading.pop(key, None)
            self._generation += 1

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._loading.clear()
            self._generation += 1

    def __len__(self) -> int:
        return len(self._entries)
