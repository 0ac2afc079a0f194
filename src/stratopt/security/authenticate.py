"""From the credential a client sent to the `Principal` the rest of the service sees.

A valid signature is not enough: the user must still exist and be enabled, the role is
taken from the user record (not the token) so a demotion applies to tokens already issued,
and a JWT whose session (refresh-token family) was logged out or revoked for reuse stops
working too. Those lookups go through short TTL caches, so such changes take effect within
`cache_ttl` seconds on every replica, and at once on the replica that made them.

Every failure is an `AuthenticationError`; the client sees one generic message whatever the
reason, and `.reason` (a fixed phrase, never the credential) goes to the debug log.
"""

from __future__ import annotations

import time
from typing import Protocol

from stratopt.security.api_keys import ApiKeyService
from stratopt.security.clock import MonotonicClock
from stratopt.security.errors import AuthenticationError
from stratopt.security.principal import Principal
from stratopt.security.tokens import TokenService
from stratopt.security.ttl_cache import TtlCache
from stratopt.security.users import UserRecord


class UserLookup(Protocol):
    async def get(self, user_id: str) -> UserRecord | None: ...


class SessionLookup(Protocol):
    async def family_active(self, family_id: str) -> bool: ...


class Authenticator:
    def __init__(
        self,
        tokens: TokenService,
        api_keys: ApiKeyService,
        users: UserLookup,
        sessions: SessionLookup,
        *,
        cache_ttl: float = 2.0,
        clock: MonotonicClock = time.monotonic,
    ) -> None:
        self.tokens = tokens
        self.api_keys = api_keys
        self._users_repo = users
        self._sessions_repo = sessions
        self._users: TtlCache[UserRecord | None] = TtlCache(cache_ttl, clock=clock)
        self._sessions: TtlCache[bool] = TtlCache(cache_ttl, clock=clock)

    async def authenticate(self, bearer: str | None, api_key: str | None) -> Principal:
        if bearer is not None and api_key is not None:
            # Two credentials could name two users; refusing beats guessing which one wins.
            raise AuthenticationError("both a bearer token and an api key")
        if bearer is not None:
            return await self._from_jwt(bearer)
        if api_key is not None:
            return await self._from_api_key(api_key)
        raise AuthenticationError("no credentials")

    def forget_user(self, user_id: str) -> None:
        """Drop the cached user so a change made by this process applies to the next call."""
        self._users.forget(user_id)

    def forget_session(self, family_id: str) -> None:
        self._sessions.forget(family_id)

    async def _from_jwt(self, token: str) -> Principal:
        claims = self.tokens.verify_access(token)
        if claims.session_id is not None:
            sid = claims.session_id
            active = await self._sessions.get_or_load(
                sid, lambda: self._sessions_repo.family_active(sid)
            )
            if not active:
                raise AuthenticationError("session ended")
        user = await self._user(claims.subject)
        return Principal(
            user_id=user.user_id,
            username=user.username,
            role=user.role,
            via="jwt",
            session_id=claims.session_id,
        )

    async def _from_api_key(self, key: str) -> Principal:
        # Not cached: one indexed lookup, and a revoked key must stop working at once.
        record = await self.api_keys.verify(key)
        user = await self._user(record.user_id)
        return Principal(
            user_id=user.user_id,
            username=user.username,
            role=user.role,
            via="api_key",
            key_id=record.key_id,
            scopes=record.scopes,
            key_prefix=record.prefix,
        )

    async def _user(self, user_id: str) -> UserRecord:
        user = await self._users.get_or_load(user_id, lambda: self._users_repo.get(user_id))
        if user is None:
            raise AuthenticationError("unknown user")
        if user.disabled:
            raise AuthenticationError("user disabled")
        return user
