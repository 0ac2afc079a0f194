"""`CachedChain` on a real grpc.aio server: the chain is composed once per method, while
the per-call work of every interceptor still runs on every call, with that call's metadata."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from grpc_interceptor import AsyncServerInterceptor

from stratopt.api.interceptor_chain import CachedChain
from stratopt.api.release_interceptor import ReleaseInterceptor

ECHO = "/test.Echo/Echo"
UNKNOWN = "/test.Echo/Nope"


class Recorder(AsyncServerInterceptor):
    """Counts compositions and records each call's caller header."""

    def __init__(self) -> None:
        self.composed: list[tuple[str, tuple[Any, ...]]] = []
        self.callers: list[str] = []

    async def intercept_service(self, continuation: Any, details: Any) -> Any:
        self.composed.append((details.method, tuple(details.invocation_metadata or ())))
        return await super().intercept_service(continuation, details)

    async def intercept(
        self,
        method: Callable[..., Any],
        request_or_iterator: Any,
        context: grpc.aio.ServicerContext,
        method_name: str,
    ) -> Any:
        caller = dict(context.invocation_metadata() or ()).get("caller", "")
        self.callers.append(f"{method_name} {caller}")
        return await method(request_or_iterator, context)


async def echo(request: bytes, _context: Any) -> bytes:
    return request


@pytest.fixture()
async def served() -> AsyncIterator[tuple[grpc.aio.Channel, Recorder]]:
    recorder = Recorder()
    server = grpc.aio.server(interceptors=[CachedChain([ReleaseInterceptor(), recorder])])
    handler = grpc.unary_unary_rpc_method_handler(echo)
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("test.Echo", {"Echo": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield channel, recorder
    finally:
        await channel.close()
        await server.stop(0)


async def test_composed_once_but_every_call_runs_with_its_own_metadata(
    served: tuple[grpc.aio.Channel, Recorder],
) -> None:
    channel, recorder = served
    call = channel.unary_unary(ECHO)
    for who in ("alice", "bob", "carol"):
        assert await call(who.encode(), metadata=(("caller", who),)) == who.encode()
    assert recorder.callers == [f"{ECHO} alice", f"{ECHO} bob", f"{ECHO} carol"]
    # Composed once, and without any caller's metadata in the cached chain.
    assert recorder.composed == [(ECHO, ())]


async def test_unknown_methods_stay_unimplemented_and_are_not_cached(
    served: tuple[grpc.aio.Channel, Recorder],
) -> None:
    channel, recorder = served
    for _ in range(2):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await channel.unary_unary(UNKNOWN)(b"x")
        assert err.value.code() is grpc.StatusCode.UNIMPLEMENTED
    assert recorder.composed == [] and recorder.callers == []


async def test_a_new_handler_for_a_method_is_composed_afresh() -> None:
    recorder = Recorder()
    chain = CachedChain([recorder])
    first = grpc.unary_unary_rpc_method_handler(echo)
    second = grpc.unary_unary_rpc_method_handler(echo)

    class Details(grpc.HandlerCallDetails):  # type: ignore[misc]
        method = ECHO
        invocation_metadata = (("caller", "x"),)

    async def gives(handler: grpc.RpcMethodHandler) -> grpc.RpcMethodHandler | None:
        async def continuation(_d: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler:
            return handler

        return await chain.intercept_service(continuation, Details())

    a = await gives(first)
    assert await gives(first) is a
    b = await gives(second)
    assert b is not a and len(recorder.composed) == 2
