"""Refresh tokens: opaque, stored hashed, rotated on every use, with reuse detection.

A refresh token is a random string (no JWT: nothing in it needs to be read by anyone but this
server). Only its SHA-256 is stored, so a leaked database does not yield usable tokens; a
slow KDF is unnecessary because the token has 256 bits of entropy (see `api_keys` for the
same argument).

Every login starts a *family*. Using a refresh token marks it used and issues its successor
in the same family. If a token that was already used is presented again, two parties hold
tokens of this family (the user and a thief, order unknown), so the whole family is revoked
and both must log in again (OAuth 2.0 Security BCP, "refresh token rotation"). A concurrent
double-use is treated the same way, which is why `RefreshTokenRepo.exchange` must be an
atomic compare-and-set that stores the successor in the same transaction: otherwise the
loser of a race could revoke the family before the winner's successor exists, and the
successor would outlive the revocation.

Each token lives `ttl` (30 days, sliding with use), but never beyond `max_session_age` after
the login that started its family, so a stolen-but-quiet session cannot live forever.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import NoReturn, Protocol

from stratopt.security.clock import WallClock, utc_now
from stratopt.security.errors import AuthenticationError

REFRESH_TOKEN_PREFIX = "rt_"
_TOKEN_RE = re.compile(r"^rt_[A-Za-z0-9_-]{43}$")
DEFAULT_REFRESH_TTL = timedelta(days=30)
DEFAULT_MAX_SESSION_AGE = timedelta(days=90)


@dataclass(frozen=True)
class RefreshTokenRecord:
    """One stored refresh token (never the token itself, only its hash)."""

    token_hash: str
    family_id: str
    user_id: str
    issued_at: datetime
    expires_at: datetime
    family_started_at: datetime
    used_at: datetime | None = None
    revoked_at: datetime | None = None


class RefreshTokenRepo(Protocol):
    """Storage for refresh tokens. The SQL implementation lives in `store/`."""

    async def add(self, record: RefreshTokenRecord) -> None: ...

    async def get(self, token_hash: str) -> RefreshTokenRecord | None: ...

    async def exchange(
        self, token_hash: str, used_at: datetime, successor: RefreshTokenRecord
    ) -> bool:
        """Mark the token used and add its successor, only if the token is neither used nor
        revoked; return whether this call did it. Both in one transaction, e.g. ``UPDATE
        refresh_tokens SET used_at = :at WHERE token_hash = :h AND used_at IS NULL AND
        revoked_at IS NULL``, rowcount == 1, then the INSERT, then commit.
        """
        ...

    async def revoke_family(self, family_id: str, revoked_at: datetime) -> int:
        """Revoke every not-yet-revoked token of the family; return how many."""
        ...

    async def revoke_user(
        self, user_id: str, revoked_at: datetime, keep_family: str | None = None
    ) -> int:
        """Revoke every not-yet-revoked token of the user (password change, "log out
        everywhere", account disabled), except those of `keep_family` (the session that
        asked for it); return how many."""
        ...

    async def family_active(self, family_id: str) -> bool:
        """Whether any token of the family is still unrevoked. Access tokens carry their
        family as `sid`, so this is how logging out also ends the session's access tokens
        instead of leaving them valid for the rest of their 15 minutes."""
        ...

    async def delete_expired(self, before: datetime) -> int:
        """Housekeeping: drop tokens whose `expires_at` is before `before`."""
        ...


class InMemoryRefreshTokenRepo:
    """Dict-backed `RefreshTokenRepo` for tests and the single-process embedded mode."""

    def __init__(self) -> None:
        self.records: dict[str, RefreshTokenRecord] = {}

    async def add(self, record: RefreshTokenRecord) -> None:
        if record.token_hash in self.records:
            raise ValueError("duplicate refresh token hash")
        self.records[record.token_hash] = record

    async def get(self, token_hash: str) -> RefreshTokenRecord | None:
        return self.records.get(token_hash)

    async def exchange(
        self, token_hash: str, used_at: datetime, successor: RefreshTokenRecord
    ) -> bool:
        record = self.records.get(token_hash)
        if record is None or record.used_at is not None or record.revoked_at is not None:
            return False
        await self.add(successor)
        self.records[token_hash] = dataclasses.replace(record, used_at=used_at)
        return True

    async def revoke_family(self, family_id: str, revoked_at: datetime) -> int:
        return self._revoke_where(lambda r: r.family_id == family_id, revoked_at)

    async def revoke_user(
        self, user_id: str, revoked_at: datetime, keep_family: str | None = None
    ) -> int:
        return self._revoke_where(
            lambda r: r.user_id == user_id and r.family_id != keep_family, revoked_at
        )

    async def family_active(self, family_id: str) -> bool:
        return any(r.family_id == family_id and r.revoked_at is None for r in self.records.values())

    async def delete_expired(self, before: datetime) -> int:
        stale = [h for h, r in self.records.items() if r.expires_at < before]
        for token_hash in stale:
            del self.records[token_hash]
        return len(stale)

    def _revoke_where(
        self, match: Callable[[RefreshTokenRecord], bool], revoked_at: datetime
    ) -> int:
        hits = [h for h, r in self.records.items() if match(r) and r.revoked_at is None]
        for token_hash in hits:
            self.records[token_hash] = dataclasses.replace(
                self.records[token_hash], revoked_at=revoked_at
            )
        return len(hits)


@dataclass(frozen=True)
class IssuedRefreshToken:
    """A freshly issued token: hand `token` to the client once, keep nothing but the hash."""

    token: str = field(repr=False)
    family_id: str
    user_id: str
    expires_at: datetime


class RefreshTokenReuseError(AuthenticationError):
    """A used token came back: its family has been revoked. Worth a security audit entry."""

    def __init__(self, family_id: str, user_id: str) -> None:
        super().__init__("refresh token reuse; family revoked")
        self.family_id = family_id
        self.user_id = user_id


def hash_refresh_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


class RefreshTokenPolicy:
    """Issue, rotate and revoke refresh tokens over a `RefreshTokenRepo`.

    `rotate` returns only the user and family: the caller re-reads the user (role changes,
    disabled accounts) before minting the next access token with `session_id=family_id`.
    """

    def __init__(
        self,
        repo: RefreshTokenRepo,
        *,
        ttl: timedelta = DEFAULT_REFRESH_TTL,
        max_session_age: timedelta = DEFAULT_MAX_SESSION_AGE,
        clock: WallClock = utc_now,
    ) -> None:
        if ttl <= timedelta(0) or max_session_age < ttl:
            raise ValueError("ttl must be positive and max_session_age >= ttl")
        self._repo = repo
        self._ttl = ttl
        self._max_session_age = max_session_age
        self._clock = clock

    async def issue(self, user_id: str) -> IssuedRefreshToken:
        """Start a new family (a login)."""
        now = self._clock()
        token, record = self._successor(user_id, secrets.token_urlsafe(16), started=now, now=now)
        await self._repo.add(record)
        return IssuedRefreshToken(token, record.family_id, user_id, record.expires_at)

    async def rotate(self, token: str) -> IssuedRefreshToken:
        """Exchange a valid token for its successor; any failure is AuthenticationError."""
        token_hash = self._hash_checked(token)
        record = await self._repo.get(token_hash)
        now = self._clock()
        if record is None:
            raise AuthenticationError("unknown refresh token")
        if record.revoked_at is not None:
            raise AuthenticationError("refresh token revoked")
        if record.used_at is not None:
            await self._revoke_for_reuse(record, now)
        if now >= record.expires_at:
            raise AuthenticationError("refresh token expired")
        token, successor = self._successor(
            record.user_id, record.family_id, started=record.family_started_at, now=now
        )
        if not await self._repo.exchange(token_hash, now, successor):
            # Lost a race with another use of the same token: that is reuse too.
            await self._revoke_for_reuse(record, now)
        return IssuedRefreshToken(token, record.family_id, record.user_id, successor.expires_at)

    async def revoke(self, token: str) -> RefreshTokenRecord | None:
        """Log out: revoke the token's whole family and return the token's record (None
        for unknown tokens). Unknown tokens are ignored so logout is idempotent and reveals
        nothing to the client."""
        try:
            token_hash = self._hash_checked(token)
        except AuthenticationError:
            return None
        record = await self._repo.get(token_hash)
        if record is not None:
            await self._repo.revoke_family(record.family_id, self._clock())
        return record

    async def revoke_family(self, family_id: str) -> int:
        return await self._repo.revoke_family(family_id, self._clock())

    async def revoke_all_for_user(self, user_id: str, keep_family: str | None = None) -> int:
        return await self._repo.revoke_user(user_id, self._clock(), keep_family)

    async def session_active(self, family_id: str) -> bool:
        return await self._repo.family_active(family_id)

    def _successor(
        self, user_id: str, family_id: str, *, started: datetime, now: datetime
    ) -> tuple[str, RefreshTokenRecord]:
        """A new token of the family and the record to store for it."""
        expires_at = min(now + self._ttl, started + self._max_session_age)
        if expires_at <= now:
            raise AuthenticationError("session exceeded max_session_age")
        token = REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(32)
        record = RefreshTokenRecord(
            token_hash=hash_refresh_token(token),
            family_id=family_id,
            user_id=user_id,
            issued_at=now,
            expires_at=expires_at,
            family_started_at=started,
        )
        return token, record

    async def _revoke_for_reuse(self, record: RefreshTokenRecord, now: datetime) -> NoReturn:
        await self._repo.revoke_family(record.family_id, now)
        raise RefreshTokenReuseError(record.family_id, record.user_id)

    @staticmethod
    def _hash_checked(token: str) -> str:
        if not isinstance(token, str) or _TOKEN_RE.fullmatch(token) is None:
            raise AuthenticationError("malformed refresh token")
        return hash_refresh_token(token)
