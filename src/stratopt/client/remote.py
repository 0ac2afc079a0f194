"""The connection of a client command to a server: address, the library client, errors."""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from stratopt.client.auth import client_for
from stratopt.client.channels import DEFAULT_TARGET
from stratopt.client.sync_client import Client
from stratopt.v1 import common_pb2 as c

DEFAULT_SERVER = DEFAULT_TARGET
T = TypeVar("T")


def default_server() -> str:
    return os.environ.get("STRATOPT_SERVER") or DEFAULT_SERVER


def add_server(p: argparse.ArgumentParser, *, optional: bool = False) -> None:
    """``--server ADDR`` (default $STRATOPT_SERVER or 127.0.0.1:50051).

    With ``optional`` the command runs locally unless ``--server`` is given, with or
    without an address."""
    if optional:
        p.add_argument(
            "--server",
            nargs="?",
            const=default_server(),
            default=None,
            metavar="ADDR",
            help="run on a server instead of locally (ADDR: env STRATOPT_SERVER or "
            f"{DEFAULT_SERVER})",
        )
    else:
        p.add_argument(
            "--server",
            default=default_server(),
            metavar="ADDR",
            help="server address (env STRATOPT_SERVER)",
        )


class Remote:
    """The command's `Client` (the library: credentials, refresh, retries); ``stub(Cls)``
    makes any generated stub on its channel."""

    def __init__(self, server: str) -> None:
        self.server = server
        self.client: Client = client_for(server)

    def stub(self, cls: Callable[[grpc.Channel], T]) -> T:
        return self.client.stub(cls)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> Remote:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def describe_rpc_error(e: grpc.RpcError) -> str:
    """``CODE: details`` and one line per BadRequest field violation."""
    code = e.code().name if hasattr(e, "code") else "UNKNOWN"
    details = e.details() if hasattr(e, "details") else str(e)
    lines = [f"{code}: {details}"]
    try:
        status = rpc_status.from_call(e)  # type: ignore[arg-type]
    except Exception:  # a local channel error has no status details
        status = None
    if status is not None:
        for detail in status.details:
            if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
                bad = error_details_pb2.BadRequest()
                detail.Unpack(bad)
                for v in bad.field_violations:
                    text = f"{v.field}: {v.description}"
                    if details.strip() != text and not details.endswith(text):
                        lines.append(f"  {text}")
    if code == "UNAVAILABLE":
        lines.append("  is the server running? start one with `stratopt serve --dev`")
    return "\n".join(lines)


def param_to_pb(value: int | float | str) -> c.ParameterValue:
    if isinstance(value, bool):
        return c.ParameterValue(int_value=int(value))
    if isinstance(value, int):
        return c.ParameterValue(int_value=value)
    if isinstance(value, float):
        return c.ParameterValue(double_value=value)
    return c.ParameterValue(string_value=value)


def param_from_pb(v: c.ParameterValue) -> int | float | str:
    kind = v.WhichOneof("kind")
    return getattr(v, kind) if kind else ""


def params_from_pb(m: Any) -> dict[str, int | float | str]:
    return {k: param_from_pb(v) for k, v in m.items()}
