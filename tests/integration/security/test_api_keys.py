"""API keys end to end: shown once, stored hashed, scoped, revocable, rotated with grace."""

from __future__ import annotations

import re
import sqlite3
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2
from stratopt.v1 import auth_pb2 as apb
from stratopt.v1 import auth_pb2_grpc as apbg
from stratopt.v1 import common_pb2 as c
from stratopt.v1 import strategy_pb2 as spb
from stratopt.v1 import strategy_pb2_grpc as spbg

from tests.conftest import LiveServer
from tests.integration.helpers import call_error
from tests.integration.security.support import Metadata, bearer, login, new_user, unique

KEY_RE = re.compile(r"^sk_([0-9a-f]{8})_[0-9A-Za-z]{40}$")


@pytest.fixture(scope="module")
def stub(live_server: LiveServer) -> Iterator[apbg.AuthServiceStub]:
    with live_server.channel() as ch:
        yield apbg.AuthServiceStub(ch)


@pytest.fixture(scope="module")
def strategies(live_server: LiveServer) -> Iterator[spbg.StrategyServiceStub]:
    with live_server.channel() as ch:
        yield spbg.StrategyServiceStub(ch)


def key_md(secret: str) -> Metadata:
    return [("x-api-key", secret)]


def whoami(stub: apbg.AuthServiceStub, md: Metadata) -> apb.GetCurrentUserResponse:
    reply: apb.GetCurrentUserResponse = stub.GetCurrentUser(
        apb.GetCurrentUserRequest(), metadata=md
    )
    return reply


def test_key_is_shown_once_and_stored_only_as_a_hash(
    stub: apbg.AuthServiceStub, live_server: LiveServer
) -> None:
    md = live_server.md("trader")
    created = stub.CreateApiKey(apb.CreateApiKeyRequest(display_name=unique("ci")), metadata=md)
    match = KEY_RE.fullmatch(created.secret)
    assert match is not None
    assert created.api_key.prefix == f"sk_{match[1]}"
    assert not created.api_key.HasField("expire_time")  # the contract: unset = no expiry

    me = whoami(stub, key_md(created.secret))
    assert (me.user.username, me.auth_method) == ("trader", "api_key")
    assert me.api_key_prefix == created.api_key.prefix

    listed = stub.ListApiKeys(apb.ListApiKeysRequest(), metadata=md).api_keys
    assert [k.prefix for k in listed if k.id == created.api_key.id] == [created.api_key.prefix]
    assert created.secret not in str(listed)

    db = sqlite3.connect(live_server.data_dir / "stratopt.db")
    dump = "\n".join(db.iterdump())
    assert created.secret not in dump and created.secret.split("_")[-1] not in dump
    assert match[1] in dump  # the prefix is the lookup index


