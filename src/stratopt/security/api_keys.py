"""API keys for programs: ``sk_<prefix>_<secret>``, stored as a SHA-256 hash.

Format: ``sk_`` + 8 hex characters of public *prefix* + ``_`` + 40 base62 characters of
secret (~238 bits). The prefix identifies a key in listings, audit logs and redacted log
lines and is the lookup index, so verification fetches one row and compares one hash.
The ``sk_`` marker lets secret scanners and our log redaction recognise keys.

Why plain SHA-256 and not scrypt: slow KDFs exist to make guessing *low-entropy* secrets
(human passwords) expensive. A 238-bit random secret cannot be guessed whatever the hash
speed, so a slow KDF would add nothing against a stolen table while costing ~0.3 s and
128 MiB on every API call, which would turn the key check itself into a denial-of-service
lever. The hash is compared with `hmac.compare_digest`; the prefix lookup may leak timing,
but the prefix is not secret.

Rotation issues a new key and keeps the old one working for a grace period (its
`expires_at` becomes now + grace), so deployed clients can switch without downtime.
"""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import re
import secrets
import string
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from stratopt.security.clock import WallClock, utc_now
from stratopt.security.errors import AuthenticationError
from stratopt.security.roles import ROLE_PERMISSIONS, Permission, Role

API_KEY_PREFIX = "sk_"
PREFIX_LENGTH = 8
SECRET_LENGTH = 40
_BASE62 = string.ascii_letters + string.digits
_KEY_RE = re.compile(rf"^sk_([0-9a-f]{{{PREFIX_LENGTH}}})_([0-9A-Za-z]{{{SECRET_LENGTH}}})$")
DEFAULT_KEY_TTL = timedelta(days=90)
DEFAULT_ROTATION_GRACE = timedelta(hours=24)
_CREATE_ATTEMPTS = 4


@dataclass(frozen=True)
class ApiKeyRecord:
    key_id: str
    prefix: str
    user_id: str
    name: str
    key_hash: str
    scopes: frozenset[Permission]
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None
    rotated_to: str | None = None

    @property
    def display(self) -> str:
        """What listings show: enough to recognise the key, useless to an attacker."""
        return f"{API_KEY_PREFIX}{self.prefix}_…"

    def is_active(self, now: datetime) -> bool:
        return self.revoked_at is None and (self.expires_at is None or now < self.expires_at)


class ApiKeyConflictError(Exception):
    """The repo already holds a key with this prefix (32-bit prefixes can collide)."""


class ApiKeyRepo(Protocol):
    """Storage for API keys. The SQL implementation lives in `store/` (unique index on
    `prefix`, index on `user_id`)."""

    async def add(self, record: ApiKeyRecord) -> None:
        """Insert; raise `ApiKeyConflictError` if the prefix is taken."""
        ...

    async def get(self, key_id: str) -> ApiKeyRecord | None: ...

    async def get_by_prefix(self, prefix: str) -> ApiKeyRecord | None: ...

    async def list_for_user(self, user_id: str) -> list[ApiKeyRecord]: ...

    async def revoke(self, key_id: str, revoked_at: datetime) -> bool:
        """Set `revoked_at` if not already revoked; return whether this call did it."""
        ...

    async def mark_rotated(self, key_id: str, successor_id: str, expires_at: datetime) -> bool:
        """Atomically set `rotated_to` and `expires_at` if the key is neither rotated nor
        revoked; return whether this call did it (compare-and-set, so two concurrent
        rotations cannot both succeed)."""
        ...

    async def touch(self, key_id: str, used_at: datetime) -> None:
        """Record `last_used_at` (best effort; called at most once a minute per key)."""
        ...


class InMemoryApiKeyRepo:
    """Dict-backed `ApiKeyRepo` for tests and the single-process embedded mode."""

    def __init__(self) -> None:
        self.records: dict[str, ApiKeyRecord] = {}

    async def add(self, record: ApiKeyRecord) -> None:
        if any(r.prefix == record.prefix for r in self.records.values()):
            raise ApiKeyConflictError(record.prefix)
        self.records[record.key_id] = record

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        return self.records.get(key_id)

    async def get_by_prefix(self, prefix: str) -> ApiKeyRecord | None:
        return next((r for r in self.records.values() if r.prefix == prefix), None)

    async def list_for_user(self, user_id: str) -> list[ApiKeyRecord]:
        return sorted(
            (r for r in self.records.values() if r.user_id == user_id),
            key=lambda r: r.created_at,
        )

    async def revoke(self, key_id: str, revoked_at: datetime) -> bool:
        record = self.records.get(key_id)
        if record is None or record.revoked_at is not None:
            return False
        self.records[key_id] = dataclasses.replace(record, revoked_at=revoked_at)
        return True

    async def mark_rotated(self, key_id: str, successor_id: str, expires_at: datetime) -> bool:
        record = self.records.get(key_id)
        if record is None or record.rotated_to is not None or record.revoked_at is not None:
            return False
        self.records[key_id] = dataclasses.replace(
            record, rotated_to=successor_id, expires_at=expires_at
        )
        return True

    async def touch(self, key_id: str, used_at: datetime) -> None:
        record = self.records.get(key_id)
        if record is not None:
            self.records[key_id] = dataclasses.replace(record, last_used_at=used_at)


