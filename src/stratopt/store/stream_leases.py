"""Stream leases in the database: the per-user stream cap shared by processes and replicas.

Implements `security.stream_cap.LeaseStore`. Opening is insert-then-count in one write
transaction: on SQLite BEGIN IMMEDIATE runs writers one at a time, and on PostgreSQL a
per-user advisory lock does the same, so the count never misses a concurrent opener and the
cap is never exceeded (two racing openers may at worst both see the other and one retries).
"""

from __future__ import annotations

import zlib
from datetime import timedelta

from sqlalchemy import delete, func, select, text, update

from stratopt.store import models
from stratopt.store.db import Database
from stratopt.store.models import new_id, utcnow

_LOCK_SPACE = 0x5354524154_0002
"""High bits of the pg_advisory_xact_lock key of a user's stream leases."""


class SqlStreamLeases:
    def __init__(self, db: Database, holder: str, ttl_seconds: float = 30.0) -> None:
        self.db = db
        self.holder = holder[:64]
        self.ttl = timedelta(seconds=ttl_seconds)

    async def open(self, user_id: str, cap: int) -> str | None:
        """A lease id, or None when the user already holds `cap` live leases."""
        L = models.StreamLease
        now = utcnow()
        lease_id = new_id()
        async with self.db.transaction() as s:
            if s.get_bind().dialect.name == "postgresql":
                key = _LOCK_SPACE ^ zlib.crc32(user_id.encode())
                await s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})
            await s.execute(delete(L).where(L.user_id == user_id, L.heartbeat_at < now - self.ttl))
            held = (
                await s.execute(select(func.count()).select_from(L).where(L.user_id == user_id))
            ).scalar_one()
            if held >= cap:
                return None
            s.add(L(id=lease_id, user_id=user_id, holder=self.holder, heartbeat_at=now))
        return lease_id

    async def close(self, lease_id: str) -> None:
        L = models.StreamLease
        async with self.db.transaction() as s:
            await s.execute(delete(L).where(L.id == lease_id))

    async def heartbeat(self) -> None:
        """Keeps this holder's leases live (called well within the TTL)."""
        L = models.StreamLease
        async with self.db.transaction() as s:
            await s.execute(update(L).where(L.holder == self.holder).values(heartbeat_at=utcnow()))

    async def close_all(self) -> None:
        """At shutdown: this holder's streams are over."""
        L = models.StreamLease
        async with self.db.transaction() as s:
            await s.execute(delete(L).where(L.holder == self.holder))
