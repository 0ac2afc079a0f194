"""Services registered with grpc.aio as generic handlers only.

The `add_*Servicer_to_server` functions that grpcio-tools generates register each service
twice: as a generic handler and, since grpcio 1.62, method by method with gRPC core
("registered methods"). For a server with registered methods, grpc.aio keeps one
pending call request per method and, for every call it accepts, waits on all of them
with `asyncio.wait(..., FIRST_COMPLETED)`. That adds and removes a callback on each
pending request. Our 87 methods made this about a tenth of a GetStrategy's server CPU
(bench/load.py). A generic handler is one pending request for all methods, and finding a
call's handler is a dictionary lookup per service.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import grpc


class GenericOnly:
    """What the generated `add_*_to_server` functions need of a server, minus the
    per-method registration (see the module's docstring)."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Sequence[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Any]) -> None:
        """Left out on purpose: the generic handler added with them serves these methods."""
