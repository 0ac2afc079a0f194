"""Outermost interceptor: a request id for every call, and Prometheus metrics of every call.

The request id (`api/request_id.py`) is set before any other interceptor runs, so every log
line of the call carries it, and it goes back to the client in the trailing metadata (where
errors travel too), and in the initial metadata of server streams and of REST calls, whose
clients only see headers (`api/response_headers.py`). Other interceptors may send or set
metadata too (the rate-limit headers): the context handed down merges the id into whatever
they send, because gRPC allows initial metadata to be sent only once.

Metrics, on the registry the server exposes at STRATOPT_METRICS_ADDR (server/metrics.py):
calls by service, method and status code; the latency of unary and client-streaming calls
(server streams last as long as the client listens, so they are counted, not timed); open
server streams; backtests run; and refusals by the rate limiter and the stream cap.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import grpc
from grpc_interceptor import AsyncServerInterceptor
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stratopt.api.request_id import HEADER, accept_or_make, set_request_id
from stratopt.api.response_headers import wants_initial_metadata

LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
)  # fmt: skip
BACKTEST_METHOD = "/stratopt.v1.BacktestService/RunBacktest"
Metadata = Sequence[tuple[str, str | bytes]]


class RpcMetrics:
    """The call metrics, registered on one registry (one per server, so several servers in
    one process, as in tests, do not collide)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "stratopt_rpc_requests",
            "RPCs finished, by service, method and gRPC status code",
            ["service", "method", "code"],
            registry=registry,
        )
        self.latency = Histogram(
            "stratopt_rpc_duration_seconds",
            "Time to answer unary and client-streaming RPCs",
            ["service", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.active_streams = Gauge(
            "stratopt_rpc_active_streams",
            "Server-streaming RPCs open now",
            ["service", "method"],
            registry=registry,
        )
        self.backtests = Counter(
            "stratopt_backtests",
            "Backtests run through RunBacktest, by gRPC status code",
            ["code"],
            registry=registry,
        )
        self.refusals = Counter(
            "stratopt_rate_limit_refusals",
            "Calls refused by a rate limit or the per-user stream cap, by category",
            ["category"],
            registry=registry,
        )
        self._methods: dict[str, _MethodMetrics] = {}

    def refused(self, category: str) -> None:
        """Called by the rate-limit and stream-cap interceptors when they refuse a call."""
        self.refusals.labels(category).inc()

    def of(self, method_name: str) -> _MethodMetrics:
        """The metrics of one method, with their label lookups done once, not per call."""
        found = self._methods.get(method_name)
        if found is None:
            found = self._methods[method_name] = _MethodMetrics(self, method_name)
        return found


class _MethodMetrics:
    """One method's label children. Methods are only the registered ones (gRPC never runs
    interceptors for an unknown method), so the label sets stay bounded."""

    def __init__(self, metrics: RpcMetrics, method_name: str) -> None:
        self.labels = split_method(method_name)
        self.metrics = metrics
        self.latency = metrics.latency.labels(*self.labels)
        self.streams = metrics.active_streams.labels(*self.labels)
        self.is_backtest = method_name == BACKTEST_METHOD
        self._done: dict[str, Any] = {}

    def done(self, code: str) -> None:
        counter = self._done.get(code)
        if counter is None:
            counter = self._done[code] = self.metrics.requests.labels(*self.labels, code)
        counter.inc()
        if self.is_backtest:
            self.metrics.backtests.labels(code).inc()


def split_method(method_name: str) -> tuple[str, str]:
    """'/stratopt.v1.StrategyService/GetStrategy' -> ('stratopt.v1.StrategyService',
    'GetStrategy')."""
    service, _, method = method_name.lstrip("/").rpartition("/")
    return service, method


class _Context:
    """The servicer context with the request id merged into the metadata others send.

    It also keeps the request metadata: grpc.aio builds a new tuple of it on every
    `invocation_metadata()`, and four interceptors read it on every call."""

    def __init__(
        self, inner: grpc.aio.ServicerContext, request_id: str, metadata: Metadata
    ) -> None:
        self._inner = inner
        self._metadata = metadata
        self._pair = (HEADER, request_id)
        self.initial_sent = False
        inner.set_trailing_metadata((self._pair,))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def invocation_metadata(self) -> Metadata:
        return self._metadata

    def _with_id(self, metadata: Metadata) -> tuple[tuple[str, str | bytes], ...]:
        return (*(kv for kv in metadata if kv[0] != HEADER), self._pair)

    async def send_initial_metadata(self, metadata: Metadata) -> None:
        self.initial_sent = True
        await self._inner.send_initial_metadata(self._with_id(metadata))

    def set_trailing_metadata(self, metadata: Metadata) -> None:
        self._inner.set_trailing_metadata(self._with_id(metadata))

    async def send_request_id(self) -> None:
        """Sends the id as initial metadata, unless initial metadata already went out."""
        if self.initial_sent:
            return
        self.initial_sent = True
        # The call may be over already; the id is advisory.
        with contextlib.suppress(Exception):
            await self._inner.send_initial_metadata((self._pair,))

    def code_name(self) -> str:
        code = self._inner.code() if hasattr(self._inner, "code") else None
        if isinstance(code, grpc.StatusCode) and code is not grpc.StatusCode.OK:
            return code.name
        return "UNKNOWN"


class MetricsInterceptor(AsyncServerInterceptor):
    def __init__(self, metrics: RpcMetrics) -> None:
        self.metrics = metrics

    async def intercept(
        self,
        method: Callable[..., Any],
        request_or_iterator: Any,
        context: grpc.aio.ServicerContext,
        method_name: str,
    ) -> Any:
        metadata = context.invocation_metadata() or ()
        offered = next((str(v) for k, v in metadata if k == HEADER), None)
        request_id = accept_or_make(offered)
        set_request_id(request_id)
        ctx = _Context(context, request_id, metadata)
        m = self.metrics.of(method_name)
        start = time.perf_counter()
        try:
            result = method(request_or_iterator, ctx)
            if hasattr(result, "__aiter__"):
                return self._stream(result, ctx, m)
            response = await result
        except asyncio.CancelledError:
            m.done("CANCELLED")
            m.latency.observe(time.perf_counter() - start)
            raise
        except BaseException:
            m.done(ctx.code_name())
            m.latency.observe(time.perf_counter() - start)
            raise
        if wants_initial_metadata(ctx):
            await ctx.send_request_id()
        m.done("OK")
        m.latency.observe(time.perf_counter() - start)
        return response

    async def _stream(
        self, stream: AsyncIterator[Any], ctx: _Context, m: _MethodMetrics
    ) -> AsyncIterator[Any]:
        gauge = m.streams
        gauge.inc()
        code = "OK"
        try:
            async for item in stream:
                await ctx.send_request_id()
                yield item
        except (asyncio.CancelledError, GeneratorExit):
            code = "CANCELLED"
            raise
        except BaseException:
            code = ctx.code_name()
            raise
        finally:
            gauge.dec()
            m.done(code)
