"""What a client presents on each call: an API key, a fixed token, or a login session.

A login session holds a short-lived access token and a refresh token. The access token is
exchanged for a new one shortly before it expires (``refresh_margin``), so calls do not
fail first; the server rotates the refresh token on every exchange and revokes the whole
session if an old one is used again, so the newest one is kept here and handed to
``on_refresh_token`` (the CLI stores it). This module holds the state and the decisions;
the sync and async clients do the network calls (`sync_auth.py`, `async_auth.py`).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from stratopt.v1 import auth_pb2

Metadata = list[tuple[str, str]]
RefreshCallback = Callable[[str], None]


class AuthenticationRequired(Exception):
    """No usable credential: never logged in, or the session was revoked or expired.

    The message says what to do; the caller logs in again."""


@dataclass
class TokenSession:
    """The tokens of one login, with the access token's local expiry (monotonic clock).

    Expiry is measured on this machine from the lifetime the server announced, so a wrong
    wall clock here shifts nothing but the moment of the first exchange."""

    access_token: str
    refresh_token: str
    expires_at: float
    lifetime: float

    @classmethod
    def from_reply(
        cls, reply: auth_pb2.LoginResponse | auth_pb2.RefreshTokenResponse
    ) -> TokenSession:
        now_wall, now = time.time(), time.monotonic()
        if reply.HasField("access_token_expire_time"):
            lifetime = max(reply.access_token_expire_time.ToNanoseconds() / 1e9 - now_wall, 0.0)
        else:
            lifetime = 900.0  # the server's documented default when it does not say
        return cls(reply.access_token, reply.refresh_token, now + lifetime, lifetime)

    def margin(self) -> float:
        """Refresh this long before expiry: a fifth of the lifetime, at most a minute."""
        return min(60.0, self.lifetime / 5)

    def stale(self, now: float | None = None) -> bool:
        t = time.monotonic() if now is None else now
        return t >= self.expires_at - self.margin()


class Credentials:
    """The caller's credential, as given to ``Client``/``AsyncClient``; mutable only through
    a login, a refresh or a logout (done by the clients under a lock)."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        access_token: str | None = None,
        refresh_token: str | None = None,
        on_refresh_token: RefreshCallback | None = None,
    ) -> None:
        given = [x for x in (api_key, access_token, refresh_token) if x]
        if len(given) > 1:
            raise ValueError("give one of api_key, access_token or refresh_token")
        self.api_key = api_key or ""
        self.static_token = access_token or ""
        self.session: TokenSession | None = None
        self.pending_refresh_token = refresh_token or ""
        self.on_refresh_token = on_refresh_token

    @property
    def refreshable(self) -> bool:
        return self.session is not None or bool(self.pending_refresh_token)

    @property
    def refresh_token(self) -> str:
        return self.session.refresh_token if self.session else self.pending_refresh_token

    def needs_refresh(self) -> bool:
        if self.api_key or self.static_token:
            return False
        if self.session is None:
            return bool(self.pending_refresh_token)
        return self.session.stale()

    def metadata(self) -> tuple[Metadata, str]:
        """Headers for one call and the token they carry ("" when there is none)."""
        if self.api_key:
            return [("x-api-key", self.api_key)], ""
        token = self.session.access_token if self.session else self.static_token
        if not token:
            return [], ""
        return [("authorization", f"Bearer {token}")], token

    def adopt(self, reply: auth_pb2.LoginResponse | auth_pb2.RefreshTokenResponse) -> None:
        """Keeps the tokens of a login or refresh and reports the new refresh token."""
        self.session = TokenSession.from_reply(reply)
        self.pending_refresh_token = ""
        self.api_key = self.static_token = ""
        if self.on_refresh_token is not None:
            self.on_refresh_token(reply.refresh_token)

    def forget(self) -> str:
        """Drops the session (logout, or a refresh the server refused); returns its refresh
        token so a logout can revoke it."""
        token = self.refresh_token
        self.session = None
        self.pending_refresh_token = ""
        return token


def merge_metadata(existing: object, auth: Metadata) -> Metadata:
    """The call's own metadata without any credential of its own, plus ``auth``.

    A credential the caller passed explicitly (``metadata=[("authorization", ...)]``) wins:
    the library then adds nothing, so one call can act as someone else."""
    pairs = [(str(k), v) for k, v in (existing or ())]  # type: ignore[attr-defined]
    if any(k in ("authorization", "x-api-key") for k, _ in pairs):
        return pairs
    return pairs + auth
