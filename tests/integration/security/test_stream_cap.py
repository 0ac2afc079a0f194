"""The concurrent-stream cap, on an in-process server whose stream stays open until closed.

None of the real streaming RPCs can be held open on demand in a test yet, so the chain
(error -> auth -> authorization -> stream cap) runs in front of a stub servicer here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

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
from stratopt.security.stream_cap import StreamCap
from stratopt.store import migrate
from stratopt.store.db import Database
from stratopt.store.stream_leases import SqlStreamLeases
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
            StreamCapInterceptor(StreamCap(limiter)),
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


async def cap_server(cap: StreamCap) -> tuple[grpc.aio.Server, int]:
    server = grpc.aio.server(
        interceptors=[
            ErrorInterceptor(),
            AuthInterceptor(by_token),
            AuthorizationInterceptor(),
            StreamCapInterceptor(cap),
        ]
    )
    spbg.add_StrategyServiceServicer_to_server(Endless(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, port


async def test_the_cap_holds_across_processes_sharing_a_database(tmp_path: Path) -> None:
    """Two servers (as two processes of `serve --processes 2`, or two replicas) with their
    own in-memory counters: with leases in the shared database a user holds at most the cap
    in all, not the cap on each (issue 14: "the stream cap is per replica")."""
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'shared.db'}")
    await migrate.upgrade(db)
    leases = [SqlStreamLeases(db, f"process-{i}") for i in range(2)]
    caps = [StreamCap(ConcurrencyLimiter(max_per_principal=2), lease) for lease in leases]
    servers = [await cap_server(cap) for cap in caps]
    channels = [grpc.aio.insecure_channel(f"127.0.0.1:{port}") for _, port in servers]
    try:
        stubs = [spbg.StrategyServiceStub(ch) for ch in channels]

        def open_stream(i: int, user: str = "alice") -> grpc.aio.UnaryStreamCall:
            return stubs[i].StreamSignals(
                spb.StreamSignalsRequest(strategy_id="s"),
                metadata=[("authorization", f"Bearer {user}")],
            )

        first, second = open_stream(0), open_stream(1)
        await first.read()
        await second.read()
        for i in (0, 1):  # each process holds one; the third is over the cap on either
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await open_stream(i).read()
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        await open_stream(1, "bob").read()  # per user

        first.cancel()  # its lease goes back, and the other process may use it
        for _ in range(100):
            if caps[0].local.in_use("alice") == 0 and not caps[0]._closing:
                break
            await asyncio.sleep(0.02)
        again = open_stream(1)
        await again.read()

        # A process that dies leaves leases that lapse after the TTL, never forever.
        leases[1].ttl = leases[1].ttl * 0  # what a TTL later looks like
        assert await leases[1].open("alice", 2) is not None
    finally:
        for ch in channels:
            await ch.close()
        for server, _ in servers:
            await server.stop(0)
        await db.dispose()
