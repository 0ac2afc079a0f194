"""The security store on PostgreSQL: schema, atomic compare-and-sets, shared rate limits.

Needs a server (`.ci/postgres.sh` starts one and writes /tmp/stratopt-pg.env); each test
module works in a database of its own, created and dropped here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from stratopt.security.api_keys import ApiKeyService
from stratopt.security.passwords import PasswordHasher, ScryptParams
from stratopt.security.ratelimit import Category, Rate, RateLimits
from stratopt.security.refresh_tokens import RefreshTokenPolicy
from stratopt.security.roles import Permission, Role
from stratopt.security.users import UserService
from stratopt.store import models
from stratopt.store.db import Database
from stratopt.store.security_repos import (
    PgRateLimitBackend,
    SqlApiKeyRepo,
    SqlRefreshTokenRepo,
    SqlUserRepo,
)
from tests.tools import fresh_postgres

pytestmark = pytest.mark.postgres


@pytest.fixture()
async def db() -> AsyncIterator[Database]:
    async with fresh_postgres("stratopt_sec") as database:
        yield database


async def test_migrations_match_the_models(db: Database) -> None:
    async with db.engine.connect() as conn:
        diff = await conn.run_sync(
            lambda c: compare_metadata(
                MigrationContext.configure(c, opts={"compare_type": True}), models.Base.metadata
            )
        )
    assert diff == []


async def test_shared_buckets_hold_across_replicas(db: Database) -> None:
    limits = RateLimits(general=Rate(1.0, 3))
    replica_a, replica_b = PgRateLimitBackend(db, limits), PgRateLimitBackend(db, limits)
    decisions = [
        await replica_a.acquire("u:alice", Category.GENERAL),
        await replica_b.acquire("u:alice", Category.GENERAL),
        await replica_a.acquire("u:alice", Category.GENERAL),
    ]
    assert [d.allowed for d in decisions] == [True, True, True]
    assert [d.remaining for d in decisions] == [2, 1, 0]
    refused = await replica_b.acquire("u:alice", Category.GENERAL)
    assert not refused.allowed and refused.limit == 3
    assert 0.5 < refused.retry_after_seconds <= 1.0
    assert (await replica_a.acquire("u:bob", Category.GENERAL)).allowed
    await asyncio.sleep(refused.retry_after_seconds + 0.1)
    assert (await replica_b.acquire("u:alice", Category.GENERAL)).allowed


async def test_concurrent_checks_never_overspend_a_bucket(db: Database) -> None:
    backend = PgRateLimitBackend(db, RateLimits(general=Rate(0.01, 10)))
    results = await asyncio.gather(
        *(backend.acquire("u:burst", Category.GENERAL) for _ in range(25))
    )
    assert sum(d.allowed for d in results) == 10


async def test_sweep_drops_idle_full_buckets(db: Database) -> None:
    backend = PgRateLimitBackend(db, RateLimits())
    await backend.acquire("u:idle", Category.GENERAL)
    async with db.engine.begin() as conn:
        await conn.execute(text("UPDATE rate_buckets SET updated_at = now() - interval '2 days'"))
    assert await backend.sweep() == 1


async def test_compare_and_sets_are_atomic(db: Database) -> None:
    hasher = PasswordHasher(ScryptParams(log2_n=10))
    users = UserService(SqlUserRepo(db), hasher)
    admin = await users.create("pgadmin", "a long enough password", Role.ADMIN)
    user = await users.create("pguser", "a long enough password", Role.TRADER)

    # Two uses of one refresh token at once: reuse, so the family must end revoked, also
    # when the loser revokes while the winner's successor is being stored.
    policy = RefreshTokenPolicy(SqlRefreshTokenRepo(db))
    for attempt in range(20):
        issued = await policy.issue(user.user_id)
        outcomes = await asyncio.gather(
            policy.rotate(issued.token), policy.rotate(issued.token), return_exceptions=True
        )
        assert sum(not isinstance(o, Exception) for o in outcomes) <= 1, (attempt, outcomes)
        revoked = not await SqlRefreshTokenRepo(db).family_active(issued.family_id)
        assert revoked, (attempt, outcomes)

    keys = ApiKeyService(SqlApiKeyRepo(db), default_ttl=None)
    created = await keys.create(user.user_id, Role.TRADER, "ci", [Permission.READ_STRATEGIES])
    rotations = await asyncio.gather(
        keys.rotate(created.record.key_id, timedelta(hours=1)),
        keys.rotate(created.record.key_id, timedelta(hours=1)),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, Exception) for r in rotations) == 1
    assert (await keys.verify(created.key)).key_id == created.record.key_id  # in its grace

    # The last admin cannot be demoted.
    with pytest.raises(Exception, match="no enabled admin"):
        await users.update(admin.user_id, {"role": Role.VIEWER})
    assert (await users.get(admin.user_id)).role is Role.ADMIN
    before = datetime.now(UTC) - timedelta(seconds=5)
    assert (await users.authenticate("PGUSER", "a long enough password")).last_login_at >= before


async def test_concurrent_demotions_never_leave_no_admin(db: Database) -> None:
    """Two admins demoting each other at once: one must be refused (issue 14). Without a
    lock both transactions count the other, still uncommitted, admin and both pass."""
    hasher = PasswordHasher(ScryptParams(log2_n=10))
    users = UserService(SqlUserRepo(db), hasher)

    async def hold_a_connection() -> None:
        async with db.engine.connect() as conn:
            await conn.execute(text("SELECT pg_sleep(0.05)"))

    for attempt in range(10):
        # Two pooled connections ready, so neither update waits for a connect and they overlap.
        await asyncio.gather(hold_a_connection(), hold_a_connection())
        a = await users.create(f"pga{attempt}", "a long enough password", Role.ADMIN)
        b = await users.create(f"pgb{attempt}", "a long enough password", Role.ADMIN)
        outcomes = await asyncio.gather(
            users.update(a.user_id, {"role": Role.VIEWER}),
            users.update(b.user_id, {"disabled": True}),
            return_exceptions=True,
        )
        assert sum(isinstance(o, Exception) for o in outcomes) == 1, (attempt, outcomes)
        admins = [
            u
            for u in (await users.get(a.user_id), await users.get(b.user_id))
            if u.role is Role.ADMIN and not u.disabled
        ]
        assert len(admins) == 1
        # Leave no admin standing for the next round, so the race starts from two again.
        async with db.engine.begin() as conn:
            await conn.execute(text("DELETE FROM users WHERE role = 'admin'"))
