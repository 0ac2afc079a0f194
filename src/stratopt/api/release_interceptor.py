"""The very outermost interceptor: a call that ends in an abort lets go of its request at once.

grpc.aio keeps the `AbortError` of an aborted call on the call's internal state
(`RPCState.abort_exception`), and that state is reachable from the servicer context. The
error's traceback holds the frames of every interceptor and servicer it passed through; each
of those frames holds the request and the context, and the error's `__context__` (the
domain error that the errors interceptor answered, e.g. a field over its bound) holds the
frames below that. So every refused call left a reference cycle

    call state -> AbortError -> traceback -> frame -> context -> call state
                                                   -> request

that only a full garbage collection could free. Full collections are rare in a server whose
long-lived objects are frozen at start (server/app.py) and whose largest allocations are
protobuf messages, which the collector does not count: a refused 50 MB request (parsed, a
few hundred MB) stayed in memory until one happened, and a few of them in a row took the
server over a gigabyte (issue 14, "bounded memory").

Here, as the abort leaves the last interceptor, the locals of the frames it passed through
(all of them finished: this call's own interceptors and servicer) are cleared and its
chained errors are dropped (the errors interceptor has logged them already), so the request
is freed by reference counting when gRPC is done with the call. The traceback itself stays
readable. Only `AbortError` is handled: gRPC creates it inside this very call, so its frames
are this call's own; other errors may carry frames of other tasks, which must not be cleared.
"""

from __future__ import annotations

import contextlib
import traceback
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]


def release(exc: grpc.aio.AbortError) -> None:
    """Breaks the cycle between an aborted call's state and the frames that hold its request."""
    traceback.clear_frames(exc.__traceback__)  # skips frames still running, like the caller's
    exc.__context__ = None
    exc.__cause__ = None


class ReleaseInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Must come first in the server's interceptor list, so every other frame of the call has
    finished when an abort passes here."""

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _unary(handler.unary_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(
                _unary(handler.stream_unary),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(
                _stream(handler.unary_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(
                _stream(handler.stream_stream),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
        return handler


def _unary(inner: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    async def call(request: Any, context: Any) -> Any:
        try:
            return await inner(request, context)
        except grpc.aio.AbortError as exc:
            release(exc)
            # This frame goes into the traceback as the error leaves: it must not hold them.
            del request, context
            raise

    return call


def _stream(inner: Callable[..., Any]) -> Callable[..., AsyncIterator[Any]]:
    async def call(request: Any, context: Any) -> AsyncIterator[Any]:
        try:
            # Closed here, not left to the garbage collector, when the client goes away.
            async with contextlib.aclosing(inner(request, context)) as stream:
                async for item in stream:
                    yield item
        except grpc.aio.AbortError as exc:
            release(exc)
            del request, context
            raise

    return call