def test_scopes_narrow_what_a_key_can_do(
    stub: apbg.AuthServiceStub, strategies: spbg.StrategyServiceStub, live_server: LiveServer
) -> None:
    md = live_server.md("trader")
    read_only = stub.CreateApiKey(
        apb.CreateApiKeyRequest(display_name=unique("ro"), scopes=[c.PERMISSION_READ_STRATEGIES]),
        metadata=md,
    )
    strategies.ListStrategies(spb.ListStrategiesRequest(), metadata=key_md(read_only.secret))
    err = call_error(
        strategies.CreateStrategy,
        spb.CreateStrategyRequest(
            strategy=spb.Strategy(name=unique("k"), strategy_type="sma_crossover")
        ),
        metadata=key_md(read_only.secret),
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    me = whoami(stub, key_md(read_only.secret))
    assert list(me.permissions) == [c.PERMISSION_READ_STRATEGIES]

    # A key cannot carry more than its owner's role, nor mint further keys.
    too_much = call_error(
        stub.CreateApiKey,
        apb.CreateApiKeyRequest(display_name="x", scopes=[c.PERMISSION_WRITE_STRATEGIES]),
        metadata=live_server.md("viewer"),
    )
    assert too_much.code() == grpc.StatusCode.INVALID_ARGUMENT
    minted = call_error(
        stub.CreateApiKey,
        apb.CreateApiKeyRequest(display_name="x"),
        metadata=key_md(read_only.secret),
    )
    assert minted.code() == grpc.StatusCode.PERMISSION_DENIED


def test_revocation_is_immediate_and_limited_to_the_owner(
    stub: apbg.AuthServiceStub, live_server: LiveServer
) -> None:
    created = stub.CreateApiKey(
        apb.CreateApiKeyRequest(display_name=unique("rv")), metadata=live_server.md("analyst")
    )
    # Someone else's key is "not found", not "forbidden".
    err = call_error(
        stub.RevokeApiKey,
        apb.RevokeApiKeyRequest(key_id=created.api_key.id),
        metadata=live_server.md("trader"),
    )
    assert err.code() == grpc.StatusCode.NOT_FOUND
    err = call_error(
        stub.ListApiKeys,
        apb.ListApiKeysRequest(owner_id=created.api_key.owner_id),
        metadata=live_server.md("trader"),
    )
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    admin_view = stub.ListApiKeys(
        apb.ListApiKeysRequest(owner_id=created.api_key.owner_id), metadata=live_server.md("admin")
    )
    assert created.api_key.id in {k.id for k in admin_view.api_keys}

    whoami(stub, key_md(created.secret))
    revoked = stub.RevokeApiKey(
        apb.RevokeApiKeyRequest(key_id=created.api_key.id), metadata=live_server.md("analyst")
    ).api_key
    assert revoked.revoked
    err = call_error(whoami, stub, key_md(created.secret))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED


def test_rotation_keeps_the_old_secret_working_for_the_grace_period(
    stub: apbg.AuthServiceStub, live_server: LiveServer
) -> None:
    md = live_server.md("trader")
    old = stub.CreateApiKey(apb.CreateApiKeyRequest(display_name=unique("rot")), metadata=md)
    rotated = stub.RotateApiKey(
        apb.RotateApiKeyRequest(
            key_id=old.api_key.id, grace_period=duration_pb2.Duration(seconds=1)
        ),
        metadata=md,
    )
    assert KEY_RE.fullmatch(rotated.secret) and rotated.secret != old.secret
    assert rotated.api_key.display_name == old.api_key.display_name
    grace_end = rotated.previous_secret_expire_time.ToDatetime(tzinfo=UTC)
    assert timedelta(0) < grace_end - datetime.now(UTC) <= timedelta(seconds=2)

    assert whoami(stub, key_md(old.secret)).api_key_prefix == old.api_key.prefix
    assert whoami(stub, key_md(rotated.secret)).api_key_prefix == rotated.api_key.prefix
    again = call_error(
        stub.RotateApiKey, apb.RotateApiKeyRequest(key_id=old.api_key.id), metadata=md
    )
    assert again.code() == grpc.StatusCode.FAILED_PRECONDITION

    time.sleep(max(0.0, (grace_end - datetime.now(UTC)).total_seconds()) + 0.2)
    err = call_error(whoami, stub, key_md(old.secret))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert whoami(stub, key_md(rotated.secret)).user.username == "trader"

    too_long = call_error(
        stub.RotateApiKey,
        apb.RotateApiKeyRequest(
            key_id=rotated.api_key.id, grace_period=duration_pb2.Duration(seconds=31 * 86400)
        ),
        metadata=md,
    )
    assert too_long.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_demoting_the_owner_shrinks_existing_keys(
    stub: apbg.AuthServiceStub, strategies: spbg.StrategyServiceStub, live_server: LiveServer
) -> None:
    username, password, user_id = new_user(live_server, c.ROLE_TRADER, "keydemote")
    session = bearer(login(live_server, username, password).access_token)
    key = stub.CreateApiKey(apb.CreateApiKeyRequest(display_name="automation"), metadata=session)
    request = spb.CreateStrategyRequest(
        strategy=spb.Strategy(name=unique("kd"), strategy_type="sma_crossover")
    )
    strategies.CreateStrategy(request, metadata=key_md(key.secret))
    stub.UpdateUser(
        apb.UpdateUserRequest(
            user=apb.User(id=user_id, role=c.ROLE_VIEWER),
            update_mask=field_mask_pb2.FieldMask(paths=["role"]),
        ),
        metadata=live_server.md("admin"),
    )
    deadline = time.monotonic() + 5
    while True:
        err = call_error(strategies.CreateStrategy, request, metadata=key_md(key.secret))
        if err.code() == grpc.StatusCode.PERMISSION_DENIED or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED


def test_keys_page_oldest_first_and_count_against_a_quota(
    stub: apbg.AuthServiceStub, live_server: LiveServer
) -> None:
    username, password, _ = new_user(live_server, prefix="quota")
    md = bearer(login(live_server, username, password).access_token)
    made = [
        stub.CreateApiKey(apb.CreateApiKeyRequest(display_name=f"k{i}"), metadata=md).api_key.id
        for i in range(50)
    ]
    err = call_error(
        stub.CreateApiKey, apb.CreateApiKeyRequest(display_name="one more"), metadata=md
    )
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION and "50" in (err.details() or "")

    # Revoked keys still list but no longer count.
    stub.RevokeApiKey(apb.RevokeApiKeyRequest(key_id=made[0]), metadata=md)
    stub.CreateApiKey(apb.CreateApiKeyRequest(display_name="k50"), metadata=md)

    seen: list[str] = []
    token = ""
    while True:
        page = stub.ListApiKeys(apb.ListApiKeysRequest(page_size=20, page_token=token), metadata=md)
        assert len(page.api_keys) <= 20
        seen += [k.display_name for k in page.api_keys]
        token = page.next_page_token
        if not token:
            break
    assert seen == [f"k{i}" for i in range(51)]

    first = stub.ListApiKeys(apb.ListApiKeysRequest(page_size=1), metadata=md)
    err = call_error(
        stub.ListApiKeys,
        apb.ListApiKeysRequest(owner_id="someone-else", page_token=first.next_page_token),
        metadata=live_server.md("admin"),
    )
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
