"""Helpers for the fault suite: an in-process server, logins, polling with deadlines.

The server runs in the test's own event loop (the same `Server` that `stratopt serve`
runs), so a test can look inside it: its asyncio tasks, stream-cap counters and upload
budget. Faults are real: a lock held by another SQLite connection, a PostgreSQL server
stopped and started, a full filesystem.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import grpc
from google.protobuf import duration_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from stratopt.v1 import auth_pb2, auth_pb2_grpc
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import market_data_pb2 as mpb
from stratopt.v1 import market_data_pb2_grpc as mg
from stratopt.v1 import strategy_pb2 as spb
from stratopt.v1 import strategy_pb2_grpc as sg

from stratopt.server.app import Server
from stratopt.server.settings import Settings, from_env
from tests.conftest import DEMO_PASSWORDS, JWT_SECRET, TEST_SECURITY_ENV, free_port

T = TypeVar("T")
Metadata = list[tuple[str, str]]


def fault_settings(data_dir: Path, **overrides: Any) -> Settings:
    """Development settings on a free port, with the suite's cheap hashing and wide limits."""
    base = from_env(TEST_SECURITY_ENV)
    defaults: dict[str, Any] = {
        "grpc_addr": f"127.0.0.1:{free_port()}",
        "data_dir": data_dir,
        "dev": True,
        "jwt_secret": JWT_SECRET,
        "sample_data": False,
        "precompile": False,
        "workers": 0,
    }
    return base.with_overrides(**{**defaults, **overrides})


async def start(settings: Settings) -> tuple[Server, str]:
    server = Server(settings)
    port = await server.start()
    return server, f"127.0.0.1:{port}"


async def login(ch: grpc.aio.Channel, username: str = "trader") -> Metadata:
    reply = await auth_pb2_grpc.AuthServiceStub(ch).Login(
        auth_pb2.LoginRequest(username=username, password=DEMO_PASSWORDS[username])
    )
    return [("authorization", f"Bearer {reply.access_token}")]


async def health_status(ch: grpc.aio.Channel, service: str = "") -> int:
    r = await health_pb2_grpc.HealthStub(ch).Check(
        health_pb2.HealthCheckRequest(service=service), timeout=5
    )
    return int(r.status)


SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def eventually(
    check: Callable[[], Awaitable[T | None]],
    what: str | Callable[[], str],
    timeout: float = 15.0,
) -> T:
    """Polls `check` until it returns something truthy, failing with `what` (or what it
    returns, computed then) at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout:.0f}s: {what() if callable(what) else what}"
            )
        await asyncio.sleep(0.05)


async def rpc_error(call: Awaitable[Any]) -> grpc.aio.AioRpcError:
    try:
        await call
    except grpc.aio.AioRpcError as e:
        return e
    raise AssertionError("expected the call to fail")


def retry_delay(err: grpc.aio.AioRpcError) -> float:
    """Seconds of the RetryInfo detail (0 when there is none)."""
    status = _rich(err)
    for d in status.details if status else ():
        if d.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            d.Unpack(info)
            delay: duration_pb2.Duration = info.retry_delay
            return delay.seconds + delay.nanos / 1e9
    return 0.0


def reason(err: grpc.aio.AioRpcError) -> str:
    status = _rich(err)
    for d in status.details if status else ():
        if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            d.Unpack(info)
            return str(info.reason)
    return ""


def _rich(err: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            st = status_pb2.Status()
            st.ParseFromString(value)
            return st
    return None


async def dataset(ch: grpc.aio.Channel, md: Metadata, bars: int, name: str = "fault") -> str:
    reply = await mg.MarketDataServiceStub(ch).GenerateSyntheticDataset(
        mpb.GenerateSyntheticDatasetRequest(name=name, symbol="FLT", bar_count=bars, seed=3),
        metadata=md,
    )
    return str(reply.dataset.id)


async def paper_run(
    ch: grpc.aio.Channel, md: Metadata, dataset_id: str, bars_per_second: float
) -> str:
    """Starts a paper strategy replaying `dataset_id`; returns the strategy id."""
    strategies = sg.StrategyServiceStub(ch)
    strat = await strategies.CreateStrategy(
        spb.CreateStrategyRequest(
            strategy=spb.Strategy(
                name="paper",
                strategy_type="sma_crossover",
                parameters={
                    "fast": c.ParameterValue(int_value=3),
                    "slow": c.ParameterValue(int_value=8),
                },
            )
        ),
        metadata=md,
    )
    await strategies.StartStrategy(
        spb.StartStrategyRequest(
            strategy_id=strat.strategy.id, dataset_id=dataset_id, bars_per_second=bars_per_second
        ),
        metadata=md,
    )
    return str(strat.strategy.id)


async def performance(ch: grpc.aio.Channel, md: Metadata, strategy_id: str) -> Any:
    reply = await sg.StrategyServiceStub(ch).GetPerformance(
        spb.GetPerformanceRequest(strategy_id=strategy_id), metadata=md
    )
    return reply.performance
