"""The client's address, for per-IP login limits and the audit trail.

gRPC gives "ipv4:203.0.113.7:53122" or "ipv6:[2001:db8::1]:53122". Behind the Envoy gateway
every call comes from Envoy's address, so with `trust_forwarded_for` the last hop of
x-forwarded-for (the one Envoy appended, which a client cannot forge) is used instead. Only
enable it when the gRPC port is reachable through the proxy alone.
"""

from __future__ import annotations

import grpc


def client_ip(context: grpc.aio.ServicerContext, *, trust_forwarded_for: bool = False) -> str:
    if trust_forwarded_for:
        for key, value in context.invocation_metadata() or ():
            if key == "x-forwarded-for" and isinstance(value, str) and value.strip():
                return value.split(",")[-1].strip()[:64]
    return peer_ip(context.peer() or "")


def peer_ip(peer: str) -> str:
    kind, _, rest = peer.partition(":")
    if kind == "ipv4":
        return rest.rsplit(":", 1)[0]
    if kind == "ipv6":
        return rest.rsplit(":", 1)[0].strip("[]")
    return peer[:64] or "unknown"
