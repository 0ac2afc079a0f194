"""Services reach grpc.aio as generic handlers only (server/generic_handlers.py), and are
served that way: a real server answers health checks and reflection."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection, reflection_pb2, reflection_pb2_grpc

from stratopt.server.generic_handlers import GenericOnly


class Recording:
    def __init__(self) -> None:
        self.generic: list[Any] = []
        self.registered: list[str] = []

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self.generic.extend(handlers)

    def add_registered_method_handlers(self, service: str, handlers: Any) -> None:
        self.registered.append(service)


def test_only_the_generic_handler_is_passed_on() -> None:
    server: Any = Recording()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), GenericOnly(server))
    assert len(server.generic) == 1 and server.registered == []


async def list_services() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
    yield reflection_pb2.ServerReflectionRequest(list_services="")


async def test_a_server_built_so_answers_calls() -> None:
    server = grpc.aio.server()
    services: Any = GenericOnly(server)
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), services)
    reflection_pb2_grpc.add_ServerReflectionServicer_to_server(
        reflection.aio.ReflectionServicer([health.SERVICE_NAME, reflection.SERVICE_NAME]),
        services,
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as ch:
            reply = await health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest())
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
            stub = reflection_pb2_grpc.ServerReflectionStub(ch)
            names = set()
            async for answer in stub.ServerReflectionInfo(list_services()):
                names |= {s.name for s in answer.list_services_response.service}
            assert health.SERVICE_NAME in names
    finally:
        await server.stop(None)
