"""Gives every RPC a servicer has not implemented a clear UNIMPLEMENTED answer.

The generated base classes answer "Method not implemented!" through a sync function that
grpc.aio reports inconsistently; this names the RPC and says it is planned instead.
"""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.descriptor import ServiceDescriptor

from stratopt.errors import Unimplemented


def fill_unimplemented(servicer: Any, service: ServiceDescriptor) -> Any:
    """Binds an UNIMPLEMENTED handler for each method only the generated base class has
    (methods from our own classes, mixins included, count as implemented)."""
    for m in service.methods:
        impl = getattr(type(servicer), m.name, None)
        if impl is None or getattr(impl, "__module__", "").endswith("_pb2_grpc"):
            setattr(servicer, m.name, _unimplemented(service.name, m.name))
    return servicer


def _unimplemented(service: str, method: str) -> Any:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        raise Unimplemented(f"{service}.{method} is not implemented yet in this server version")

    return handler
