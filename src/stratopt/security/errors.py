"""Exceptions raised by the security core.

They carry no gRPC types so the core stays transport-free; the interceptors map them:
`AuthenticationError` -> UNAUTHENTICATED, `PermissionDeniedError` -> PERMISSION_DENIED,
`RateLimitExceededError` and `ConcurrencyLimitExceededError` -> RESOURCE_EXHAUSTED (with
`RetryInfo` built from the decision).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stratopt.security.ratelimit import Decision
    from stratopt.security.roles import Permission

GENERIC_AUTH_MESSAGE = "authentication failed"


class AuthenticationError(Exception):
    """Credentials were missing, malformed, expired, revoked or forged.

    The message shown to clients is always the same so that a caller cannot tell an
    expired token from a forged one or an unknown key from a revoked one (each answer would
    help an attacker). The precise cause lives in `reason`, meant for server-side debug
    logs only; by construction it is a fixed phrase and never contains the credential.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(GENERIC_AUTH_MESSAGE)
        self.reason = reason

    def __repr__(self) -> str:
        return f"AuthenticationError(reason={self.reason!r})"


class PermissionDeniedError(Exception):
    """The caller is authenticated but its role, API key scopes or ownership forbid this."""

    def __init__(self, permission: Permission | None = None, reason: str = "") -> None:
        super().__init__("permission denied")
        self.permission = permission
        self.reason = reason


class RateLimitExceededError(Exception):
    """A token bucket is empty; `decision.retry_after_seconds` says when to come back."""

    def __init__(self, decision: Decision) -> None:
        super().__init__("rate limit exceeded")
        self.decision = decision


class ConcurrencyLimitExceededError(Exception):
    """The principal already holds as many concurrent streams as it may."""

    def __init__(self, limit: int) -> None:
        super().__init__("too many concurrent streams")
        self.limit = limit
