"""The async client's per-call machinery (grpc.aio interceptors); see `sync_calls.py`.

Same rules as the sync side: credentials on every call, refresh before expiry, one refresh
and retry on UNAUTHENTICATED for unary calls, retries per `retry.py`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import grpc.aio

from stratopt.client import retry as r
from stratopt.client.session import AuthenticationRequired, Credentials, Metadata, merge_metadata
from stratopt.v1 import auth_pb2, auth_pb2_grpc


class AsyncAuth:
    """Credentials plus an asyncio lock and the raw channel needed to refresh them."""

    def __init__(self, creds: Credentials, raw_channel: grpc.aio.Channel, timeout: float = 30.0):
        self.creds = creds
        self._lock = asyncio.Lock()
        self._auth = auth_pb2_grpc.AuthServiceStub(raw_channel)
        self._timeout = timeout

    async def metadata(self) -> tuple[Metadata, str]:
        if self.creds.needs_refresh():
            async with self._lock:
                if self.creds.needs_refresh():
                    await self._refresh_locked()
        return self.creds.metadata()

    async def refresh(self, failed_token: str = "") -> None:
        async with self._lock:
            if failed_token and self.creds.metadata()[1] != failed_token:
                return
            await self._refresh_locked()

    async def _refresh_locked(self) -> None:
        token = self.creds.refresh_token
        if not token:
            raise AuthenticationRequired("not logged in: call login() or give an API key")
        try:
            reply = await self._auth.RefreshToken(
                auth_pb2.RefreshTokenRequest(refresh_token=token), timeout=self._timeout
            )
        except grpc.aio.AioRpcError as e:
            if e.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT):
                self.creds.forget()
                raise AuthenticationRequired(
                    f"the session has expired or was revoked ({e.details()}): log in again"
                ) from None
            raise
        self.creds.adopt(reply)

    async def login(self, username: str, password: str) -> auth_pb2.LoginResponse:
        reply: auth_pb2.LoginResponse = await self._auth.Login(
            auth_pb2.LoginRequest(username=username, password=password), timeout=self._timeout
        )
        async with self._lock:
            self.creds.adopt(reply)
        return reply

    async def logout(self) -> bool:
        async with self._lock:
            token = self.creds.forget()
        if not token:
            return False
        await self._auth.Logout(auth_pb2.LogoutRequest(refresh_token=token), timeout=self._timeout)
        return True


def _with(
    details: grpc.aio.ClientCallDetails, md: Metadata, timeout: float | None
) -> grpc.aio.ClientCallDetails:
    return grpc.aio.ClientCallDetails(
        details.method,
        timeout,
        grpc.aio.Metadata(*merge_metadata(details.metadata, md)),
        details.credentials,
        details.wait_for_ready,
    )


class AsyncCallInterceptor:
    """The logic for every kind of call; `interceptors()` gives the channel one adapter per
    kind (a grpc.aio channel files an interceptor under the first kind it implements only).
    """

    def __init__(
        self,
        auth: AsyncAuth,
        policy: r.RetryPolicy,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.auth = auth
        self.policy = policy
        self.sleep = sleep
        self.retries = 0
        """Retries made so far by this client (all calls); tests and logs read it."""

    def interceptors(self) -> list[grpc.aio.ClientInterceptor]:
        return [_UnaryUnary(self), _UnaryStream(self), _StreamUnary(self), _StreamStream(self)]

    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        start = time.monotonic()
        retry, reauthed = 0, False
        while True:
            remaining = (
                None if details.timeout is None else details.timeout - (time.monotonic() - start)
            )
            md, token = await self.auth.metadata()
            call = await continuation(_with(details, md, remaining), request)
            try:
                await call
                return call
            except grpc.aio.AioRpcError as e:
                code, trailers = e.code(), e.trailing_metadata()
            if (
                code == grpc.StatusCode.UNAUTHENTICATED
                and token
                and not reauthed
                and self.auth.creds.refreshable
            ):
                reauthed = True
                await self.auth.refresh(failed_token=token)
                continue
            hint = r.retry_delay(trailers)
            delay = r.next_delay(self.policy, retry, details.method, code, hint, remaining)
            if delay is None:
                return call  # awaiting it raises the error for the caller
            await self.sleep(delay)
            retry += 1
            self.retries += 1

    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, request: Any
    ) -> Any:
        md, _ = await self.auth.metadata()
        return await continuation(_with(details, md, details.timeout), request)

    async def intercept_stream_unary(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, requests: Any
    ) -> Any:
        md, _ = await self.auth.metadata()
        return await continuation(_with(details, md, details.timeout), requests)

    async def intercept_stream_stream(
        self, continuation: Callable[..., Any], details: grpc.aio.ClientCallDetails, requests: Any
    ) -> Any:
        md, _ = await self.auth.metadata()
        return await continuation(_with(details, md, details.timeout), requests)


class _UnaryUnary(grpc.aio.UnaryUnaryClientInterceptor):
    def __init__(self, logic: AsyncCallInterceptor) -> None:
        self.logic = logic

    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        return await self.logic.intercept_unary_unary(continuation, details, request)


class _UnaryStream(grpc.aio.UnaryStreamClientInterceptor):
    def __init__(self, logic: AsyncCallInterceptor) -> None:
        self.logic = logic

    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        return await self.logic.intercept_unary_stream(continuation, details, request)


class _StreamUnary(grpc.aio.StreamUnaryClientInterceptor):
    def __init__(self, logic: AsyncCallInterceptor) -> None:
        self.logic = logic

    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await self.logic.intercept_stream_unary(continuation, details, requests)


class _StreamStream(grpc.aio.StreamStreamClientInterceptor):
    def __init__(self, logic: AsyncCallInterceptor) -> None:
        self.logic = logic

    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        return await self.logic.intercept_stream_stream(continuation, details, requests)
