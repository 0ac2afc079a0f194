"""Authentication: every RPC except health, reflection and login needs a valid credential.

The principal is put in a context variable for the servicers; the failure message is the same
whatever went wrong, so it tells an attacker nothing.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc_interceptor import AsyncServerInterceptor

from stratopt.api.context import set_principal
from stratopt.errors import Unauthenticated
from stratopt.security.errors import AuthenticationError
from stratopt.security.principal import Principal

PUBLIC_PREFIXES = ("/grpc.health.v1.Health/", "/grpc.reflection.")
PUBLIC_METHODS = frozenset(
    {
        "/stratopt.v1.AuthService/Login",
        "/stratopt.v1.AuthService/RefreshToken",
        "/stratopt.v1.AuthService/Logout",
    }
)

Authenticator = Callable[[str | None, str | None], Awaitable[Principal]]
"""(bearer token, api key) -> Principal; raises AuthenticationError."""


def is_public(method_name: str) -> bool:
    return method_name in PUBLIC_METHODS or method_name.startswith(PUBLIC_PREFIXES)


class AuthInterceptor(AsyncServerInterceptor):
    def __init__(self, authenticate: Authenticator) -> None:
        self.authenticate = authenticate

    async def intercept(
        self,
        method: Callable[..., Any],
        request_or_iterator: Any,
        context: grpc.aio.ServicerContext,
        method_name: str,
    ) -> Any:
        set_principal(None)
        if not is_public(method_name):
            bearer, api_key = credentials(context)
            if bearer is None and api_key is None:
                raise Unauthenticated("authentication required: send a bearer token or x-api-key")
            try:
                principal = await self.authenticate(bearer, api_key)
            except AuthenticationError:
                raise Unauthenticated("invalid or expired credentials") from None
            set_principal(principal)
        result = method(request_or_iterator, context)
        if hasattr(result, "__aiter__"):
            return result
        return await result


def credentials(context: grpc.aio.ServicerContext) -> tuple[str | None, str | None]:
    bearer: str | None = None
    api_key: str | None = None
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                bearer = token.strip()
            else:
                bearer = ""  # present but malformed: still a failed authentication
        elif key == "x-api-key" and isinstance(value, str):
            api_key = value.strip()
    return bearer, api_key
