"""A bare grpc.aio server for bench/load.py: the floor a Python gRPC server reaches here.

It serves StrategyService.GetStrategy with a canned answer (the very response stratopt
gave for the load test's strategy, so both serialize the same message), on the same event
loop as stratopt (uvloop), with no interceptors, authentication or database. bench/load.py
runs it behind the same Envoy configuration as stratopt and prints stratopt's throughput
as a share of it: the cost of everything stratopt does per call beyond the gRPC transport.

    python bench/bare_server.py 127.0.0.1:PORT RESPONSE_FILE
"""

from __future__ import annotations

import sys
from pathlib import Path

import grpc
import uvloop
from stratopt.v1 import strategy_pb2, strategy_pb2_grpc


class Bare(strategy_pb2_grpc.StrategyServiceServicer):  # type: ignore[misc]
    def __init__(self, canned: strategy_pb2.GetStrategyResponse) -> None:
        self.canned = canned

    async def GetStrategy(
        self, request: strategy_pb2.GetStrategyRequest, context: grpc.aio.ServicerContext
    ) -> strategy_pb2.GetStrategyResponse:
        return self.canned


async def serve(addr: str, canned: strategy_pb2.GetStrategyResponse) -> None:
    server = grpc.aio.server()
    strategy_pb2_grpc.add_StrategyServiceServicer_to_server(Bare(canned), server)
    if server.add_insecure_port(addr) == 0:
        raise SystemExit(f"cannot listen on {addr}")
    await server.start()
    print("serving", flush=True)
    await server.wait_for_termination()


def main() -> None:
    addr, response_file = sys.argv[1], Path(sys.argv[2])
    canned = strategy_pb2.GetStrategyResponse.FromString(response_file.read_bytes())
    uvloop.run(serve(addr, canned))


if __name__ == "__main__":
    main()
