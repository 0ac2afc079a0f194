"""Authentication: every RPC the access table does not mark public needs a valid credential.

The principal is put in a context variable for the servicers; the failure message is the same
whatever went wrong, so it tells an attacker nothing. The precise reason (a fixed phrase from
the security core, never the credential) goes to the debug log and the audit entry.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
from grpc_interceptor import AsyncServerInterceptor

from stratopt.api import audit
from stratopt.api.authz import is_public
from stratopt.api.context import set_principal
from stratopt.errors import Unauthenticated
from stratopt.security.errors import AuthenticationError
from stratopt.security.principal import Principal

log = logging.getLogger("stratopt.auth")

INVALID_CREDENTIALS = "invalid or expired credentials"
MISSING_CREDENTIALS = "authentication required: send a bearer token or x-api-key"

Authenticator = Callable[[str | None, str | None], Awaitable[Principal]]
"""(bearer token, api key) -> Principal; raises AuthenticationError."""


class AuthInterceptor(AsyncServerInterceptor):
    def __init__(
        self, authenticate: Authenticator, public: Callable[[str], bool] = is_public
    ) -> None:
        self.authenticate = authenticate
        self._public = public

    async def intercept(
        self,
        method: Callable[..., Any],
        request_or_iterator: Any,
        context: grpc.aio.ServicerContext,
        method_name: str,
    ) -> Any:
        set_principal(None)
        if not self._public(method_name):
            set_principal(await self._principal(context))
        result = method(request_or_iterator, context)
        if hasattr(result, "__aiter__"):
            return result
        return await result

    async def _principal(self, context: grpc.aio.ServicerContext) -> Principal:
        bearer, api_key = credentials(context)
        if bearer is None and api_key is None:
            audit.annotate(detail="no credentials")
            raise Unauthenticated(MISSING_CREDENTIALS)
        try:
            return await self.authenticate(bearer, api_key)
        except AuthenticationError as e:
            log.debug("authentication rejected", extra={"reason": e.reason})
            audit.annotate(detail=f"authentication rejected: {e.reason}")
            raise Unauthenticated(INVALID_CREDENTIALS) from None


def credentials(context: grpc.aio.ServicerContext) -> tuple[str | None, str | None]:
    bearer: str | None = None
    api_key: str | None = None
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str):
            scheme, _, token = value.partition(" ")
            # Present but malformed ("") still counts as a failed authentication.
            bearer = token.strip() if scheme.lower() == "bearer" else ""
        elif key == "x-api-key" and isinstance(value, str):
            api_key = value.strip()
    return bearer, api_key
