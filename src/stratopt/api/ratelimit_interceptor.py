"""Rate limits per principal and category, and a cap on concurrent streams per user.

Every limited call answers `x-ratelimit-limit`, `x-ratelimit-remaining` and
`x-ratelimit-reset` (seconds until the bucket is full again). Unary calls carry them in the
trailing metadata, on successes and errors alike, and REST calls also as initial metadata,
which Envoy's JSON transcoder turns into HTTP response headers (it drops the trailers of a
successful unary call; `api/response_headers.py` says why gRPC calls skip that send). Server
streams send them with their first message and in the trailing metadata (see
`_headers_with_first_message`). Over the limit the call fails with RESOURCE_EXHAUSTED
carrying google.rpc.RetryInfo.

Buckets are keyed by user (all of a user's API keys and sessions share one budget, so minting
keys does not multiply it). Login is keyed by client IP, then by client IP and username, then
by username from all clients (`security.ratelimit.LOGIN_BUCKETS`); token refresh and logout,
which have no principal yet, by client IP.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
from google.protobuf.message import Message
from grpc_interceptor import AsyncServerInterceptor

from stratopt.api.authz import Rule, contract_methods, method_path, rule_for
from stratopt.api.context import optional_principal
from stratopt.api.peer import client_ip
from stratopt.api.response_headers import wants_initial_metadata
from stratopt.errors import ResourceExhausted
from stratopt.security.ratelimit import (
    Category,
    Decision,
    RateLimitBackend,
    acquire_login,
    login_ip_key,
    password_check_key,
)
from stratopt.security.stream_cap import StreamCap

log = logging.getLogger("stratopt.ratelimit")

LOGIN_METHOD = "/stratopt.v1.AuthService/Login"


Metadata = tuple[tuple[str, str], ...]


def rate_headers(decision: Decision) -> Metadata:
    return (
        ("x-ratelimit-limit", str(decision.limit)),
        ("x-ratelimit-remaining", str(max(decision.remaining, 0))),
        ("x-ratelimit-reset", str(math.ceil(decision.reset_seconds))),
    )


def wait_text(seconds: float) -> str:
    """A retry hint a person can act on, rounded up (never "0.0 s"): "40 ms", "2.5 s",
    "20 s", "3 min"."""
    if seconds < 1:
        return f"{max(1, math.ceil(seconds * 1000))} ms"
    if seconds < 10:
        return f"{math.ceil(seconds * 10) / 10:.1f} s"
    if seconds < 120:
        return f"{math.ceil(seconds)} s"
    return f"{math.ceil(seconds / 60)} min"


class RateLimitInterceptor(AsyncServerInterceptor):
    def __init__(
        self,
        backend: RateLimitBackend,
        *,
        trust_forwarded_for: bool = False,
        rules: Callable[[str], Rule | None] = rule_for,
        refused: Callable[[str], None] | None = None,
    ) -> None:
        self.backend = backend
        self._refused = refused
        self._trust_xff = trust_forwarded_for
        self._rule_for = rules
        self._server_streaming = frozenset(
            method_path(m) for m in contract_methods() if m.server_streaming
        )

    async def intercept(
        self,
        method: Callable[..., Any],
        request_or_iterator: Any,
        context: grpc.aio.ServicerContext,
        method_name: str,
    ) -> Any:
        rule = self._rule_for(method_name)
        if rule is None or rule.category is None:
            return await _passthrough(method, request_or_iterator, context)
        decision = await self._acquire(rule.category, method_name, request_or_iterator, context)
        headers = rate_headers(decision)
        streaming = method_name in self._server_streaming
        context.set_trailing_metadata(headers)
        if not streaming and wants_initial_metadata(context):
            await _send_headers(context, headers)
        if not decision.allowed:
            if self._refused is not None:
                self._refused(rule.category.value)
            raise ResourceExhausted(
                f"rate limit exceeded for {rule.category.value} calls; "
                f"retry in {wait_text(decision.retry_after_seconds)}",
                retry_after_seconds=decision.retry_after_seconds,
            )
        result = method(request_or_iterator, context)
        if streaming and hasattr(result, "__aiter__"):
            return _headers_with_first_message(result, context, headers)
        if hasattr(result, "__aiter__"):
            return result
        return await result

    async def _acquire(
        self, category: Category, method_name: str, request: Any, context: grpc.aio.ServicerContext
    ) -> Decision:
        ip = client_ip(context, trust_forwarded_for=self._trust_xff)
        if method_name == LOGIN_METHOD:
            username = getattr(request, "username", "") if isinstance(request, Message) else ""
            return await acquire_login(self.backend, str(username)[:64], ip)
        principal = optional_principal()
        if category is Category.AUTH and principal is not None:
            # Password checks by a signed-in user: a budget of their own (all their sessions
            # share it), which failed logins by a guesser elsewhere cannot drain.
            return await self.backend.acquire(password_check_key(principal.user_id), category)
        if principal is None:
            return await self.backend.acquire(login_ip_key(ip), Category.AUTH_IP)
        return await self.backend.acquire("u:" + principal.user_id, category)


async def _passthrough(
    method: Callable[..., Any], request: Any, context: grpc.aio.ServicerContext
) -> Any:
    result = method(request, context)
    if hasattr(result, "__aiter__"):
        return result
    return await result


async def _send_headers(context: grpc.aio.ServicerContext, headers: Metadata) -> None:
    try:
        await context.send_initial_metadata(headers)
    except Exception:  # headers are advisory; never fail the call over them
        log.debug("could not send rate-limit metadata", exc_info=True)


async def _headers_with_first_message(
    stream: AsyncIterator[Any], context: grpc.aio.ServicerContext, headers: Metadata
) -> AsyncIterator[Any]:
    """Server streams send their headers with the first message, not before the handler
    runs: once headers are out, an HTTP/1.1 client behind Envoy can no longer be told that
    the stream failed (404, 403...) before producing anything (docs/rest.md). Until then
    the values ride in the trailing metadata."""
    first = True
    async for item in stream:
        if first:
            await _send_headers(context, headers)
            first = False
        yield item


class StreamCapInterceptor(AsyncServerInterceptor):
    """At most `cap.max_per_principal` open server streams per user, across every process
    that shares the cap's lease store (security/stream_cap.py)."""

    def __init__(self, cap: StreamCap, refused: Callable[[str], None] | None = None) -> None:
        self.cap = cap
        self._refused = refused

    async def intercept(
        self,
        method: Callable[..., Any],
        request_or_iterator: Any,
        context: grpc.aio.ServicerContext,
        method_name: str,
    ) -> Any:
        result = method(request_or_iterator, context)
        if not hasattr(result, "__aiter__"):
            return await result
        principal = optional_principal()
        if principal is None:
            return result
        return self._held(result, principal.user_id)

    async def _held(self, stream: AsyncIterator[Any], user_id: str) -> AsyncIterator[Any]:
        lease = await self.cap.acquire(user_id)
        if lease is None:
            if self._refused is not None:
                self._refused("streams")
            raise ResourceExhausted(
                f"too many concurrent streams (at most {self.cap.max_per_principal} "
                "per user); close one and retry",
                retry_after_seconds=1.0,
            )
        try:
            async for item in stream:
                yield item
        finally:
            self.cap.release(lease)
