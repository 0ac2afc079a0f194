"""Server basics: health per service, reflection, UNIMPLEMENTED answers, database outage."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from stratopt.v1 import auth_pb2, auth_pb2_grpc

from stratopt.server import app
from stratopt.server.app import SERVICES, Runtime, Server, servicers
from stratopt.server.settings import Settings
from tests.conftest import JWT_SECRET, LiveServer, free_port
from tests.integration.helpers import call_error


def test_health_per_service_and_reflection(live_server: LiveServer) -> None:
    with live_server.channel() as ch:
        health = health_pb2_grpc.HealthStub(ch)
        for name in ["", *SERVICES]:
            r = health.Check(health_pb2.HealthCheckRequest(service=name))
            assert r.status == health_pb2.HealthCheckResponse.SERVING, name
        unknown = call_error(health.Check, health_pb2.HealthCheckRequest(service="nope.Service"))
        assert unknown.code() == grpc.StatusCode.NOT_FOUND
        refl = reflection_pb2_grpc.ServerReflectionStub(ch)
        resp = next(
            iter(
                refl.ServerReflectionInfo(
                    iter([reflection_pb2.ServerReflectionRequest(list_services="")])
                )
            )
        )
        names = {s.name for s in resp.list_services_response.service}
        assert set(SERVICES) <= names


async def test_unbuilt_rpcs_say_unimplemented_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every RPC is built today; a servicer that lacks one (a newer contract than the
    server) still answers through the whole interceptor chain with UNIMPLEMENTED, naming it."""

    def without_auth_servicer(rt: Runtime) -> list[Any]:
        built = [s for s in servicers(rt) if not isinstance(s, auth_pb2_grpc.AuthServiceServicer)]
        return [*built, auth_pb2_grpc.AuthServiceServicer()]

    monkeypatch.setattr(app, "servicers", without_auth_servicer)
    server = Server(_settings(tmp_path))
    port = await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await auth_pb2_grpc.AuthServiceStub(ch).Login(
                    auth_pb2.LoginRequest(username="someone", password="secret")
                )
    finally:
        await server.stop(0)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert "AuthService.Login is not implemented" in (raised.value.details() or "")


def _settings(data_dir: Path) -> Settings:
    return Settings(
        grpc_addr=f"127.0.0.1:{free_port()}",
        data_dir=data_dir,
        dev=True,
        jwt_secret=JWT_SECRET,
        sample_data=False,
        precompile=False,
    )


async def test_not_serving_while_database_unreachable(tmp_path: Path) -> None:
    server = Server(_settings(tmp_path))
    port = await server.start()
    try:
        assert server.runtime is not None
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            health = health_pb2_grpc.HealthStub(ch)
            name = "stratopt.v1.StrategyService"

            async def status() -> int:
                r = await health.Check(health_pb2.HealthCheckRequest(service=name))
                return int(r.status)

            assert await status() == health_pb2.HealthCheckResponse.SERVING

            async def down() -> bool:
                return False

            real_ping = server.runtime.db.ping
            server.runtime.db.ping = down  # type: ignore[method-assign]
            await _eventually(lambda: status(), health_pb2.HealthCheckResponse.NOT_SERVING)
            server.runtime.db.ping = real_ping  # type: ignore[method-assign]
            await _eventually(lambda: status(), health_pb2.HealthCheckResponse.SERVING)
    finally:
        await server.stop(0)


async def _eventually(get: object, want: int, timeout: float = 8.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        got = await get()  # type: ignore[operator]
        if got == want:
            return
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"health stayed {got}, wanted {want}")
        await asyncio.sleep(0.2)
