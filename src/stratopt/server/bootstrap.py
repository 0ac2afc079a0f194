"""First-start setup: the JWT signing key and the first users.

Production never gets a default password or a generated secret: without
STRATOPT_JWT_SECRET (or key files) and an admin from STRATOPT_ADMIN_USER/PASSWORD or
`stratopt user create`, the server refuses to start. Development mode (`--dev`) generates a
secret kept under the data folder and seeds documented demo users.
"""

from __future__ import annotations

import logging
import os
import secrets
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import func, select

from stratopt.security.passwords import (
    DEFAULT_PARAMS,
    ScryptParams,
    check_password_policy,
    hash_password,
)
from stratopt.security.roles import Role
from stratopt.security.tokens import TokenConfig
from stratopt.security.users import normalize_username, username_problems
from stratopt.server.settings import Settings
from stratopt.store import models
from stratopt.store.db import Database

log = logging.getLogger("stratopt.server.bootstrap")

DEMO_USERS: tuple[tuple[str, Role, str], ...] = (
    ("admin", Role.ADMIN, "blue-harbor-lantern-1"),
    ("trader", Role.TRADER, "green-meadow-compass-2"),
    ("analyst", Role.ANALYST, "amber-river-journal-3"),
    ("viewer", Role.VIEWER, "silver-canyon-window-4"),
)
"""Seeded only in development mode; documented in the README."""


class BootstrapError(RuntimeError):
    pass


def token_config(s: Settings) -> TokenConfig:
    try:
        config = _token_config(s)
        return replace(config, access_ttl=_ttl(s), leeway=min(timedelta(seconds=10), _ttl(s) / 4))
    except (OSError, ValueError) as e:
        raise BootstrapError(f"JWT keys: {e}") from None


def _ttl(s: Settings) -> timedelta:
    """STRATOPT_ACCESS_TOKEN_SECONDS. The clock-skew leeway shrinks with a short lifetime
    (a quarter of it, at most the default 10 s) so an expired token is refused soon after."""
    if s.access_token_seconds < 1:
        raise ValueError("STRATOPT_ACCESS_TOKEN_SECONDS must be at least 1")
    return timedelta(seconds=s.access_token_seconds)


def _token_config(s: Settings) -> TokenConfig:
    until = _rotation_end(s.jwt_previous_keys_until)
    if s.jwt_algorithm in ("RS256", "ES256"):
        if not s.jwt_private_key_file and not s.jwt_public_key_file:
            raise BootstrapError(f"{s.jwt_algorithm} needs STRATOPT_JWT_PRIVATE_KEY_FILE")
        return TokenConfig.from_files(
            s.jwt_algorithm,  # type: ignore[arg-type]
            private_key_file=s.jwt_private_key_file or None,
            public_key_file=s.jwt_public_key_file or None,
            previous_public_keys_pem=tuple(
                Path(f).read_bytes() for f in _split(s.jwt_previous_public_key_files)
            ),
            previous_keys_until=until,
        )
    previous = tuple(p.encode() for p in _split(s.jwt_previous_secrets))
    if s.jwt_secret:
        return TokenConfig(
            algorithm="HS256",
            secret=s.jwt_secret.encode(),
            previous_secrets=previous,
            previous_keys_until=until,
        )
    if not s.dev:
        raise BootstrapError(
            "set STRATOPT_JWT_SECRET (32+ bytes) or RS256/ES256 key files; "
            "or run with --dev for a local development server"
        )
    return TokenConfig(
        algorithm="HS256",
        secret=_dev_secret(s.data_dir),
        previous_secrets=previous,
        previous_keys_until=until,
    )


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _rotation_end(text: str) -> datetime | None:
    """STRATOPT_JWT_PREVIOUS_KEYS_UNTIL: ISO 8601; without a zone it is UTC."""
    if not text.strip():
        return None
    try:
        when = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BootstrapError(
            "STRATOPT_JWT_PREVIOUS_KEYS_UNTIL must be an ISO 8601 time, e.g. 2030-01-01T12:00:00Z"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _dev_secret(data_dir: Path) -> bytes:
    """A random secret kept beside the database, so dev tokens survive restarts."""
    path = data_dir / "dev-jwt-secret"
    if path.exists():
        return path.read_bytes().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(48).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(value)
    return value


async def create_user(
    db: Database,
    username: str,
    password: str,
    role: Role,
    *,
    display_name: str = "",
    params: ScryptParams = DEFAULT_PARAMS,
) -> models.User:
    # The same rules as CreateUser: logins look usernames up case-insensitively.
    username = normalize_username(username)
    problems = username_problems(username) + check_password_policy(password, username=username)
    if problems:
        raise BootstrapError("; ".join(problems))
    async with db.transaction() as s:
        user = models.User(
            username=username,
            display_name=display_name or username,
            role=role.value,
            password_hash=hash_password(password, params),
        )
        s.add(user)
    return user


async def ensure_users(db: Database, s: Settings) -> None:
    params = ScryptParams(log2_n=s.scrypt_log2_n)
    async with db.session() as session:
        count = (await session.execute(select(func.count()).select_from(models.User))).scalar_one()
        existing = set((await session.execute(select(models.User.username))).scalars())
    admin_user = normalize_username(s.admin_user)
    if admin_user and admin_user not in existing:
        if not s.admin_password:
            raise BootstrapError("STRATOPT_ADMIN_USER needs STRATOPT_ADMIN_PASSWORD")
        await create_user(db, admin_user, s.admin_password, Role.ADMIN, params=params)
        log.info("created admin user from environment", extra={"username": admin_user})
        existing.add(admin_user)
    if s.dev:
        for username, role, password in DEMO_USERS:
            if username not in existing:
                await create_user(db, username, password, role, params=params)
        if count == 0:
            log.warning("development mode: seeded demo users (see README); never use in production")
    elif count == 0 and not s.admin_user:
        log.warning(
            "no users yet: set STRATOPT_ADMIN_USER/STRATOPT_ADMIN_PASSWORD or run "
            "`stratopt user create --role admin`"
        )
