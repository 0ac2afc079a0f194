"""Assembly of the security services from settings and the database, and their interceptors.

Kept out of server.py so the server only says "build security, install its interceptors";
what is shared, cached or per-replica is decided here in one place.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from grpc_interceptor import AsyncServerInterceptor

from stratopt.api.audit import AuditInterceptor
from stratopt.api.auth_interceptor import AuthInterceptor
from stratopt.api.authz import AuthorizationInterceptor
from stratopt.api.ratelimit_interceptor import RateLimitInterceptor, StreamCapInterceptor
from stratopt.security.api_keys import ApiKeyService
from stratopt.security.authenticate import Authenticator
from stratopt.security.clock import utc_now
from stratopt.security.passwords import PasswordHasher, ScryptParams
from stratopt.security.ratelimit import (
    ConcurrencyLimiter,
    RateLimitBackend,
    RateLimits,
    TokenBucketLimiter,
)
from stratopt.security.refresh_tokens import RefreshTokenPolicy
from stratopt.security.stream_cap import StreamCap
from stratopt.security.tokens import TokenService
from stratopt.security.users import UserService
from stratopt.server.settings import Settings
from stratopt.services.accounts import Accounts
from stratopt.store.db import Database
from stratopt.store.models import new_id
from stratopt.store.security_repos import (
    PgRateLimitBackend,
    SqlApiKeyRepo,
    SqlAuditRepo,
    SqlRefreshTokenRepo,
    SqlUserRepo,
)
from stratopt.store.stream_leases import SqlStreamLeases

log = logging.getLogger("stratopt.security")

HOUSEKEEPING_INTERVAL_S = 600.0
STREAM_LEASE_TTL_S = 30.0
"""A dead process's streams stop counting against the cap after this long."""
STREAM_HEARTBEAT_S = STREAM_LEASE_TTL_S / 3
UNCAPPED = 2**31
"""The stream cap with STRATOPT_MAX_STREAMS_PER_USER=0: streams are only counted."""


def scrypt_params(settings: Settings) -> ScryptParams:
    return ScryptParams(log2_n=settings.scrypt_log2_n)


def rate_limits(settings: Settings) -> RateLimits:
    return RateLimits(max_concurrent_streams=settings.max_streams_per_user).with_specs(
        {
            "general": settings.rate_limit_general,
            "backtest": settings.rate_limit_backtest,
            "optimization": settings.rate_limit_optimization,
            "export": settings.rate_limit_export,
            "data": settings.rate_limit_data,
            "auth": settings.rate_limit_auth,
            "auth_per_ip": settings.rate_limit_auth_per_ip,
            "auth_per_user": settings.rate_limit_auth_per_user,
        }
    )


def rate_limit_backend(settings: Settings, db: Database, limits: RateLimits) -> RateLimitBackend:
    choice = settings.rate_limit_backend.strip().lower()
    if choice not in ("auto", "memory", "postgres"):
        raise ValueError("STRATOPT_RATE_LIMIT_BACKEND must be auto, memory or postgres")
    if choice == "postgres" or (choice == "auto" and db.backend == "postgresql"):
        return PgRateLimitBackend(db, limits)
    return TokenBucketLimiter(limits)


def stream_leases(settings: Settings, db: Database) -> SqlStreamLeases | None:
    """Leases in the database when other processes may serve the same users: several
    processes (`--processes`) or PostgreSQL (replicas). One process counts in memory only."""
    if settings.processes <= 1 and db.backend != "postgresql":
        return None
    if not settings.max_streams_per_user:
        return None  # uncapped: nothing to share
    holder = f"{socket.gethostname()}:{os.getpid()}:{new_id()[:8]}"
    return SqlStreamLeases(db, holder, ttl_seconds=STREAM_LEASE_TTL_S)


@dataclass
class SecurityServices:
    settings: Settings
    tokens: TokenService
    users: UserService
    user_repo: SqlUserRepo
    refresh: RefreshTokenPolicy
    refresh_repo: SqlRefreshTokenRepo
    api_keys: ApiKeyService
    audit: SqlAuditRepo
    authenticator: Authenticator
    limiter: RateLimitBackend
    streams: ConcurrencyLimiter
    """This process's open streams (what GetOverview and the metrics count)."""
    stream_cap: StreamCap
    accounts: Accounts

    @classmethod
    def build(cls, settings: Settings, db: Database, tokens: TokenService) -> SecurityServices:
        user_repo = SqlUserRepo(db)
        refresh_repo = SqlRefreshTokenRepo(db)
        key_repo = SqlApiKeyRepo(db)
        # The contract says a key without expire_time does not expire; callers choose.
        api_keys = ApiKeyService(key_repo, default_ttl=None)
        users = UserService(user_repo, PasswordHasher(scrypt_params(settings)))
        refresh = RefreshTokenPolicy(refresh_repo)
        audit = SqlAuditRepo(db)
        authenticator = Authenticator(
            tokens,
            api_keys,
            user_repo,
            refresh_repo,
            cache_ttl=settings.auth_cache_seconds,
        )
        limits = rate_limits(settings)
        return cls(
            settings=settings,
            tokens=tokens,
            users=users,
            user_repo=user_repo,
            refresh=refresh,
            refresh_repo=refresh_repo,
            api_keys=api_keys,
            audit=audit,
            authenticator=authenticator,
            limiter=rate_limit_backend(settings, db, limits),
            # The stream cap guards memory, not throughput: it stays when rate limits are
            # switched off (STRATOPT_RATE_LIMITS=0); STRATOPT_MAX_STREAMS_PER_USER=0 lifts it
            # (streams are still counted, GetOverview shows them).
            streams=(streams := ConcurrencyLimiter(limits.max_concurrent_streams or UNCAPPED)),
            stream_cap=StreamCap(streams, stream_leases(settings, db)),
            accounts=Accounts(
                users=users,
                user_repo=user_repo,
                tokens=tokens,
                refresh=refresh,
                api_keys=api_keys,
                key_repo=key_repo,
                audit=audit,
                authenticator=authenticator,
            ),
        )

    def interceptors(
        self, refused: Callable[[str], None] | None = None
    ) -> list[AsyncServerInterceptor]:
        """Everything after the error interceptor, outermost first: audit sees the calls
        that authentication and authorization refuse; rate limits apply only to callers
        that may make the call at all, so refused calls do not spend anyone's budget.
        `refused(category)` is told of every call the rate limits or the stream cap refuse
        (the metrics count them)."""
        xff = self.settings.trust_forwarded_for
        chain: list[AsyncServerInterceptor] = [
            AuditInterceptor(
                self.audit,
                trust_forwarded_for=xff,
                refusals_per_minute=self.settings.audit_refusals_per_minute,
            ),
            AuthInterceptor(self.authenticator.authenticate),
            AuthorizationInterceptor(),
        ]
        if self.settings.rate_limits:
            chain.append(
                RateLimitInterceptor(self.limiter, trust_forwarded_for=xff, refused=refused)
            )
        # Capped even when limits are off.
        chain.append(StreamCapInterceptor(self.stream_cap, refused=refused))
        return chain

    async def housekeeping(self) -> None:
        """Drop long-expired refresh tokens and idle shared buckets, every ten minutes."""
        while True:
            await asyncio.sleep(HOUSEKEEPING_INTERVAL_S)
            try:
                await self.refresh_repo.delete_expired(utc_now() - timedelta(days=1))
                sweep: Any = getattr(self.limiter, "sweep", None)
                if sweep is not None:
                    result = sweep()
                    if asyncio.iscoroutine(result):
                        await result
            except Exception:
                log.exception("security housekeeping failed")
