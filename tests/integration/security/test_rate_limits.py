"""Rate limits on a server of its own with tiny limits set through the environment."""

from __future__ import annotations

import re
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
    # A token a second: the burst's countdown holds even when calls are slow (at 5 a second
    # a call 200 ms late had its token back before the next one, on a loaded machine).
    "STRATOPT_RATE_LIMIT_GENERAL": "5/5s burst 5",
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
    """The rate-limit values a gRPC client reads: the trailers, on successes and errors."""
    md = call.trailing_metadata() or ()  # type: ignore[union-attr]
    return {k: str(v) for k, v in md if k.startswith("x-ratelimit")}


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
        assert 0 < delay <= 1.0  # one token a second
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


GUESSED = {
    **LIMITED,
    "STRATOPT_RATE_LIMIT_AUTH_PER_USER": "8/1m burst 8",
    "STRATOPT_TRUST_FORWARDED_FOR": "1",
}


def from_ip(ip: str, md: list[tuple[str, str]] | None = None) -> list[tuple[str, str]]:
    return [*(md or []), ("x-forwarded-for", ip)]


def test_a_guesser_cannot_lock_the_owner_out(tmp_path: Path) -> None:
    """Wrong guesses throttle the guesser (client and username), not the user: the owner
    still logs in from elsewhere, and a session already held keeps ChangePassword. Many
    clients together meet a per-username ceiling, which still spares the session."""
    srv = start_server(tmp_path, GUESSED)
    try:
        with srv.channel() as ch:
            stub = apbg.AuthServiceStub(ch)
            owner = stub.Login(
                apb.LoginRequest(username="analyst", password=DEMO_PASSWORDS["analyst"]),
                metadata=from_ip("198.51.100.1"),
            )
            session = from_ip("198.51.100.1", [("authorization", f"Bearer {owner.access_token}")])
            guess = apb.LoginRequest(username="analyst", password="a wrong guess")
            codes = [
                call_error(stub.Login, guess, metadata=from_ip("203.0.113.66")).code()
                for _ in range(6)
            ]
            assert codes[:3] == [grpc.StatusCode.UNAUTHENTICATED] * 3
            assert codes[3:] == [grpc.StatusCode.RESOURCE_EXHAUSTED] * 3
            # The owner, from their own address, is not locked out.
            again = stub.Login(
                apb.LoginRequest(username="Analyst", password=DEMO_PASSWORDS["analyst"]),
                metadata=from_ip("198.51.100.2"),
            )
            assert again.access_token
            # A botnet: every address a few guesses, until the per-username ceiling (8).
            refused = []
            for i in range(10):
                err = call_error(stub.Login, guess, metadata=from_ip(f"192.0.2.{i}"))
                refused.append(err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED)
            assert refused[-1] and not all(refused)
            # Whoever holds a session still changes their password (wrong current password
            # here, so the demo password stays): refused as wrong, not as rate limited.
            for _ in range(3):
                err = call_error(
                    stub.ChangePassword,
                    apb.ChangePasswordRequest(
                        current_password="not it at all", new_password="another-long-passphrase-9"
                    ),
                    metadata=session,
                )
                assert err.code() != grpc.StatusCode.RESOURCE_EXHAUSTED, err.details()
    finally:
        stop_server(srv)


def test_the_retry_hint_is_never_zero(limited: LiveServer) -> None:
    """At a call a second the wait is under 1 s; "retry in 0.0 s" helped nobody."""
    admin = limited.md("admin")
    with limited.channel() as ch:
        stub = spbg.StrategyServiceStub(ch)
        request = spb.ListStrategyTypesRequest()
        err = None
        for _ in range(20):
            try:
                stub.ListStrategyTypes(request, metadata=admin)
            except grpc.RpcError as e:
                err = e
                break
        assert err is not None and err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "0.0 s" not in err.details(), err.details()
        assert re.search(r"retry in [1-9]\d* ms", err.details()), err.details()
        time.sleep(retry_delay(err) + 0.05)  # leave the budget as the next test expects


def test_switching_rate_limits_off_keeps_the_stream_cap(tmp_path: Path) -> None:
    """STRATOPT_RATE_LIMITS=0 turns off the token buckets only; concurrent streams stay
    capped (STRATOPT_MAX_STREAMS_PER_USER), since they hold server memory, not throughput."""
    from stratopt.v1 import system_pb2 as sysb
    from stratopt.v1 import system_pb2_grpc as sysg

    srv = start_server(
        tmp_path, {"STRATOPT_RATE_LIMITS": "0", "STRATOPT_MAX_STREAMS_PER_USER": "2"}
    )
    try:
        with srv.channel() as ch:
            stub = sysg.SystemServiceStub(ch)
            md = srv.md("trader")
            held = [
                stub.StreamNotifications(sysb.StreamNotificationsRequest(), metadata=md)
                for _ in range(2)
            ]
            time.sleep(0.5)  # both are open and waiting for notifications
            third = stub.StreamNotifications(
                sysb.StreamNotificationsRequest(), metadata=md, timeout=5
            )
            with pytest.raises(grpc.RpcError) as info:
                next(iter(third))
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED  # type: ignore[attr-defined]
            for call in held:
                call.cancel()
    finally:
        stop_server(srv)
