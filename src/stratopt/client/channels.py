"""Channel settings shared by the sync and async clients: address, TLS, gRPC options."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import grpc

DEFAULT_TARGET = "127.0.0.1:50051"
ChannelOptions = Sequence[tuple[str, Any]]

KEEPALIVE: tuple[tuple[str, Any], ...] = (
    # Long watches sit idle between events; a ping every 30 s finds a dead peer (and keeps
    # NAT and proxies from dropping the connection) instead of waiting forever.
    ("grpc.keepalive_time_ms", 30_000),
    ("grpc.keepalive_timeout_ms", 10_000),
    ("grpc.keepalive_permit_without_calls", 0),
)


def default_target() -> str:
    """$STRATOPT_SERVER, else the address `stratopt serve` listens on by default."""
    return os.environ.get("STRATOPT_SERVER") or DEFAULT_TARGET


def channel_credentials(
    tls: bool | grpc.ChannelCredentials, root_certificates: bytes | None = None
) -> grpc.ChannelCredentials | None:
    """None for a plaintext channel; system roots (or ``root_certificates``) with ``tls=True``;
    a ``grpc.ChannelCredentials`` is used as given (client certificates and so on)."""
    if isinstance(tls, grpc.ChannelCredentials):
        return tls
    if tls or root_certificates:
        return grpc.ssl_channel_credentials(root_certificates=root_certificates)
    return None


def options(extra: ChannelOptions) -> list[tuple[str, Any]]:
    given = {k for k, _ in extra}
    return [*(o for o in KEEPALIVE if o[0] not in given), *extra]
