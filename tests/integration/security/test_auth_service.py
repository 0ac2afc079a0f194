"""AuthService end to end: login, who-am-i, password change, user administration, audit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import field_mask_pb2
from stratopt.v1 import auth_pb2 as apb
from stratopt.v1 import auth_pb2_grpc as apbg
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import strategy_pb2 as spb
from stratopt.v1 import strategy_pb2_grpc as spbg

from stratopt.api.auth_servicer import LOGIN_FAILED
from stratopt.security.roles import ROLE_PERMISSIONS, Role
from tests.conftest import DEMO_PASSWORDS, LiveServer
from tests.integration.helpers import call_error, violations
from tests.integration.security.support import bearer, login, new_user, unique

AUTH_CACHE_S = 2.0  # Settings.auth_cache_seconds: how stale a role or disabled flag may be


@pytest.fixture(scope="module")
def stub(live_server: LiveServer) -> Iterator[apbg.AuthServiceStub]:
    with live_server.channel() as ch:
        yield apbg.AuthServiceStub(ch)


@pytest.fixture(scope="module")
def strategies(live_server: LiveServer) -> Iterator[spbg.StrategyServiceStub]:
    with live_server.channel() as ch:
        yield spbg.StrategyServiceStub(ch)


def eventually(check: object, timeout: float = AUTH_CACHE_S + 3) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            check()  # type: ignore[operator]
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_login_returns_a_session_and_records_the_login(live_server: LiveServer) -> None:
    before = datetime.now(UTC) - timedelta(seconds=2)
    reply = login(live_server, "TRADER", DEMO_PASSWORDS["trader"])  # usernames ignore case
    assert reply.token_type == "Bearer"
    assert reply.user.username == "trader" and reply.user.role == c.ROLE_TRADER
    access_ttl = reply.access_token_expire_time.ToDatetime(tzinfo=UTC) - before
    refresh_ttl = reply.refresh_token_expire_time.ToDatetime(tzinfo=UTC) - before
    assert timedelta(minutes=14) < access_ttl <= timedelta(minutes=15, seconds=5)
    assert timedelta(days=29) < refresh_ttl <= timedelta(days=30, seconds=5)
    assert reply.refresh_token.startswith("rt_")
    assert reply.user.last_login_time.ToDatetime(tzinfo=UTC) >= before


def test_login_failures_all_look_the_same(stub: apbg.AuthServiceStub) -> None:
    attempts = [
        ("trader", "wrong password here"),
        ("nobody-by-this-name", "whatever password"),
        ("trader", "x" * 5000),
    ]
    for username, password in attempts:
        err = call_error(stub.Login, apb.LoginRequest(username=username, password=password))
        assert (err.code(), err.details()) == (grpc.StatusCode.UNAUTHENTICATED, LOGIN_FAILED)
    err = call_error(stub.Login, apb.LoginRequest(username="trader"))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "password" in violations(err)


@pytest.mark.parametrize("role", list(Role))
def test_who_am_i_reports_role_permissions_and_method(
    role: Role, stub: apbg.AuthServiceStub, live_server: LiveServer
) -> None:
    me = stub.GetCurrentUser(apb.GetCurrentUserRequest(), metadata=live_server.md(role.value))
    assert me.user.username == role.value
    assert me.auth_method == "jwt" and me.api_key_prefix == ""
    got = {c.Permission.Name(p).removeprefix("PERMISSION_").lower() for p in me.permissions}
    assert got == {p.value for p in ROLE_PERMISSIONS[role]}


def test_change_password_keeps_this_session_and_ends_the_others(live_server: LiveServer) -> None:
    username, password, _ = new_user(live_server, prefix="pw")
    here, elsewhere = login(live_server, username, password), login(live_server, username, password)
    new_password = "a brand new passphrase 42"
    with live_server.channel() as ch:
        stub = apbg.AuthServiceStub(ch)
        md = bearer(here.access_token)
        wrong = call_error(
            stub.ChangePassword,
            apb.ChangePasswordRequest(current_password="not it at all", new_password=new_password),
            metadata=md,
        )
        assert wrong.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "current_password" in violations(wrong)
        weak = call_error(
            stub.ChangePassword,
            apb.ChangePasswordRequest(current_password=password, new_password="short"),
            metadata=md,
        )
        assert weak.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "new_password" in violations(weak)
        assert "short" not in (weak.details() or "")

        stub.ChangePassword(
            apb.ChangePasswordRequest(current_password=password, new_password=new_password),
            metadata=md,
        )
        assert stub.GetCurrentUser(apb.GetCurrentUserRequest(), metadata=md).user.username
        err = call_error(
            stub.RefreshToken, apb.RefreshTokenRequest(refresh_token=elsewhere.refresh_token)
        )
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        stub.RefreshToken(apb.RefreshTokenRequest(refresh_token=here.refresh_token))
        err = call_error(stub.Login, apb.LoginRequest(username=username, password=password))
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED
        assert login(live_server, username, new_password).user.username == username


def test_admin_creates_lists_gets_and_validates_users(
    stub: apbg.AuthServiceStub, live_server: LiveServer
) -> None:
    admin = live_server.md("admin")
    username, _, user_id = new_user(live_server, c.ROLE_ANALYST, "adm")
    dup = call_error(
        stub.CreateUser,
        apb.CreateUserRequest(
            user=apb.User(username=username.upper(), role=c.ROLE_VIEWER),
            password="some other fine password",
        ),
        metadata=admin,
    )
    assert dup.code() == grpc.StatusCode.ALREADY_EXISTS
    bad = call_error(
        stub.CreateUser,
        apb.CreateUserRequest(
            user=apb.User(username="x", email="not-an-email", role=c.ROLE_VIEWER),
            password="password1234",
        ),
        metadata=admin,
    )
    assert bad.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert set(violations(bad)) == {"user.username", "user.email", "password"}
    no_role = call_error(
        stub.CreateUser,
        apb.CreateUserRequest(user=apb.User(username=unique("r")), password="fine long password"),
        metadata=admin,
    )
    assert set(violations(no_role)) == {"user.role"}

    got = stub.GetUser(apb.GetUserRequest(user_id=user_id), metadata=admin).user
    assert (got.username, got.role, got.disabled) == (username, c.ROLE_ANALYST, False)

    # Paging through analysts finds the new one exactly once.
    seen: list[str] = []
    token = ""
    while True:
        page = stub.ListUsers(
            apb.ListUsersRequest(role=c.ROLE_ANALYST, page_size=1, page_token=token),
            metadata=admin,
        )
        seen += [u.username for u in page.users]
        assert all(u.role == c.ROLE_ANALYST for u in page.users)
        token = page.next_page_token
        if not token:
            break
    assert seen.count(username) == 1 and "analyst" in seen and len(seen) == len(set(seen))


def test_users_see_themselves_but_not_others(
    stub: apbg.AuthServiceStub, live_server: LiveServer
) -> None:
    me = stub.GetCurrentUser(apb.GetCurrentUserRequest(), metadata=live_server.md("viewer"))
    own = stub.GetUser(apb.GetUserRequest(user_id=me.user.id), metadata=live_server.md("viewer"))
    assert own.user.username == "viewer"
    other = stub.GetCurrentUser(apb.GetCurrentUserRequest(), metadata=live_server.md("trader"))
    err = call_error(
        stub.GetUser, apb.GetUserRequest(user_id=other.user.id), metadata=live_server.md("viewer")
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND


def test_role_change_and_disabling_apply_to_tokens_already_issued(
    stub: apbg.AuthServiceStub, strategies: spbg.StrategyServiceStub, live_server: LiveServer
) -> None:
    admin = live_server.md("admin")
    username, password, user_id = new_user(live_server, c.ROLE_TRADER, "demote")
    session = login(live_server, username, password)
    md = bearer(session.access_token)
    create = spb.CreateStrategyRequest(
        strategy=spb.Strategy(name=unique("d"), strategy_type="sma_crossover")
    )
    strategies.CreateStrategy(create, metadata=md)

    stub.UpdateUser(
        apb.UpdateUserRequest(
            user=apb.User(id=user_id, role=c.ROLE_VIEWER),
            update_mask=field_mask_pb2.FieldMask(paths=["role"]),
        ),
        metadata=admin,
    )

    def demoted() -> None:
        err = call_error(strategies.CreateStrategy, create, metadata=md)
        assert err.code() == grpc.StatusCode.PERMISSION_DENIED

    eventually(demoted)
    bad_path = call_error(
        stub.UpdateUser,
        apb.UpdateUserRequest(
            user=apb.User(id=user_id, username="renamed"),
            update_mask=field_mask_pb2.FieldMask(paths=["username"]),
        ),
        metadata=admin,
    )
    assert bad_path.code() == grpc.StatusCode.INVALID_ARGUMENT

    updated = stub.UpdateUser(
        apb.UpdateUserRequest(
            user=apb.User(id=user_id, disabled=True),
            update_mask=field_mask_pb2.FieldMask(paths=["disabled"]),
        ),
        metadata=admin,
    ).user
    assert updated.disabled and updated.role == c.ROLE_VIEWER

    def locked_out() -> None:
        err = call_error(stub.GetCurrentUser, apb.GetCurrentUserRequest(), metadata=md)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED

    eventually(locked_out)
    err = call_error(stub.Login, apb.LoginRequest(username=username, password=password))
    assert (err.code(), err.details()) == (grpc.StatusCode.UNAUTHENTICATED, LOGIN_FAILED)
    err = call_error(
        stub.RefreshToken, apb.RefreshTokenRequest(refresh_token=session.refresh_token)
    )
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


def test_delete_user_ends_access_and_admins_cannot_delete_themselves(
    stub: apbg.AuthServiceStub, live_server: LiveServer
) -> None:
    admin = live_server.md("admin")
    username, password, user_id = new_user(live_server, c.ROLE_VIEWER, "del")
    md = bearer(login(live_server, username, password).access_token)
    stub.DeleteUser(apb.DeleteUserRequest(user_id=user_id), metadata=admin)
    err = call_error(stub.GetUser, apb.GetUserRequest(user_id=user_id), metadata=admin)
    assert err.code() == grpc.StatusCode.NOT_FOUND
    err = call_error(stub.GetCurrentUser, apb.GetCurrentUserRequest(), metadata=md)
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED

    me = stub.GetCurrentUser(apb.GetCurrentUserRequest(), metadata=admin)
    err = call_error(stub.DeleteUser, apb.DeleteUserRequest(user_id=me.user.id), metadata=admin)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_audit_trail_records_changes_and_refusals_without_secrets(
    stub: apbg.AuthServiceStub, strategies: spbg.StrategyServiceStub, live_server: LiveServer
) -> None:
    admin = live_server.md("admin")
    username, password, user_id = new_user(live_server, c.ROLE_VIEWER, "aud")
    md = bearer(login(live_server, username, password).access_token)
    call_error(stub.Login, apb.LoginRequest(username=username, password="wrong password x"))
    refused = call_error(
        strategies.CreateStrategy,
        spb.CreateStrategyRequest(
            strategy=spb.Strategy(name=unique("a"), strategy_type="sma_crossover")
        ),
        metadata=md,
    )
    assert refused.code() == grpc.StatusCode.PERMISSION_DENIED
    key = stub.CreateApiKey(apb.CreateApiKeyRequest(display_name=unique("k")), metadata=md)

    events = stub.ListAuditEvents(
        apb.ListAuditEventsRequest(actor_id=user_id, page_size=50), metadata=admin
    ).audit_events
    by_method = {(e.method.rsplit("/", 1)[1], e.outcome): e for e in events}
    login_ok = by_method[("Login", "OK")]
    assert login_ok.actor_username == username and login_ok.peer
    denied = by_method[("CreateStrategy", "PERMISSION_DENIED")]
    assert denied.resource_type == "strategy" and "write_strategies" in denied.detail
    created = by_method[("CreateApiKey", "OK")]
    assert created.resource_id == key.api_key.id and created.resource_type == "api_key"
    assert key.api_key.prefix in created.detail
    for e in events:
        assert password not in str(e) and key.secret not in str(e)
        assert key.secret.split("_")[-1] not in str(e)

    # The failed login names no actor (the password was wrong) but says who was tried.
    failed = stub.ListAuditEvents(
        apb.ListAuditEventsRequest(resource_type="user", page_size=200), metadata=admin
    ).audit_events
    assert any(
        e.outcome == "UNAUTHENTICATED" and username in e.detail and "wrong password x" not in str(e)
        for e in failed
    )


def test_audit_events_page_newest_first(
    stub: apbg.AuthServiceStub, live_server: LiveServer
) -> None:
    admin = live_server.md("admin")
    for _ in range(3):
        new_user(live_server, c.ROLE_VIEWER, "pg")
    pages: list[apb.AuditEvent] = []
    token = ""
    while True:
        page = stub.ListAuditEvents(
            apb.ListAuditEventsRequest(page_size=2, page_token=token), metadata=admin
        )
        pages += list(page.audit_events)
        token = page.next_page_token
        if not token or len(pages) >= 10:
            break
    times = [e.time.ToDatetime() for e in pages]
    assert times == sorted(times, reverse=True)
    assert len({e.id for e in pages}) == len(pages) >= 4
