"""Concurrent writes to one strategy, on SQLite and on PostgreSQL (issue 14, finding 1).

Every read-modify-write must be atomic: of N updates carrying the same etag exactly one
wins; N updates without an etag all land, each on its own version; of N deletes exactly one
succeeds. The history agrees with the row.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from sqlalchemy import create_engine, make_url, text
from stratopt.v1 import strategy_pb2 as pb
from stratopt.v1 import strategy_pb2_grpc as pbg

from tests.conftest import LiveServer, start_server, stop_server
from tests.tools import postgres_url

ROUNDS = 5


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LiveServer]:
    if request.param == "sqlite":
        srv = start_server(tmp_path)
        try:
            yield srv
        finally:
            stop_server(srv)
        return
    base = make_url(postgres_url())
    admin = create_engine(
        base.set(drivername="postgresql+psycopg", database="postgres"), isolation_level="AUTOCOMMIT"
    )
    name = f"stratopt_cc_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    db_url = base.set(database=name).render_as_string(hide_password=False)
    srv = start_server(tmp_path, {"STRATOPT_DATABASE_URL": db_url})
    try:
        yield srv
    finally:
        stop_server(srv)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def parallel(n: int, fn: Callable[[int], Any]) -> list[Any]:
    """Runs fn(0..n-1) at once; each result is the response or the grpc.RpcError."""

    def guarded(i: int) -> Any:
        try:
            return fn(i)
        except grpc.RpcError as e:
            return e

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(guarded, range(n)))


def new_strategy(stub: pbg.StrategyServiceStub, md: list[tuple[str, str]]) -> pb.Strategy:
    req = pb.CreateStrategyRequest(
        strategy=pb.Strategy(name=f"cc-{uuid.uuid4().hex[:8]}", strategy_type="sma_crossover")
    )
    return stub.CreateStrategy(req, metadata=md).strategy


def history(stub: pbg.StrategyServiceStub, md: list[tuple[str, str]], sid: str) -> list[Any]:
    events: list[Any] = []
    token = ""
    while True:
        page = stub.ListStrategyHistory(
            pb.ListStrategyHistoryRequest(strategy_id=sid, page_size=100, page_token=token),
            metadata=md,
        )
        events.extend(page.events)
        token = page.next_page_token
        if not token:
            return events


def test_parallel_updates_with_one_etag_let_exactly_one_win(server: LiveServer) -> None:
    md = server.md("trader")
    with server.channel() as ch:
        stub = pbg.StrategyServiceStub(ch)
        for _round in range(ROUNDS):
            check_one_etag_winner(stub, md)


def check_one_etag_winner(stub: pbg.StrategyServiceStub, md: list[tuple[str, str]]) -> None:
    s = new_strategy(stub, md)

    def update(i: int) -> pb.Strategy:
        req = pb.UpdateStrategyRequest(
            strategy=pb.Strategy(id=s.id, description=f"writer {i}", etag=s.etag),
            update_mask=field_mask_pb2.FieldMask(paths=["description"]),
        )
        return stub.UpdateStrategy(req, metadata=md).strategy

    results = parallel(20, update)
    won = [r for r in results if not isinstance(r, grpc.RpcError)]
    lost = [r for r in results if isinstance(r, grpc.RpcError)]
    assert len(won) == 1, f"{len(won)} of 20 updates with one etag succeeded"
    assert {e.code() for e in lost} == {grpc.StatusCode.ABORTED}
    final = stub.GetStrategy(pb.GetStrategyRequest(strategy_id=s.id), metadata=md).strategy
    assert final.version == 2 and final.description == won[0].description
    updated = [e for e in history(stub, md, s.id) if e.action == pb.HISTORY_ACTION_UPDATED]
    assert len(updated) == 1 and updated[0].version == 2


def test_parallel_updates_without_etag_all_land_in_order(server: LiveServer) -> None:
    md = server.md("trader")
    n = 40
    with server.channel() as ch:
        stub = pbg.StrategyServiceStub(ch)
        s = new_strategy(stub, md)

        def update(i: int) -> pb.Strategy:
            req = pb.UpdateStrategyRequest(
                strategy=pb.Strategy(id=s.id, description=f"writer {i}"),
                update_mask=field_mask_pb2.FieldMask(paths=["description"]),
            )
            return stub.UpdateStrategy(req, metadata=md).strategy

        results = parallel(n, update)
        errors = [r for r in results if isinstance(r, grpc.RpcError)]
        assert not errors, [(e.code(), e.details()) for e in errors]
        assert sorted(r.version for r in results) == list(range(2, n + 2))
        final = stub.GetStrategy(pb.GetStrategyRequest(strategy_id=s.id), metadata=md).strategy
        assert final.version == n + 1
        events = history(stub, md, s.id)
        assert len(events) == n + 1
        assert sorted(e.version for e in events) == list(range(1, n + 2))


def test_parallel_deletes_let_exactly_one_succeed(server: LiveServer) -> None:
    md = server.md("trader")
    with server.channel() as ch:
        stub = pbg.StrategyServiceStub(ch)
        for _round in range(ROUNDS):
            check_one_delete_winner(stub, md)


def check_one_delete_winner(stub: pbg.StrategyServiceStub, md: list[tuple[str, str]]) -> None:
    s = new_strategy(stub, md)
    results = parallel(
        10,
        lambda _i: stub.DeleteStrategy(pb.DeleteStrategyRequest(strategy_id=s.id), metadata=md),
    )
    ok = [r for r in results if not isinstance(r, grpc.RpcError)]
    failed = [r for r in results if isinstance(r, grpc.RpcError)]
    assert len(ok) == 1, f"{len(ok)} of 10 deletes succeeded"
    assert {e.code() for e in failed} == {grpc.StatusCode.NOT_FOUND}
    deleted = [e for e in history(stub, md, s.id) if e.action == pb.HISTORY_ACTION_DELETED]
    assert len(deleted) == 1