@dataclass(frozen=True)
class CreatedApiKey:
    """The plaintext `key` is shown to the user exactly once and never stored."""

    key: str = field(repr=False)
    record: ApiKeyRecord


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def generate_api_key() -> tuple[str, str]:
    """Return (full key, prefix)."""
    prefix = secrets.token_hex(PREFIX_LENGTH // 2)
    secret = "".join(secrets.choice(_BASE62) for _ in range(SECRET_LENGTH))
    return f"{API_KEY_PREFIX}{prefix}_{secret}", prefix


def resolve_scopes(role: Role, scopes: Iterable[Permission] | None) -> frozenset[Permission]:
    """Scopes default to everything the role may do and may only narrow it.

    Scopes are checked against the role here for a clear error at creation time; they are
    intersected with the role again on every call (`Principal.can`), so demoting a user
    also shrinks what their existing keys can do.
    """
    allowed = ROLE_PERMISSIONS[role]
    if scopes is None:
        return allowed
    chosen = frozenset(Permission(s) for s in scopes)
    if not chosen:
        raise ValueError("an API key needs at least one scope")
    excess = chosen - allowed
    if excess:
        names = ", ".join(sorted(p.value for p in excess))
        raise ValueError(f"role {role.value} cannot grant: {names}")
    return chosen


class ApiKeyService:
    """Create, verify, list, revoke and rotate API keys over an `ApiKeyRepo`.

    `default_ttl` applies when `create` gets no explicit expiry; set it to None to allow
    keys that never expire (not recommended). Ownership checks ("may this caller revoke
    that key?") belong to the servicer, which knows the caller.
    """

    def __init__(
        self,
        repo: ApiKeyRepo,
        *,
        clock: WallClock = utc_now,
        default_ttl: timedelta | None = DEFAULT_KEY_TTL,
        touch_interval: timedelta = timedelta(minutes=1),
    ) -> None:
        self._repo = repo
        self._clock = clock
        self._default_ttl = default_ttl
        self._touch_interval = touch_interval

    async def create(
        self,
        user_id: str,
        role: Role,
        name: str,
        scopes: Iterable[Permission] | None = None,
        expires_at: datetime | None = None,
    ) -> CreatedApiKey:
        now = self._clock()
        if expires_at is None and self._default_ttl is not None:
            expires_at = now + self._default_ttl
        if expires_at is not None and expires_at <= now:
            raise ValueError("expires_at must be in the future")
        return await self._insert(
            user_id=user_id,
            name=name,
            scopes=resolve_scopes(role, scopes),
            created_at=now,
            expires_at=expires_at,
        )

    async def verify(self, presented: str) -> ApiKeyRecord:
        """Return the key's record if `presented` is a live key; else AuthenticationError."""
        match = _KEY_RE.fullmatch(presented) if isinstance(presented, str) else None
        if match is None:
            raise AuthenticationError("malformed api key")
        record = await self._repo.get_by_prefix(match[1])
        if record is None:
            raise AuthenticationError("unknown api key")
        if not hmac.compare_digest(hash_api_key(presented), record.key_hash):
            raise AuthenticationError("api key mismatch")
        now = self._clock()
        if record.revoked_at is not None:
            raise AuthenticationError("api key revoked")
        if record.expires_at is not None and now >= record.expires_at:
            raise AuthenticationError("api key expired")
        if record.last_used_at is None or now - record.last_used_at >= self._touch_interval:
            await self._repo.touch(record.key_id, now)
        return record

    async def get(self, key_id: str) -> ApiKeyRecord | None:
        return await self._repo.get(key_id)

    async def list_for_user(self, user_id: str) -> list[ApiKeyRecord]:
        return await self._repo.list_for_user(user_id)

    async def revoke(self, key_id: str) -> bool:
        return await self._repo.revoke(key_id, self._clock())

    async def rotate(self, key_id: str, grace: timedelta = DEFAULT_ROTATION_GRACE) -> CreatedApiKey:
        """Issue a successor with the same owner, name and scopes; the old key keeps
        working until now + `grace` (never longer than it would have anyway). The successor
        gets the same lifetime the old key was created with."""
        if grace < timedelta(0):
            raise ValueError("grace must be non-negative")
        now = self._clock()
        old = await self._repo.get(key_id)
        if old is None:
            raise LookupError("no such api key")
        if not old.is_active(now) or old.rotated_to is not None:
            raise ValueError("only an active, not yet rotated key can be rotated")
        lifetime = None if old.expires_at is None else old.expires_at - old.created_at
        created = await self._insert(
            user_id=old.user_id,
            name=old.name,
            scopes=old.scopes,
            created_at=now,
            expires_at=None if lifetime is None else now + lifetime,
        )
        old_expiry = now + grace
        if old.expires_at is not None:
            old_expiry = min(old_expiry, old.expires_at)
        if not await self._repo.mark_rotated(key_id, created.record.key_id, old_expiry):
            await self._repo.revoke(created.record.key_id, now)
            raise ValueError("api key was rotated or revoked concurrently")
        return created

    async def _insert(
        self,
        *,
        user_id: str,
        name: str,
        scopes: frozenset[Permission],
        created_at: datetime,
        expires_at: datetime | None,
    ) -> CreatedApiKey:
        for _ in range(_CREATE_ATTEMPTS):
            key, prefix = generate_api_key()
            record = ApiKeyRecord(
                key_id=uuid.uuid4().hex,
                prefix=prefix,
                user_id=user_id,
                name=name,
                key_hash=hash_api_key(key),
                scopes=scopes,
                created_at=created_at,
                expires_at=expires_at,
            )
            try:
                await self._repo.add(record)
            except ApiKeyConflictError:
                continue
            return CreatedApiKey(key, record)
        raise RuntimeError("could not allocate a unique api key prefix")
