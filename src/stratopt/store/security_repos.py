"""SQL implementations of the security core's storage Protocols, and the shared rate limiter.

Each method is one short transaction. The compare-and-set operations (`exchange`,
`mark_rotated`, `revoke`) are conditional UPDATEs checked by rowcount, so they stay atomic
on SQLite and PostgreSQL alike without explicit locks; `exchange` inserts the successor in
the same transaction, so a concurrent loser's UPDATE waits on the row lock until the
successor is committed, and the family revocation that follows sees it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import CursorResult, delete, func, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from stratopt.errors import InvalidArgument
from stratopt.security.api_keys import ApiKeyConflictError, ApiKeyRecord
from stratopt.security.audit_trail import AuditQuery, AuditRecord
from stratopt.security.ratelimit import Category, Decision, RateLimits
from stratopt.security.refresh_tokens import RefreshTokenRecord
from stratopt.security.roles import Permission, Role
from stratopt.security.users import LastAdminError, UserExistsError, UserRecord
from stratopt.store import models
from stratopt.store.db import Database
from stratopt.store.paging import (
    Cursor,
    Keyset,
    after_cursor,
    decode_token,
    encode_token,
    query_hash,
)


def _rowcount(result: Any) -> int:
    return int(result.rowcount) if isinstance(result, CursorResult) else 0


# --- users ------------------------------------------------------------------------------------


def _user_record(row: models.User) -> UserRecord:
    return UserRecord(
        user_id=row.id,
        username=row.username,
        role=Role(row.role),
        password_hash=row.password_hash,
        display_name=row.display_name,
        email=row.email,
        disabled=row.disabled,
        created_at=row.created_at,
        updated_at=row.updated_at,
        last_login_at=row.last_login_at,
    )


class SqlUserRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, user_id: str) -> UserRecord | None:
        row = await self.db.get(models.User, user_id)
        return _user_record(row) if row is not None else None

    async def get_by_username(self, username: str) -> UserRecord | None:
        async with self.db.session() as s:
            row = (
                await s.execute(
                    # lower(): rows created before names were normalized (CLI, env) still match
                    select(models.User).where(func.lower(models.User.username) == username.lower())
                )
            ).scalar_one_or_none()
            return _user_record(row) if row is not None else None

    async def add(self, record: UserRecord) -> None:
        row = models.User(
            id=record.user_id,
            username=record.username,
            display_name=record.display_name,
            email=record.email,
            role=record.role.value,
            password_hash=record.password_hash,
            disabled=record.disabled,
            created_at=record.created_at,
            updated_at=record.updated_at,
        )
        try:
            async with self.db.transaction() as s:
                s.add(row)
        except IntegrityError:
            raise UserExistsError(record.username) from None

    async def update(self, user_id: str, changes: Mapping[str, Any]) -> UserRecord | None:
        values = {k: (v.value if isinstance(v, Role) else v) for k, v in changes.items()}
        async with self.db.transaction() as s:
            if "role" in values or "disabled" in values:
                await _lock_admin_changes(s)
            row = await s.get(models.User, user_id)
            if row is None:
                return None
            was_admin = _user_record(row).is_active_admin
            for name, value in values.items():
                setattr(row, name, value)
            await s.flush()
            if was_admin and not _user_record(row).is_active_admin:
                await self._check_admins(s)
            return _user_record(row)

    async def delete(self, user_id: str) -> bool:
        async with self.db.transaction() as s:
            await _lock_admin_changes(s)
            row = await s.get(models.User, user_id)
            if row is None:
                return False
            was_admin = _user_record(row).is_active_admin
            await s.execute(delete(models.User).where(models.User.id == user_id))
            if was_admin:
                await self._check_admins(s)
            return True

    async def list_page(
        self, role: Role | None, page_size: int, page_token: str
    ) -> tuple[list[UserRecord], str]:
        U = models.User
        qhash = query_hash(users=True, role=role.value if role else "")
        cursor = decode_token(page_token, qhash)
        stmt = select(U)
        if role is not None:
            stmt = stmt.where(U.role == role.value)
        stmt = after_cursor(stmt, U.username, U.id, cursor, desc=False)
        async with self.db.session() as s:
            rows = list((await s.execute(stmt.limit(page_size + 1))).scalars())
        token = ""
        if len(rows) > page_size:
            rows = rows[:page_size]
            token = encode_token(Cursor(rows[-1].username, rows[-1].id), qhash)
        return [_user_record(r) for r in rows], token

    @staticmethod
    async def _check_admins(s: Any) -> None:
        """Inside the changing transaction, so the change rolls back when it would leave no
        enabled admin. Exact on both databases: SQLite runs one write transaction at a time,
        and on PostgreSQL every change that may demote an admin first takes one advisory
        lock (`_lock_admin_changes`), so this count sees the other changes committed."""
        U = models.User
        admins = (
            await s.execute(
                select(func.count())
                .select_from(U)
                .where(U.role == Role.ADMIN.value, U.disabled.is_(False))
            )
        ).scalar_one()
        if admins == 0:
            raise LastAdminError


_ADMIN_CHANGES_LOCK = 0x5354524154_0001
"""pg_advisory_xact_lock key held by every transaction that may demote or delete an admin."""


async def _lock_admin_changes(s: Any) -> None:
    """Serializes changes that may remove an admin, on PostgreSQL (where two demotions of
    the last two admins would otherwise each count the other as still an admin). Taken
    before the user row is read, and released at commit; SQLite needs nothing (BEGIN
    IMMEDIATE already runs its writers one at a time)."""
    if s.get_bind().dialect.name == "postgresql":
        await s.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _ADMIN_CHANGES_LOCK})


# --- refresh tokens ---------------------------------------------------------------------------


def _refresh_record(row: models.RefreshToken) -> RefreshTokenRecord:
    return RefreshTokenRecord(
        token_hash=row.token_hash,
        family_id=row.family_id,
        user_id=row.user_id,
        issued_at=row.issued_at,
        expires_at=row.expires_at,
        family_started_at=row.family_started_at,
        used_at=row.used_at,
        revoked_at=row.revoked_at,
    )


def _refresh_row(record: RefreshTokenRecord) -> models.RefreshToken:
    return models.RefreshToken(
        token_hash=record.token_hash,
        family_id=record.family_id,
        user_id=record.user_id,
        issued_at=record.issued_at,
        expires_at=record.expires_at,
        family_started_at=record.family_started_at,
        used_at=record.used_at,
        revoked_at=record.revoked_at,
    )


class SqlRefreshTokenRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, record: RefreshTokenRecord) -> None:
        async with self.db.transaction() as s:
            s.add(_refresh_row(record))

    async def get(self, token_hash: str) -> RefreshTokenRecord | None:
        async with self.db.session() as s:
            row = await s.get(models.RefreshToken, token_hash)
            return _refresh_record(row) if row is not None else None

    async def exchange(
        self, token_hash: str, used_at: datetime, successor: RefreshTokenRecord
    ) -> bool:
        R = models.RefreshToken
        stmt = (
            update(R)
            .where(R.token_hash == token_hash, R.used_at.is_(None), R.revoked_at.is_(None))
            .values(used_at=used_at)
        )
        async with self.db.transaction() as s:
            if _rowcount(await s.execute(stmt)) != 1:
                return False
            s.add(_refresh_row(successor))
            return True

    async def revoke_family(self, family_id: str, revoked_at: datetime) -> int:
        R = models.RefreshToken
        return await self._revoke([R.family_id == family_id], revoked_at)

    async def revoke_user(
        self, user_id: str, revoked_at: datetime, keep_family: str | None = None
    ) -> int:
        R = models.RefreshToken
        where: list[Any] = [R.user_id == user_id]
        if keep_family is not None:
            where.append(R.family_id != keep_family)
        return await self._revoke(where, revoked_at)

    async def family_active(self, family_id: str) -> bool:
        R = models.RefreshToken
        stmt = select(R.token_hash).where(R.family_id == family_id, R.revoked_at.is_(None))
        # Behind the auth cache of every JWT call (when its entry expires): one step.
        return await self.db.read(lambda c: c.execute(stmt.limit(1)).first() is not None)

    async def delete_expired(self, before: datetime) -> int:
        R = models.RefreshToken
        async with self.db.transaction() as s:
            return _rowcount(await s.execute(delete(R).where(R.expires_at < before)))

    async def _revoke(self, where: Sequence[Any], revoked_at: datetime) -> int:
        R = models.RefreshToken
        stmt = update(R).where(*where, R.revoked_at.is_(None)).values(revoked_at=revoked_at)
        async with self.db.transaction() as s:
            return _rowcount(await s.execute(stmt))


# --- API keys ---------------------------------------------------------------------------------


def _key_record(row: models.ApiKey) -> ApiKeyRecord:
    return ApiKeyRecord(
        key_id=row.id,
        prefix=row.prefix,
        user_id=row.owner_id,
        name=row.display_name,
        key_hash=row.key_hash,
        scopes=frozenset(Permission(p) for p in row.scopes),
        created_at=row.created_at,
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
        last_used_at=row.last_used_at,
        rotated_to=row.rotated_to,
    )


class SqlApiKeyRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, record: ApiKeyRecord) -> None:
        row = models.ApiKey(
            id=record.key_id,
            owner_id=record.user_id,
            display_name=record.name,
            prefix=record.prefix,
            key_hash=record.key_hash,
            scopes=sorted(p.value for p in record.scopes),
            created_at=record.created_at,
            expires_at=record.expires_at,
            revoked_at=record.revoked_at,
            last_used_at=record.last_used_at,
            rotated_to=record.rotated_to,
        )
        try:
            async with self.db.transaction() as s:
                s.add(row)
        except IntegrityError:
            raise ApiKeyConflictError(record.prefix) from None

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        row = await self.db.get(models.ApiKey, key_id)
        return _key_record(row) if row is not None else None

    async def get_by_prefix(self, prefix: str) -> ApiKeyRecord | None:
        # Every call made with an API key looks its key up here: one step, on the loop.
        row = await self.db.first(select(models.ApiKey).where(models.ApiKey.prefix == prefix))
        return _key_record(row) if row is not None else None

    async def list_for_user(self, user_id: str) -> list[ApiKeyRecord]:
        K = models.ApiKey
        stmt = select(K).where(K.owner_id == user_id).order_by(K.created_at, K.id)
        async with self.db.session() as s:
            return [_key_record(r) for r in (await s.execute(stmt)).scalars()]

    async def list_page(
        self, user_id: str, requested: int, page_token: str
    ) -> tuple[list[ApiKeyRecord], str]:
        """One page of the user's keys, oldest first (revoked and expired ones included)."""
        K = models.ApiKey
        page = Keyset(
            K.created_at, K.id, requested, page_token, query_hash(api_keys=user_id), desc=False
        )
        rows, token = await page.scan(self.db, select(K).where(K.owner_id == user_id))
        return [_key_record(r) for r in rows], token

    async def count_active(self, user_id: str, now: datetime) -> int:
        """Keys of the user neither revoked nor expired at `now` (`ApiKeyRecord.is_active`)."""
        K = models.ApiKey
        stmt = (
            select(func.count())
            .select_from(K)
            .where(
                K.owner_id == user_id,
                K.revoked_at.is_(None),
                or_(K.expires_at.is_(None), K.expires_at > now),
            )
        )
        async with self.db.session() as s:
            return int((await s.execute(stmt)).scalar_one())

    async def revoke(self, key_id: str, revoked_at: datetime) -> bool:
        K = models.ApiKey
        stmt = update(K).where(K.id == key_id, K.revoked_at.is_(None)).values(revoked_at=revoked_at)
        async with self.db.transaction() as s:
            return _rowcount(await s.execute(stmt)) == 1

    async def mark_rotated(self, key_id: str, successor_id: str, expires_at: datetime) -> bool:
        K = models.ApiKey
        stmt = (
            update(K)
            .where(K.id == key_id, K.rotated_to.is_(None), K.revoked_at.is_(None))
            .values(rotated_to=successor_id, expires_at=expires_at)
        )
        async with self.db.transaction() as s:
            return _rowcount(await s.execute(stmt)) == 1

    async def touch(self, key_id: str, used_at: datetime) -> None:
        K = models.ApiKey
        async with self.db.transaction() as s:
            await s.execute(update(K).where(K.id == key_id).values(last_used_at=used_at))


