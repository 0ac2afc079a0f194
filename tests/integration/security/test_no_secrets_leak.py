"""No password, token or key shows up in the server's logs or in any error a client sees.

A server of its own runs at DEBUG level; a session exercises every credential path, good and
bad, and then its captured log and every collected error are searched for each secret.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2
from stratopt.v1 import auth_pb2 as apb
from stratopt.v1 import auth_pb2_grpc as apbg
from stratopt.v1 import common_pb2 as c

from tests.conftest import DEMO_PASSWORDS, LiveServer, start_server, stop_server

SECRET_PASSWORD = "Zebra-okapi-lantern-7781"
WRONG_PASSWORD = "Wr0ng-guess-quokka-5512"
NEW_PASSWORD = "Fresh-narwhal-harbor-3390"
WEAK_PASSWORD = "weakling"
GARBAGE_BEARER = "garbage-bearer-token-qqq-123"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    srv = start_server(tmp_path_factory.mktemp("secrets"), {"STRATOPT_LOG_LEVEL": "DEBUG"})
    yield srv
    stop_server(srv)


class Session:
    """Runs calls, keeping every secret it learns and every error it sees."""

    def __init__(self, stub: apbg.AuthServiceStub) -> None:
        self.stub = stub
        self.secrets: set[str] = {SECRET_PASSWORD, WRONG_PASSWORD, NEW_PASSWORD, WEAK_PASSWORD}
        self.secrets |= set(DEMO_PASSWORDS.values()) | {GARBAGE_BEARER}
        self.errors: list[grpc.RpcError] = []

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except grpc.RpcError as e:
            self.errors.append(e)
            return None

    def keep(self, *values: str) -> None:
        for v in values:
            if v:
                self.secrets.add(v)
                self.secrets.add(v.rsplit("_", 1)[-1])  # the secret part of a key


def key_md(secret: str) -> list[tuple[str, str]]:
    return [("x-api-key", secret)]


def run_session(srv: LiveServer) -> Session:
    with srv.channel() as ch:
        stub = apbg.AuthServiceStub(ch)
        s = Session(stub)
        admin = stub.Login(apb.LoginRequest(username="admin", password=DEMO_PASSWORDS["admin"]))
        s.keep(admin.access_token, admin.refresh_token)
        admin_md = [("authorization", f"Bearer {admin.access_token}")]

        s.call(
            stub.CreateUser,
            apb.CreateUserRequest(
                user=apb.User(username="leaky", role=c.ROLE_TRADER), password=WEAK_PASSWORD
            ),
            metadata=admin_md,
        )
        stub.CreateUser(
            apb.CreateUserRequest(
                user=apb.User(username="leaky", role=c.ROLE_TRADER), password=SECRET_PASSWORD
            ),
            metadata=admin_md,
        )
        s.call(stub.Login, apb.LoginRequest(username="leaky", password=WRONG_PASSWORD))
        # A password typed into the username field must not be recorded either.
        s.call(stub.Login, apb.LoginRequest(username=WRONG_PASSWORD, password=SECRET_PASSWORD))
        user = stub.Login(apb.LoginRequest(username="leaky", password=SECRET_PASSWORD))
        s.keep(user.access_token, user.refresh_token)
        md = [("authorization", f"Bearer {user.access_token}")]

        rotated = stub.RefreshToken(apb.RefreshTokenRequest(refresh_token=user.refresh_token))
        s.keep(rotated.access_token, rotated.refresh_token)
        s.call(stub.RefreshToken, apb.RefreshTokenRequest(refresh_token=user.refresh_token))
        s.call(stub.Logout, apb.LogoutRequest(refresh_token=rotated.refresh_token))

        again = stub.Login(apb.LoginRequest(username="leaky", password=SECRET_PASSWORD))
        s.keep(again.access_token, again.refresh_token)
        md = [("authorization", f"Bearer {again.access_token}")]
        key = stub.CreateApiKey(apb.CreateApiKeyRequest(display_name="ci"), metadata=md)
        s.keep(key.secret)
        stub.GetCurrentUser(apb.GetCurrentUserRequest(), metadata=[("x-api-key", key.secret)])
        new = stub.RotateApiKey(
            apb.RotateApiKeyRequest(
                key_id=key.api_key.id, grace_period=duration_pb2.Duration(seconds=0)
            ),
            metadata=md,
        )
        s.keep(new.secret)
        s.call(stub.GetCurrentUser, apb.GetCurrentUserRequest(), metadata=key_md(key.secret))
        stub.RevokeApiKey(apb.RevokeApiKeyRequest(key_id=new.api_key.id), metadata=md)
        s.call(stub.GetCurrentUser, apb.GetCurrentUserRequest(), metadata=key_md(new.secret))
        for bad in (GARBAGE_BEARER, again.access_token[:-3] + "abc"):
            s.keep(bad)
            s.call(
                stub.GetCurrentUser,
                apb.GetCurrentUserRequest(),
                metadata=[("authorization", f"Bearer {bad}")],
            )
        s.call(
            stub.ChangePassword,
            apb.ChangePasswordRequest(current_password=WRONG_PASSWORD, new_password=NEW_PASSWORD),
            metadata=md,
        )
        s.call(
            stub.ChangePassword,
            apb.ChangePasswordRequest(current_password=SECRET_PASSWORD, new_password=WEAK_PASSWORD),
            metadata=md,
        )
        stub.ChangePassword(
            apb.ChangePasswordRequest(current_password=SECRET_PASSWORD, new_password=NEW_PASSWORD),
            metadata=md,
        )
        stub.ListAuditEvents(apb.ListAuditEventsRequest(page_size=200), metadata=admin_md)
        return s


@pytest.fixture(scope="module")
def session(server: LiveServer) -> Session:
    return run_session(server)


def test_no_secret_in_logs_or_errors(server: LiveServer, session: Session) -> None:
    assert len(session.errors) >= 10, "the session must exercise the failure paths"
    time.sleep(0.3)  # let the last log lines reach the file
    log = server.logs()
    assert "GetCurrentUser" in log, "the server logged the calls"
    assert "$scrypt$" not in log
    leaked = sorted(s for s in session.secrets if len(s) >= 8 and s in log)
    assert not leaked, f"secrets in the server log: {[x[:6] + '...' for x in leaked]}"

    for err in session.errors:
        seen = " ".join(
            [
                err.details() or "",  # type: ignore[attr-defined]
                err.debug_error_string(),  # type: ignore[attr-defined]
                repr(err.trailing_metadata()),  # type: ignore[attr-defined]
            ]
        )
        for secret in session.secrets:
            assert len(secret) < 8 or secret not in seen, (err.code(), secret[:6])  # type: ignore[attr-defined]


def test_the_database_holds_no_plaintext_credentials(server: LiveServer, session: Session) -> None:
    dump = "\n".join(sqlite3.connect(Path(server.data_dir) / "stratopt.db").iterdump())
    leaked = sorted(s for s in session.secrets if len(s) >= 8 and s in dump)
    assert not leaked, f"plaintext credentials in the database: {[x[:6] for x in leaked]}"
    assert "$scrypt$ln=" in dump  # what is stored instead of passwords
