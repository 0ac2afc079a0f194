"""The authorization matrix: every RPC of every service x every kind of caller.

Generated from the service descriptors, so an RPC added to the protos is covered without
touching this file. What each caller should get follows from the access table; the table's
content itself is pinned against the product's role promises in
tests/unit/security/test_access_table.py.
"""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.protobuf.descriptor import MethodDescriptor
from stratopt.v1 import auth_pb2 as apb
from stratopt.v1 import auth_pb2_grpc as apbg
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import strategy_pb2 as spb
from stratopt.v1 import strategy_pb2_grpc as spbg

from stratopt.api.authz import Rule, contract_methods, method_path, rule_for
from stratopt.security.principal import Principal
from stratopt.security.roles import Permission, Role
from tests.conftest import LiveServer
from tests.integration.security.support import (
    STREAMING,
    Metadata,
    invoke,
    new_user,
    request_for,
    unique,
)

METHODS = contract_methods()
ROLES = (Role.ADMIN, Role.TRADER, Role.ANALYST, Role.VIEWER)
NEVER_WHEN_ALLOWED = {"UNAUTHENTICATED", "PERMISSION_DENIED", "INTERNAL", "UNKNOWN"}
SCOPED_KEY_SCOPES = frozenset({Permission.READ_STRATEGIES, Permission.VIEW_PERFORMANCE})


class Caller:
    def __init__(self, name: str, metadata: Metadata, principal: Principal | None) -> None:
        self.name = name
        self.metadata = metadata
        self.principal = principal

    def expected(self, rule: Rule) -> str:
        """ "UNAUTHENTICATED", "PERMISSION_DENIED" or "ALLOWED"."""
        if rule.public:
            return "ALLOWED"
        if self.principal is None:
            return "UNAUTHENTICATED"
        return "ALLOWED" if rule.allows(self.principal) else "PERMISSION_DENIED"


@pytest.fixture(scope="module")
def channel(live_server: LiveServer) -> Iterator[grpc.Channel]:
    with live_server.channel() as ch:
        yield ch


@pytest.fixture(scope="module")
def callers(live_server: LiveServer, channel: grpc.Channel) -> list[Caller]:
    out = [Caller("anonymous", [], None)]
    for role in ROLES:
        principal = Principal(user_id="x", username="x", role=role, via="jwt")
        out.append(Caller(role.value, live_server.md(role.value), principal))
    key = apbg.AuthServiceStub(channel).CreateApiKey(
        apb.CreateApiKeyRequest(
            display_name=unique("matrix"),
            scopes=[c.PERMISSION_READ_STRATEGIES, c.PERMISSION_VIEW_PERFORMANCE],
        ),
        metadata=live_server.md("trader"),
    )
    scoped = Principal("x", "x", Role.TRADER, via="api_key", key_id="k", scopes=SCOPED_KEY_SCOPES)
    out.append(Caller("trader-key-read-only", [("x-api-key", key.secret)], scoped))
    return out


@pytest.mark.parametrize("method", METHODS, ids=method_path)
def test_every_caller_gets_what_the_table_says(
    method: MethodDescriptor, channel: grpc.Channel, callers: list[Caller]
) -> None:
    rule = rule_for(method_path(method))
    assert rule is not None, "no access rule (see tests/unit/security/test_access_table.py)"
    wrong: list[str] = []
    for caller in callers:
        want = caller.expected(rule)
        got = invoke(channel, method, request_for(method), caller.metadata)
        if want == "ALLOWED":
            ok = got not in NEVER_WHEN_ALLOWED | {"RESOURCE_EXHAUSTED"}
        else:
            ok = got == want
        if not ok:
            wrong.append(f"{caller.name}: wanted {want}, got {got}")
    assert not wrong, "; ".join(wrong)


# --- another user's token on a trader's strategy ------------------------------------------


def _strategy_request(method: MethodDescriptor, strategy_id: str) -> object | None:
    """The RPC's request naming `strategy_id`, or None when it takes no strategy."""
    fields = method.input_type.fields_by_name
    if "strategy_id" in fields and fields["strategy_id"].type == fields["strategy_id"].TYPE_STRING:
        # Valid otherwise, so the answer is about the strategy and not about a missing field.
        extra: dict[str, object] = {}
        if "username" in fields:
            extra["username"] = "viewer"
        if "access" in fields:
            extra["access"] = [spb.STRATEGY_ACCESS_READ]
        return request_for(method, strategy_id=strategy_id, **extra)
    if "strategy" in fields and method.input_type.name == "UpdateStrategyRequest":
        return request_for(method, strategy=spb.Strategy(id=strategy_id, description="x"))
    if "strategy_ids" in fields:
        return request_for(method, strategy_ids=[strategy_id, strategy_id])
    return None


STRATEGY_METHODS = [m for m in METHODS if _strategy_request(m, "x") is not None]
IMPLEMENTED_NOT_FOUND = {
    "GetStrategy", "UpdateStrategy", "DeleteStrategy", "ListStrategyHistory",
    "ShareStrategy", "UnshareStrategy", "ListStrategyShares",
}  # fmt: skip


@pytest.fixture(scope="module")
def owned(live_server: LiveServer, channel: grpc.Channel) -> tuple[str, Metadata]:
    """(a strategy of the demo trader, metadata of another trader)."""
    stub = spbg.StrategyServiceStub(channel)
    strategy = stub.CreateStrategy(
        spb.CreateStrategyRequest(
            strategy=spb.Strategy(name=unique("owned"), strategy_type="sma_crossover")
        ),
        metadata=live_server.md("trader"),
    ).strategy
    username, password, _ = new_user(live_server, c.ROLE_TRADER, "other")
    token = apbg.AuthServiceStub(channel).Login(
        apb.LoginRequest(username=username, password=password)
    )
    return strategy.id, [("authorization", f"Bearer {token.access_token}")]


def test_strategy_rpcs_are_found_by_the_generator() -> None:
    names = {m.name for m in STRATEGY_METHODS}
    assert names >= IMPLEMENTED_NOT_FOUND
    assert {"StartStrategy", "StreamSignals", "CompareStrategies"} <= names


@pytest.mark.parametrize("method", STRATEGY_METHODS, ids=method_path)
def test_another_users_strategy_is_indistinguishable_from_a_missing_one(
    method: MethodDescriptor,
    channel: grpc.Channel,
    owned: tuple[str, Metadata],
    live_server: LiveServer,
) -> None:
    strategy_id, other = owned
    real = invoke(channel, method, _strategy_request(method, strategy_id), other)  # type: ignore[arg-type]
    missing = invoke(channel, method, _strategy_request(method, "0" * 32), other)  # type: ignore[arg-type]
    assert real == missing, f"another user's strategy answers {real}, a missing one {missing}"
    assert real not in (STREAMING, "PERMISSION_DENIED"), real
    # OK only for list filters ("backtests of strategy X"), which answer an empty page.
    assert real != "OK" or method.name.startswith("List"), real
    if method.name in IMPLEMENTED_NOT_FOUND:
        assert real == "NOT_FOUND"
    # The owner and admins do see it.
    if method.name == "GetStrategy":
        for who in ("trader", "admin"):
            got = invoke(
                channel,
                method,
                _strategy_request(method, strategy_id),
                live_server.md(who),  # type: ignore[arg-type]
            )
            assert got == "OK", who