# --- audit ------------------------------------------------------------------------------------


def _audit_record(row: models.AuditEvent) -> AuditRecord:
    return AuditRecord(
        event_id=row.id,
        time=row.time,
        actor_id=row.actor_id,
        actor_username=row.actor_username,
        api_key_prefix=row.api_key_prefix,
        method=row.method,
        resource_type=row.resource_type,
        resource_id=row.resource_id,
        outcome=row.outcome,
        peer=row.peer,
        detail=row.detail,
    )


class SqlAuditRepo:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def add(self, record: AuditRecord) -> None:
        async with self.db.transaction() as s:
            s.add(
                models.AuditEvent(
                    id=record.event_id,
                    time=record.time,
                    actor_id=record.actor_id[:32],
                    actor_username=record.actor_username[:64],
                    api_key_prefix=record.api_key_prefix[:32],
                    method=record.method[:200],
                    resource_type=record.resource_type[:64],
                    resource_id=record.resource_id[:64],
                    outcome=record.outcome[:32],
                    peer=record.peer[:128],
                    detail=record.detail,
                )
            )

    async def list(
        self, query: AuditQuery, page_size: int, page_token: str
    ) -> tuple[list[AuditRecord], str]:
        A = models.AuditEvent
        qhash = query_hash(
            audit=True,
            actor=query.actor_id,
            rtype=query.resource_type,
            rid=query.resource_id,
            start=query.start.isoformat() if query.start else "",
            end=query.end.isoformat() if query.end else "",
        )
        cursor = decode_token(page_token, qhash)
        if cursor is not None:
            try:
                cursor = Cursor(datetime.fromisoformat(str(cursor.key)), cursor.id)
            except ValueError:
                raise InvalidArgument.field("page_token", "malformed page token") from None
        stmt = select(A)
        if query.actor_id:
            stmt = stmt.where(A.actor_id == query.actor_id)
        if query.resource_type:
            stmt = stmt.where(A.resource_type == query.resource_type)
        if query.resource_id:
            stmt = stmt.where(A.resource_id == query.resource_id)
        if query.start is not None:
            stmt = stmt.where(A.time >= query.start)
        if query.end is not None:
            stmt = stmt.where(A.time < query.end)
        stmt = after_cursor(stmt, A.time, A.id, cursor, desc=True)
        async with self.db.session() as s:
            rows = list((await s.execute(stmt.limit(page_size + 1))).scalars())
        token = ""
        if len(rows) > page_size:
            rows = rows[:page_size]
            token = encode_token(Cursor(rows[-1].time.isoformat(), rows[-1].id), qhash)
        return [_audit_record(r) for r in rows], token


