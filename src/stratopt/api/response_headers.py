"""Where a unary call's own response metadata (rate-limit headers, request id) goes.

REST clients can only read it as HTTP headers: Envoy's JSON transcoder turns initial
metadata into response headers and drops the trailers of a successful unary call. gRPC and
gRPC-Web clients read trailers as easily as headers, and for them initial metadata is not
free: grpc.aio cannot put it in the batch that carries the response, so sending it is a
separate operation per call, about a tenth of a GetStrategy's server CPU (docs/operations.md).

So a unary call sends initial metadata only when it came through the transcoder, which marks
what it forwards with the REST path it was asked for. Every call carries the same values in
its trailing metadata, where errors carry them too. Server streams are not concerned: their
headers go with the first message (`ratelimit_interceptor._headers_with_first_message`).
"""

from __future__ import annotations

import grpc

# Set by Envoy's JSON transcoder on every request it turns into a gRPC call. A gRPC client
# that sends it itself only gets its headers twice.
TRANSCODED_MARKER = "x-envoy-original-path"


def wants_initial_metadata(context: grpc.aio.ServicerContext) -> bool:
    """Whether this call's client reads response metadata only from the headers (REST)."""
    return any(key == TRANSCODED_MARKER for key, _ in context.invocation_metadata() or ())
