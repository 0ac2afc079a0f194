"""Rate limits on a server of its own with tiny limits set through the environment."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from stratopt.v1 import auth_pb2 as apb
from stratopt.v1 import auth_pb2_grpc as apbg
from stratopt.v1 import strategy_pb2 as spb
from stratopt.v1 import strategy_pb2_grpc as spbg

from tests.conftest import DEMO_PASSWORDS, LiveServer, start_server, stop_server
from tests.integration.helpers import call_error
from tests.integration.security.support import retry_delay

LIMITED = {
    "STRATOPT_RATE_LIMIT_GENERAL": "5/1s burst 5",
    "STRATOPT_RATE_LIMIT_AUTH": "3/1m burst 3",
    "STRATOPT_RATE_LIMIT_AUTH_PER_IP": "100/1m burst 100",
    "STRATOPT_AUDIT_REFUSALS_PER_MINUTE": "3",
}


@pytest.fixture(scope="module")
def limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv = start_server(tmp_path_factory.mktemp("limited"), LIMITED)
    yield srv
    stop_server(srv)


def headers(call: grpc.Call | grpc.RpcError) -> dict[str, str]:
    return {k: str(v) for k, v in (call.initial_metadata() or ()) if k.startswith("x-ratelimit")}  # type: ignore[union-attr]


def test_nth_plus_one_call_is_refused_with_retry_info_and_then_resets(
    limited: LiveServer,
) -> None:
    trader, viewer = limited.md("trader"), limited.md("viewer")
    with limited.channel() as ch:
        stub = spbg.StrategyServiceStub(ch)
        request = spb.ListStrategyTypesRequest()
        remaining = []
        for _ in range(5):
            _, call = stub.ListStrategyTypes.with_call(request, metadata=trader)
            h = headers(call)
            assert h["x-ratelimit-limit"] == "5"
            assert int(h["x-ratelimit-reset"]) >= 1
            remaining.append(int(h["x-ratelimit-remaining"]))
        assert remaining == [4, 3, 2, 1, 0]

        refused = call_error(stub.ListStrategyTypes, request, metadata=trader)
        assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        delay = retry_delay(refused)
        assert 0 < delay <= 0.25  # one token at 5 per second
        assert headers(refused)["x-ratelimit-remaining"] == "0"

        # Another user's budget is untouched by the trader's burst.
        stub.ListStrategyTypes(request, metadata=viewer)

        time.sleep(delay + 0.05)
        stub.ListStrategyTypes(request, metadata=trader)


def test_logins_are_limited_per_username(limited: LiveServer) -> None:
    with limited.channel() as ch:
        stub = apbg.AuthServiceStub(ch)
        for _ in range(3):
            err = call_error(stub.Login, apb.LoginRequest(username="analyst", password="guess it"))
            assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        # Even the right password waits now: the budget is per username, not per failure.
        err = call_error(
            stub.Login, apb.LoginRequest(username="Analyst", password=DEMO_PASSWORDS["analyst"])
        )
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert 15 <= retry_delay(err) <= 20  # 3 per minute: one attempt every 20 s
        # Another username from the same address is unaffected.
        ok = stub.Login(apb.LoginRequest(username="admin", password=DEMO_PASSWORDS["admin"]))
        assert ok.access_token


def test_refusals_cannot_flood_the_audit_trail(limited: LiveServer) -> None:
    with limited.channel() as ch:
        stub = apbg.AuthServiceStub(ch)
        for _ in range(10):
            err = call_error(stub.GetCurrentUser, apb.GetCurrentUserRequest(), metadata=[])
            assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        key = stub.CreateApiKey(
            apb.CreateApiKeyRequest(display_name="audited"), metadata=limited.md("viewer")
        )
        events = stub.ListAuditEvents(
            apb.ListAuditEventsRequest(page_size=200), metadata=limited.md("admin")
        ).audit_events
    refusals = [e for e in events if e.outcome == "UNAUTHENTICATED"]
    assert 1 <= len(refusals) <= 4  # 3 per minute per client IP, plus refill during the test
    assert key.api_key.id in {e.resource_id for e in events if e.outcome == "OK"}


def test_limits_can_be_switched_off(tmp_path: Path) -> None:
    srv = start_server(tmp_path, {**LIMITED, "STRATOPT_RATE_LIMITS": "0"})
    try:
        with srv.channel() as ch:
            stub = spbg.StrategyServiceStub(ch)
            for _ in range(12):
                _, call = stub.ListStrategyTypes.with_call(
                    spb.ListStrategyTypesRequest(), metadata=srv.md("trader")
                )
                assert headers(call) == {}
    finally:
        stop_server(srv)