# --- shared rate limits (PostgreSQL) ---------------------------------------------------------

# Parameters are cast explicitly: asyncpg sends them untyped, and "unknown - unknown" has no
# operator. EXTRACT yields numeric on PostgreSQL 14+, hence the float8 cast on elapsed time.
_REFILLED = (
    "LEAST(CAST(:burst AS float8), rate_buckets.tokens + CAST(:rate AS float8) * "
    "CAST(EXTRACT(EPOCH FROM clock_timestamp() - rate_buckets.updated_at) AS float8))"
)
_TAKE = text(
    f"""
    INSERT INTO rate_buckets (key, tokens, updated_at)
    VALUES (:key, CAST(:burst AS float8) - CAST(:cost AS float8), clock_timestamp())
    ON CONFLICT (key) DO UPDATE SET
        tokens = {_REFILLED} - CAST(:cost AS float8),
        updated_at = clock_timestamp()
    WHERE {_REFILLED} >= CAST(:cost AS float8)
    RETURNING tokens
    """
)
_PEEK = text(f"SELECT {_REFILLED} FROM rate_buckets WHERE key = :key")
_SWEEP = text(
    "DELETE FROM rate_buckets "
    "WHERE updated_at < clock_timestamp() - make_interval(secs => CAST(:age AS float8))"
)
_EPSILON = 1e-9


