"""Sharing strategies: grants, re-sharing within one's own grant, leaving, history, audit."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import grpc
import pytest
from google.protobuf import field_mask_pb2
from stratopt.v1 import auth_pb2 as apb
from stratopt.v1 import auth_pb2_grpc as apbg
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import strategy_pb2 as spb
from stratopt.v1 import strategy_pb2_grpc as spbg

from tests.conftest import LiveServer
from tests.integration.helpers import call_error
from tests.integration.security.support import Metadata, bearer, login, new_user, unique

R, W, X, D, S = (
    spb.STRATEGY_ACCESS_READ,
    spb.STRATEGY_ACCESS_WRITE,
    spb.STRATEGY_ACCESS_EXECUTE,
    spb.STRATEGY_ACCESS_DELETE,
    spb.STRATEGY_ACCESS_SHARE,
)


@dataclass
class Person:
    username: str
    md: Metadata


@pytest.fixture(scope="module")
def stub(live_server: LiveServer) -> Iterator[spbg.StrategyServiceStub]:
    with live_server.channel() as ch:
        yield spbg.StrategyServiceStub(ch)


def person(srv: LiveServer, role: int = c.ROLE_TRADER) -> Person:
    username, password, _ = new_user(srv, role, "sh")
    return Person(username, bearer(login(srv, username, password).access_token))


@pytest.fixture()
def people(live_server: LiveServer) -> tuple[Person, Person, Person]:
    return person(live_server), person(live_server), person(live_server)


def create(stub: spbg.StrategyServiceStub, owner: Person) -> spb.Strategy:
    return stub.CreateStrategy(
        spb.CreateStrategyRequest(
            strategy=spb.Strategy(name=unique("shared"), strategy_type="sma_crossover")
        ),
        metadata=owner.md,
    ).strategy


def share(
    stub: spbg.StrategyServiceStub, who: Person, sid: str, to: Person, *access: int
) -> spb.StrategyShare:
    return stub.ShareStrategy(
        spb.ShareStrategyRequest(strategy_id=sid, username=to.username, access=list(access)),
        metadata=who.md,
    ).share


def code(fn: object, *args: object, **kw: object) -> grpc.StatusCode:
    return call_error(fn, *args, **kw).code()  # type: ignore[arg-type]


def update(stub: spbg.StrategyServiceStub, who: Person, sid: str) -> spb.Strategy:
    return stub.UpdateStrategy(
        spb.UpdateStrategyRequest(
            strategy=spb.Strategy(id=sid, description=unique("by")),
            update_mask=field_mask_pb2.FieldMask(paths=["description"]),
        ),
        metadata=who.md,
    ).strategy


def test_grants_decide_what_a_grantee_may_do(
    stub: spbg.StrategyServiceStub, people: tuple[Person, Person, Person]
) -> None:
    owner, bob, _ = people
    sid = create(stub, owner).id
    assert code(stub.GetStrategy, spb.GetStrategyRequest(strategy_id=sid), metadata=bob.md) == (
        grpc.StatusCode.NOT_FOUND
    )
    granted = share(stub, owner, sid, bob, R)
    assert (granted.username, list(granted.access)) == (bob.username, [R])

    assert stub.GetStrategy(spb.GetStrategyRequest(strategy_id=sid), metadata=bob.md).strategy.id
    listed = stub.ListStrategies(spb.ListStrategiesRequest(), metadata=bob.md).strategies
    assert sid in {s.id for s in listed}
    assert code(update, stub, bob, sid) == grpc.StatusCode.PERMISSION_DENIED
    delete = spb.DeleteStrategyRequest(strategy_id=sid)
    assert code(stub.DeleteStrategy, delete, metadata=bob.md) == grpc.StatusCode.PERMISSION_DENIED

    share(stub, owner, sid, bob, W)  # replaces the grant; read is always implied
    assert update(stub, bob, sid).version == 2
    stub.DeleteStrategy(spb.DeleteStrategyRequest(strategy_id=sid), metadata=owner.md)


def test_resharing_is_bounded_by_the_resharers_own_grant(
    stub: spbg.StrategyServiceStub, people: tuple[Person, Person, Person]
) -> None:
    owner, bob, carol = people
    sid = create(stub, owner).id
    share(stub, owner, sid, bob, R)
    assert code(share, stub, bob, sid, carol, R) == grpc.StatusCode.PERMISSION_DENIED

    share(stub, owner, sid, bob, R, X, S)
    assert list(share(stub, bob, sid, carol, R, X).access) == [R, X]
    assert code(share, stub, bob, sid, carol, W) == grpc.StatusCode.PERMISSION_DENIED
    # Carol holds read only: she cannot see who else has access, nor pass it on.
    assert code(
        stub.ListStrategyShares, spb.ListStrategySharesRequest(strategy_id=sid), metadata=carol.md
    ) == (grpc.StatusCode.PERMISSION_DENIED)

    shares = stub.ListStrategyShares(
        spb.ListStrategySharesRequest(strategy_id=sid), metadata=owner.md
    ).shares
    assert {s.username: list(s.access) for s in shares} == {
        bob.username: [R, X, S],
        carol.username: [R, X],
    }

    # Bob may remove Carol (she holds nothing he lacks); after that she sees nothing.
    stub.UnshareStrategy(
        spb.UnshareStrategyRequest(strategy_id=sid, username=carol.username), metadata=bob.md
    )
    assert code(stub.GetStrategy, spb.GetStrategyRequest(strategy_id=sid), metadata=carol.md) == (
        grpc.StatusCode.NOT_FOUND
    )
    # Bob cannot remove a grant larger than his own.
    share(stub, owner, sid, carol, R, W, D)
    assert code(
        stub.UnshareStrategy,
        spb.UnshareStrategyRequest(strategy_id=sid, username=carol.username),
        metadata=bob.md,
    ) == (grpc.StatusCode.PERMISSION_DENIED)
    # But anyone may leave a share they hold.
    stub.UnshareStrategy(
        spb.UnshareStrategyRequest(strategy_id=sid, username=carol.username), metadata=carol.md
    )


def test_role_still_applies_to_a_shared_strategy(
    stub: spbg.StrategyServiceStub, live_server: LiveServer
) -> None:
    owner = person(live_server)
    viewer = person(live_server, c.ROLE_VIEWER)
    sid = create(stub, owner).id
    share(stub, owner, sid, viewer, R, W)
    stub.GetStrategy(spb.GetStrategyRequest(strategy_id=sid), metadata=viewer.md)
    err = call_error(update, stub, viewer, sid)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "write_strategies" in (err.details() or "")


def test_bad_share_requests(stub: spbg.StrategyServiceStub, live_server: LiveServer) -> None:
    owner = person(live_server)
    sid = create(stub, owner).id
    ghost = Person("no-such-user-" + unique("x"), [])
    assert code(share, stub, owner, sid, ghost, R) == grpc.StatusCode.NOT_FOUND
    assert code(share, stub, owner, sid, owner, R) == grpc.StatusCode.INVALID_ARGUMENT
    assert code(share, stub, owner, sid, person(live_server)) == grpc.StatusCode.INVALID_ARGUMENT
    assert code(share, stub, owner, sid, ghost, 99) == grpc.StatusCode.INVALID_ARGUMENT
    assert code(
        stub.UnshareStrategy,
        spb.UnshareStrategyRequest(strategy_id=sid, username="viewer"),
        metadata=owner.md,
    ) == (grpc.StatusCode.NOT_FOUND)


def test_sharing_is_in_history_and_audit(
    stub: spbg.StrategyServiceStub, live_server: LiveServer
) -> None:
    owner, bob = person(live_server), person(live_server)
    sid = create(stub, owner).id
    share(stub, owner, sid, bob, R, X)
    stub.UnshareStrategy(
        spb.UnshareStrategyRequest(strategy_id=sid, username=bob.username), metadata=owner.md
    )
    events = stub.ListStrategyHistory(
        spb.ListStrategyHistoryRequest(strategy_id=sid), metadata=owner.md
    ).events
    assert [e.action for e in events] == [
        spb.HISTORY_ACTION_UNSHARED,
        spb.HISTORY_ACTION_SHARED,
        spb.HISTORY_ACTION_CREATED,
    ]
    assert events[1].changed_fields == [f"shares.{bob.username}"]
    assert events[0].version == events[2].version  # sharing does not change the strategy

    with live_server.channel() as ch:
        audit = (
            apbg.AuthServiceStub(ch)
            .ListAuditEvents(
                apb.ListAuditEventsRequest(resource_type="strategy", resource_id=sid),
                metadata=live_server.md("admin"),
            )
            .audit_events
        )
    details = {e.method.rsplit("/", 1)[1]: e.detail for e in audit}
    assert details["ShareStrategy"] == f"granted read, execute to {bob.username}"
    assert bob.username in details["UnshareStrategy"]
    assert "CreateStrategy" in details
