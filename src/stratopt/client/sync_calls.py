"""The sync client's per-call machinery: credentials on every call, token refresh, retries.

It is a gRPC client interceptor, so the generated stubs are used unchanged (and stay fully
typed) on the channel it wraps. Unary calls get the whole treatment (refresh before
expiry, one refresh and retry on UNAUTHENTICATED, retries per `retry.py`); streaming calls
get credentials and the refresh before expiry, and their retries live in the helpers that
know how to resume them (`Client.watch_job`, `Client.stream`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import grpc

from stratopt.client import retry as r
from stratopt.client.session import AuthenticationRequired, Credentials, Metadata, merge_metadata
from stratopt.v1 import auth_pb2, auth_pb2_grpc


class SyncAuth:
    """Credentials plus the lock and the raw channel needed to refresh them."""

    def __init__(self, creds: Credentials, raw_channel: grpc.Channel, timeout: float = 30.0):
        self.creds = creds
        self._lock = threading.Lock()
        self._auth = auth_pb2_grpc.AuthServiceStub(raw_channel)
        self._timeout = timeout

    def metadata(self) -> tuple[Metadata, str]:
        if self.creds.needs_refresh():
            with self._lock:
                if self.creds.needs_refresh():  # another thread may have just done it
                    self._refresh_locked()
        return self.creds.metadata()

    def refresh(self, failed_token: str = "") -> None:
        """Exchanges the refresh token now; with ``failed_token``, only if no other thread
        replaced that access token meanwhile (one refresh per expiry, not one per call)."""
        with self._lock:
            if failed_token and self.creds.metadata()[1] != failed_token:
                return
            self._refresh_locked()

    def _refresh_locked(self) -> None:
        token = self.creds.refresh_token
        if not token:
            raise AuthenticationRequired("not logged in: call login() or give an API key")
        try:
            reply = self._auth.RefreshToken(
                auth_pb2.RefreshTokenRequest(refresh_token=token), timeout=self._timeout
            )
        except grpc.RpcError as e:
            if e.code() in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INVALID_ARGUMENT):
                self.creds.forget()
                raise AuthenticationRequired(
                    f"the session has expired or was revoked ({e.details()}): log in again"
                ) from None
            raise
        self.creds.adopt(reply)

    def login(self, username: str, password: str) -> auth_pb2.LoginResponse:
        reply: auth_pb2.LoginResponse = self._auth.Login(
            auth_pb2.LoginRequest(username=username, password=password), timeout=self._timeout
        )
        with self._lock:
            self.creds.adopt(reply)
        return reply

    def logout(self) -> bool:
        with self._lock:
            token = self.creds.forget()
        if not token:
            return False
        self._auth.Logout(auth_pb2.LogoutRequest(refresh_token=token), timeout=self._timeout)
        return True


class _Details(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: Any
    wait_for_ready: Any
    compression: Any


class CallDetails(_Details, grpc.ClientCallDetails):  # type: ignore[misc]
    """A ClientCallDetails with our metadata and the remaining timeout."""


def _with(details: grpc.ClientCallDetails, md: Metadata, timeout: float | None) -> CallDetails:
    return CallDetails(
        details.method,
        timeout,
        merge_metadata(details.metadata, md),
        details.credentials,
        getattr(details, "wait_for_ready", None),
        getattr(details, "compression", None),
    )


class SyncCallInterceptor(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    def __init__(
        self,
        auth: SyncAuth,
        policy: r.RetryPolicy,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.auth = auth
        self.policy = policy
        self.sleep = sleep
        self.retries = 0
        """Retries made so far by this client (all calls); tests and logs read it."""

    def intercept_unary_unary(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, request: Any
    ) -> Any:
        start = time.monotonic()
        retry, reauthed = 0, False
        while True:
            remaining = (
                None if details.timeout is None else details.timeout - (time.monotonic() - start)
            )
            md, token = self.auth.metadata()
            outcome = continuation(_with(details, md, remaining), request)
            if outcome.exception() is None:
                return outcome
            code = outcome.code()
            if (
                code == grpc.StatusCode.UNAUTHENTICATED
                and token
                and not reauthed
                and self.auth.creds.refreshable
            ):
                reauthed = True
                self.auth.refresh(failed_token=token)
                continue
            hint = r.retry_delay(outcome.trailing_metadata())
            delay = r.next_delay(self.policy, retry, details.method, code, hint, remaining)
            if delay is None:
                return outcome
            self.sleep(delay)
            retry += 1
            self.retries += 1

    def intercept_unary_stream(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, request: Any
    ) -> Any:
        md, _ = self.auth.metadata()
        return continuation(_with(details, md, details.timeout), request)

    def intercept_stream_unary(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, requests: Any
    ) -> Any:
        md, _ = self.auth.metadata()
        return continuation(_with(details, md, details.timeout), requests)

    def intercept_stream_stream(
        self, continuation: Callable[..., Any], details: grpc.ClientCallDetails, requests: Any
    ) -> Any:
        md, _ = self.auth.metadata()
        return continuation(_with(details, md, details.timeout), requests)
