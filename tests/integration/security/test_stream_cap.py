"""The concurrent-stream cap, on an in-process server whose stream stays open until closed.

None of the real streaming RPCs can be held open on demand in a test yet, so the chain
(error -> auth -> authorization -> stream cap) runs in front of a stub servicer here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from stratopt.v1 import strategy_pb2 as spb
from stratopt.v1 import strategy_pb2_grpc as spbg

from stratopt.api.auth_interceptor import AuthInterceptor
from stratopt.api.authz import AuthorizationInterceptor
from stratopt.api.errors_interceptor import ErrorInterceptor
from stratopt.api.ratelimit_interceptor import StreamCapInterceptor
from stratopt.security.errors import AuthenticationError
from stratopt.security.principal import Principal
from stratopt.security.ratelimit import ConcurrencyLimiter
from stratopt.security.roles import Role
from tests.integration.security.support import retry_delay


class Endless(spbg.StrategyServiceServicer):
    async def StreamSignals(  # type: ignore[override]
        self, request: spb.StreamSignalsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[spb.StreamSignalsResponse]:
        yield spb.StreamSignalsResponse()
        await asyncio.Event().wait()


async def by_token(bearer: str | None, api_key: str | None) -> Principal:
    if bearer not in ("alice", "bob"):
        raise AuthenticationError("unknown test token")
    return Principal(user_id=bearer, username=bearer, role=Role.VIEWER, via="jwt")


async def test_streams_beyond_the_cap_are_refused_until_one_closes() -> None:
    limiter = ConcurrencyLimiter(max_per_principal=2)
    server = grpc.aio.server(
        interceptors=[
            ErrorInterceptor(),
            AuthInterceptor(by_token),
            AuthorizationInterceptor(),
            StreamCapInterceptor(limiter),
        ]
    )
    spbg.add_StrategyServiceServicer_to_server(Endless(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            stub = spbg.StrategyServiceStub(ch)

            def open_stream(user: str) -> grpc.aio.UnaryStreamCall:
                return stub.StreamSignals(
                    spb.StreamSignalsRequest(strategy_id="s"),
                    metadata=[("authorization", f"Bearer {user}")],
                )

            held = [open_stream("alice"), open_stream("alice")]
            for call in held:
                await call.read()
            assert limiter.in_use("alice") == 2

            refused = open_stream("alice")
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await refused.read()
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "concurrent streams" in (info.value.details() or "")
            assert retry_delay(info.value) == pytest.approx(1.0)  # type: ignore[arg-type]

            bob = open_stream("bob")  # per user: Bob is not affected by Alice's streams
            await bob.read()

            held[0].cancel()
            for _ in range(100):
                if limiter.in_use("alice") < 2:
                    break
                await asyncio.sleep(0.02)
            again = open_stream("alice")
            await again.read()
            for call in (held[1], bob, again):
                call.cancel()
            for _ in range(100):
                if len(limiter) == 0:
                    break
                await asyncio.sleep(0.02)
            assert len(limiter) == 0, "cancelled streams must give their slots back"
    finally:
        await server.stop(0)
