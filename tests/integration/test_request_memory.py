"""A refused request must not stay in the server's memory (issue 14, item 6: bounded memory).

Before: every refused call stayed in a reference cycle with gRPC's record of its abort until
a full garbage collection, and large unary requests were parsed whole before being refused
(a 50 MB flat string raised RSS by about 50 MB for good, a 52 MB request with nested lists by
about 200 MB; the fuzz suite's server went over 1.5 GB). Now an aborted call lets go of its
request at once (api/release_interceptor.py), a unary request over 4 MiB is refused before it
is parsed, and the memory gRPC read it into is handed back (api/limits.py, api/memory_trim.py).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from stratopt.v1 import optimization_pb2 as opb
from stratopt.v1 import optimization_pb2_grpc as og
from stratopt.v1 import rules_pb2 as rpb
from stratopt.v1 import rules_pb2_grpc as rpbg
from stratopt.v1 import strategy_pb2 as spb
from stratopt.v1 import strategy_pb2_grpc as spbg

from stratopt.api.errors_interceptor import ErrorInterceptor
from stratopt.api.limits import REQUEST_BYTES_DEFAULT, RequestLimitsInterceptor
from stratopt.api.release_interceptor import ReleaseInterceptor
from stratopt.errors import InvalidArgument
from tests.conftest import LiveServer, start_server, stop_server

REFUSED_REQUESTS = 5
RSS_GROWTH_BUDGET_MB = 60
"""For five refused 50 MB requests, together; each one alone used to keep 50-200 MB."""


class Refusing(spbg.StrategyServiceServicer):
    """Refuses every request after looking at it, as a servicer refusing bad input does."""

    async def GetStrategy(  # type: ignore[override]
        self, request: spb.GetStrategyRequest, context: grpc.aio.ServicerContext
    ) -> spb.GetStrategyResponse:
        raise InvalidArgument.field("strategy_id", f"no strategy {request.strategy_id[:8]}")

    async def StreamSignals(  # type: ignore[override]
        self, request: spb.StreamSignalsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[spb.StreamSignalsResponse]:
        yield spb.StreamSignalsResponse()
        raise InvalidArgument.field("strategy_id", f"no strategy {request.strategy_id[:8]}")


def alive(cls: type) -> int:
    return sum(1 for o in gc.get_objects() if type(o) is cls)


@pytest.mark.parametrize(
    ("method", "cls", "streaming"),
    [
        ("GetStrategy", spb.GetStrategyRequest, False),
        ("StreamSignals", spb.StreamSignalsRequest, True),
    ],
)
async def test_an_aborted_call_frees_its_request_without_the_garbage_collector(
    method: str, cls: type, streaming: bool
) -> None:
    server = grpc.aio.server(
        interceptors=[ReleaseInterceptor(), ErrorInterceptor(), RequestLimitsInterceptor()]
    )
    spbg.add_StrategyServiceServicer_to_server(Refusing(), server)  # type: ignore[abstract]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    # Raw bytes on the client side: every `cls` message in this process is the server's.
    raw = cls(strategy_id="s" * 32).SerializeToString()
    gc.collect()
    gc.disable()  # only reference counting may free what the calls leave
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            path = f"/stratopt.v1.StrategyService/{method}"
            for _ in range(3):
                with pytest.raises(grpc.aio.AioRpcError) as info:
                    if streaming:
                        async for _item in ch.unary_stream(path)(raw):
                            pass
                    else:
                        await ch.unary_unary(path)(raw)
                assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        for _ in range(50):  # the server finishes the call just after the client has its status
            if alive(cls) == 0:
                break
            await asyncio.sleep(0.02)
        assert alive(cls) == 0, "a refused request stayed in memory"
    finally:
        gc.enable()
        await server.stop(0)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv = start_server(tmp_path_factory.mktemp("request-memory"))
    yield srv
    stop_server(srv)


def rss_mb(srv: LiveServer) -> float:
    for line in Path(f"/proc/{srv.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def start_optimization(srv: LiveServer, ch: grpc.Channel, strategy_type: str) -> grpc.RpcError:
    req = opb.StartOptimizationRequest()
    req.spec.strategy_type = strategy_type
    with pytest.raises(grpc.RpcError) as info:
        og.OptimizationServiceStub(ch).StartOptimization(req, metadata=srv.md("admin"), timeout=60)
    return info.value


def test_refused_large_requests_do_not_raise_the_servers_memory(server: LiveServer) -> None:
    with server.channel() as ch:
        start_optimization(server, ch, "no_such_type")  # warm: the method's first call
        before = rss_mb(server)
        for _ in range(REFUSED_REQUESTS):
            e = start_optimization(server, ch, "x" * 50_000_000)
            assert e.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "request of 50,000,010 bytes" in (e.details() or "")
    deadline = time.monotonic() + 5  # the freed buffers go back to the system shortly after
    while (growth := rss_mb(server) - before) > RSS_GROWTH_BUDGET_MB:
        if time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert growth <= RSS_GROWTH_BUDGET_MB, f"RSS grew by {growth:.0f} MB"


def test_a_request_under_the_size_bound_reaches_the_field_checks(server: LiveServer) -> None:
    source = "x" * (REQUEST_BYTES_DEFAULT - 1_000)
    definition = rpb.UserDefinition(
        kind=rpb.USER_DEFINITION_KIND_STRATEGY, name="sma_crossover", source=source
    )
    with server.channel() as ch, pytest.raises(grpc.RpcError) as info:
        rpbg.UserDefinitionServiceStub(ch).CreateUserDefinition(
            rpb.CreateUserDefinitionRequest(definition=definition),
            metadata=server.md("admin"),
            timeout=30,
        )
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "definition.source: at most 200,000 characters" in (info.value.details() or "")
