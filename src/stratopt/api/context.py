"""The authenticated caller of the current RPC, set by the auth interceptor."""

from __future__ import annotations

from contextvars import ContextVar

from stratopt.errors import Unauthenticated
from stratopt.security.principal import Principal

_principal: ContextVar[Principal | None] = ContextVar("stratopt_principal", default=None)


def set_principal(p: Principal | None) -> None:
    _principal.set(p)


def current_principal() -> Principal:
    p = _principal.get()
    if p is None:
        raise Unauthenticated("authentication required")
    return p


def optional_principal() -> Principal | None:
    return _principal.get()
