"""The per-user cap on open server streams, in one process or across several.

Each process counts its own streams (`ConcurrencyLimiter`, no I/O). When several processes
or replicas serve one database, a `LeaseStore` (store/stream_leases.py) also counts every
process's streams, so a user cannot hold N times the cap by spreading streams over N
processes. A lease is taken when a stream opens and given back when it ends; a process that
dies stops refreshing its leases and they lapse after the store's TTL.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Protocol

from stratopt.security.ratelimit import ConcurrencyLimiter

log = logging.getLogger("stratopt.security.streams")


class LeaseStore(Protocol):
    async def open(self, user_id: str, cap: int) -> str | None: ...

    async def close(self, lease_id: str) -> None: ...

    async def heartbeat(self) -> None: ...

    async def close_all(self) -> None: ...


@dataclass(frozen=True)
class Lease:
    user_id: str
    shared_id: str | None


class StreamCap:
    def __init__(self, local: ConcurrencyLimiter, shared: LeaseStore | None = None) -> None:
        self.local = local
        self.shared = shared
        self._closing: set[asyncio.Task[None]] = set()

    @property
    def max_per_principal(self) -> int:
        return self.local.max_per_principal

    async def acquire(self, user_id: str) -> Lease | None:
        """A lease for one stream, or None when the user is at the cap."""
        if not self.local.acquire(user_id):
            return None
        if self.shared is None:
            return Lease(user_id, None)
        try:
            shared_id = await self.shared.open(user_id, self.local.max_per_principal)
        except BaseException:
            self.local.release(user_id)
            raise
        if shared_id is None:
            self.local.release(user_id)
            return None
        return Lease(user_id, shared_id)

    def release(self, lease: Lease) -> None:
        """Gives the lease back at once locally; the shared lease is closed in the background
        (a stream's `finally` may run while its task is being cancelled)."""
        self.local.release(lease.user_id)
        if self.shared is not None and lease.shared_id is not None:
            task = asyncio.get_running_loop().create_task(self._close(lease.shared_id))
            self._closing.add(task)
            task.add_done_callback(self._closing.discard)

    async def _close(self, lease_id: str) -> None:
        assert self.shared is not None
        try:
            await self.shared.close(lease_id)
        except Exception:  # it lapses after the TTL anyway
            log.warning("stream lease not closed; it lapses after its TTL", exc_info=True)

    async def heartbeat_forever(self, every: float) -> None:
        """Keeps this process's shared leases live; their rows go when it shuts down."""
        if self.shared is None:
            return
        try:
            while True:
                await asyncio.sleep(every)
                try:
                    await self.shared.heartbeat()
                except Exception:
                    log.warning("stream lease heartbeat failed", exc_info=True)
        finally:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.shared.close_all())