class PgRateLimitBackend:
    """Token buckets in PostgreSQL so every replica draws from the same budget.

    One upsert per check (the algorithm is explained in `security/ratelimit.py`); the row
    lock it takes serializes concurrent checks of one bucket, and no lock outlives the
    statement. Costs one round trip per call, which is why it is used only when replicas
    share a PostgreSQL database anyway.
    """

    def __init__(self, db: Database, limits: RateLimits | None = None) -> None:
        if db.backend != "postgresql":
            raise ValueError("PgRateLimitBackend needs a PostgreSQL database")
        self.db = db
        self.limits = limits or RateLimits()

    async def acquire(self, principal: str, category: Category, cost: float = 1) -> Decision:
        category = Category(category)
        rate = self.limits.for_category(category)
        if not 0 < cost <= rate.burst:
            raise ValueError(f"cost must be in (0, {rate.burst}] for this category")
        params = {
            "key": f"{category.value}:{principal}"[:200],
            "burst": float(rate.burst),
            "rate": rate.per_second,
            "cost": float(cost),
        }
        async with self.db.engine.begin() as conn:
            taken = (await conn.execute(_TAKE, params)).first()
            if taken is not None:
                tokens, allowed = max(0.0, float(taken[0])), True
            else:
                peek = (await conn.execute(_PEEK, params)).first()
                tokens, allowed = (float(peek[0]) if peek else float(rate.burst)), False
        return Decision(
            allowed=allowed,
            limit=rate.burst,
            remaining=math.floor(tokens + _EPSILON),
            reset_seconds=(rate.burst - tokens) / rate.per_second,
            retry_after_seconds=0.0 if allowed else (cost - tokens) / rate.per_second,
        )

    async def sweep(self) -> int:
        """Delete buckets idle long enough to have refilled completely (they hold no state)."""
        slowest = min(
            self.limits.for_category(c).per_second / self.limits.for_category(c).burst
            for c in Category
        )
        async with self.db.engine.begin() as conn:
            return _rowcount(await conn.execute(_SWEEP, {"age": 1.0 / slowest}))
