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
    """Binds an UNIMPLEMENTED handler for each method the servicer does not override."""
    cls = type(servicer)
    for m in service.methods:
        impl = getattr(cls, m.name, None)
        base_impl = None
        for base in cls.__mro__[1:]:
            if m.name in base.__dict__:
                base_impl = base.__dict__[m.name]
                break
        if impl is None or (impl is base_impl and m.name not in cls.__dict__):
            setattr(servicer, m.name, _unimplemented(service.name, m.name))
    return servicer


def _unimplemented(service: str, method: str) -> Any:
    async def handler(request: Any, context: grpc.aio.ServicerContext) -> Any:
        raise Unimplemented(f"{service}.{method} is not implemented yet in this server version")

    return handler
