"""stratopt quickstart: manage a strategy over gRPC with the Python stubs.

Run it against a server started with `stratopt serve --dev`:

    STRATOPT_TOKEN=... python examples/python/quickstart.py

Environment:
    STRATOPT_SERVER    host:port of the gRPC server (default 127.0.0.1:50051)
    STRATOPT_TOKEN     an access token, sent as `authorization: Bearer <token>`
    STRATOPT_API_KEY   or an API key, sent as `x-api-key`
    STRATOPT_USERNAME / STRATOPT_PASSWORD
                       or log in with AuthService.Login to get a token

The flow is the same as the Go and TypeScript examples under examples/: list the strategy
types, show the field errors of an invalid create, create a strategy, page through the list,
read it back, update one field with a field mask, delete it, and see NOT_FOUND afterwards.
"""

from __future__ import annotations

import os
import sys
import uuid

import grpc
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from stratopt.v1 import auth_pb2, auth_pb2_grpc, common_pb2, strategy_pb2, strategy_pb2_grpc

Metadata = list[tuple[str, str]]


def credentials(channel: grpc.Channel) -> Metadata:
    """Call metadata that authenticates every request, from whichever credential is set."""
    if token := os.environ.get("STRATOPT_TOKEN"):
        return [("authorization", f"Bearer {token}")]
    if api_key := os.environ.get("STRATOPT_API_KEY"):
        return [("x-api-key", api_key)]
    username = os.environ.get("STRATOPT_USERNAME")
    password = os.environ.get("STRATOPT_PASSWORD")
    if username and password:
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        reply = auth.Login(auth_pb2.LoginRequest(username=username, password=password))
        return [("authorization", f"Bearer {reply.access_token}")]
    sys.exit("set STRATOPT_TOKEN, STRATOPT_API_KEY or STRATOPT_USERNAME and STRATOPT_PASSWORD")


def sma_crossover(name: str, fast: int, slow: int) -> strategy_pb2.Strategy:
    return strategy_pb2.Strategy(
        name=name,
        description="created by the Python quickstart",
        strategy_type="sma_crossover",
        parameters={
            "fast": common_pb2.ParameterValue(int_value=fast),
            "slow": common_pb2.ParameterValue(int_value=slow),
        },
        symbols=["BTCUSDT"],
        timeframe="1h",
        tags=["quickstart"],
    )


def field_violations(err: grpc.RpcError) -> list[tuple[str, str]]:
    """The google.rpc.BadRequest field violations the server attaches to INVALID_ARGUMENT."""
    status = rpc_status.from_call(err)
    if status is None:
        return []
    out: list[tuple[str, str]] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            out += [(v.field, v.description) for v in bad.field_violations]
    return out


def show_invalid_create(stub: strategy_pb2_grpc.StrategyServiceStub, md: Metadata) -> None:
    """fast must be below slow and names cannot be empty: the server reports both at once."""
    bad = sma_crossover("", fast=60, slow=20)
    try:
        stub.CreateStrategy(strategy_pb2.CreateStrategyRequest(strategy=bad), metadata=md)
    except grpc.RpcError as err:
        if err.code() != grpc.StatusCode.INVALID_ARGUMENT:
            raise
        print(f"invalid create -> {err.code().name}")
        for field, description in field_violations(err):
            print(f"  {field}: {description}")
        return
    sys.exit("the invalid create unexpectedly succeeded")


def list_all(stub: strategy_pb2_grpc.StrategyServiceStub, md: Metadata) -> list[str]:
    """Follows next_page_token until the last page, a few strategies per page."""
    names: list[str] = []
    token = ""
    while True:
        page = stub.ListStrategies(
            strategy_pb2.ListStrategiesRequest(page_size=5, page_token=token), metadata=md
        )
        names += [s.name for s in page.strategies]
        token = page.next_page_token
        if not token:
            return names


def main() -> None:
    server = os.environ.get("STRATOPT_SERVER", "127.0.0.1:50051")
    with grpc.insecure_channel(server) as channel:
        md = credentials(channel)
        stub = strategy_pb2_grpc.StrategyServiceStub(channel)

        types = stub.ListStrategyTypes(strategy_pb2.ListStrategyTypesRequest(), metadata=md)
        print(f"{len(types.strategy_types)} strategy types:")
        for t in types.strategy_types:
            params = ", ".join(p.name for p in t.parameters)
            print(f"  {t.name:<24} ({params})")

        show_invalid_create(stub, md)

        name = f"quickstart-{uuid.uuid4().hex[:8]}"
        created = stub.CreateStrategy(
            strategy_pb2.CreateStrategyRequest(strategy=sma_crossover(name, fast=10, slow=50)),
            metadata=md,
        ).strategy
        print(f"created {created.name} id={created.id} version={created.version}")

        names = list_all(stub, md)
        print(f"listed {len(names)} strategies; ours is listed: {name in names}")

        got = stub.GetStrategy(
            strategy_pb2.GetStrategyRequest(strategy_id=created.id), metadata=md
        ).strategy
        fast, slow = got.parameters["fast"].int_value, got.parameters["slow"].int_value
        print(f"read back {got.name}: fast={fast} slow={slow}")

        change = strategy_pb2.Strategy(id=created.id, description="tuned for hourly bars")
        updated = stub.UpdateStrategy(
            strategy_pb2.UpdateStrategyRequest(
                strategy=change, update_mask=field_mask_pb2.FieldMask(paths=["description"])
            ),
            metadata=md,
        ).strategy
        print(f"updated description={updated.description!r} version={updated.version}")

        stub.DeleteStrategy(strategy_pb2.DeleteStrategyRequest(strategy_id=created.id), metadata=md)
        print(f"deleted {created.id}")

        try:
            stub.GetStrategy(strategy_pb2.GetStrategyRequest(strategy_id=created.id), metadata=md)
        except grpc.RpcError as err:
            print(f"get after delete -> {err.code().name}: {err.details()}")
            if err.code() != grpc.StatusCode.NOT_FOUND:
                raise
        else:
            sys.exit("the deleted strategy is still there")


if __name__ == "__main__":
    main()
