"""Bad credentials of every kind are refused with one and the same message.

Each forged token differs from a working one (the control) in exactly one respect, so a
refusal is caused by that respect and not by a mistake in the forging.
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.protobuf import timestamp_pb2
from stratopt.v1 import auth_pb2 as apb
from stratopt.v1 import auth_pb2_grpc as apbg

from stratopt.api.auth_interceptor import INVALID_CREDENTIALS
from tests.conftest import JWT_SECRET, LiveServer, start_server, stop_server
from tests.integration.helpers import call_error
from tests.integration.security.support import Metadata, bearer, login, new_user, unique


@pytest.fixture(scope="module")
def stub(live_server: LiveServer) -> Iterator[apbg.AuthServiceStub]:
    with live_server.channel() as ch:
        yield apbg.AuthServiceStub(ch)


@pytest.fixture(scope="module")
def trader_id(stub: apbg.AuthServiceStub, live_server: LiveServer) -> str:
    me = stub.GetCurrentUser(apb.GetCurrentUserRequest(), metadata=live_server.md("trader"))
    return str(me.user.id)


def claims(sub: str, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": sub,
        "role": "trader",
        "iat": now,
        "nbf": now,
        "exp": now + 600,
        "iss": "stratopt",
        "aud": "stratopt-api",
        "jti": uuid.uuid4().hex,
        "typ": "access",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not None}


def hs256(payload: dict[str, Any], secret: str = JWT_SECRET) -> str:
    return jwt.encode(payload, secret, algorithm="HS256")


def b64(data: dict[str, Any]) -> str:
    raw = json.dumps(data, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def rs256(payload: dict[str, Any]) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return jwt.encode(payload, pem, algorithm="RS256")


FORGERIES: dict[str, Callable[[str], str]] = {
    "expired": lambda sub: hs256(
        claims(
            sub,
            iat=int(time.time()) - 3600,
            nbf=int(time.time()) - 3600,
            exp=int(time.time()) - 2700,
        )
    ),
    "not yet valid": lambda sub: hs256(
        claims(sub, nbf=int(time.time()) + 300, exp=int(time.time()) + 600)
    ),
    "wrong signature": lambda sub: hs256(claims(sub), secret="another-secret-" + "y" * 40),
    "alg none": lambda sub: f"{b64({'alg': 'none', 'typ': 'JWT'})}.{b64(claims(sub))}.",
    "HS384 with the right secret": lambda sub: jwt.encode(claims(sub), JWT_SECRET, "HS384"),
    "RS256 with an attacker's key": lambda sub: rs256(claims(sub)),
    "wrong audience": lambda sub: hs256(claims(sub, aud="someone-else")),
    "wrong issuer": lambda sub: hs256(claims(sub, iss="evil")),
    "no expiry": lambda sub: hs256(claims(sub, exp=None)),
    "refresh-typed token": lambda sub: hs256(claims(sub, typ="refresh")),
    "unknown subject": lambda sub: hs256(claims("f" * 32)),
    "lifetime beyond the access ttl": lambda sub: hs256(claims(sub, exp=int(time.time()) + 86_400)),
    "garbage": lambda sub: "not-a-jwt-at-all",
    "three garbage parts": lambda sub: "a.b.c",
    "empty": lambda sub: "",
}


def me(stub: apbg.AuthServiceStub, md: Metadata) -> Any:
    return stub.GetCurrentUser(apb.GetCurrentUserRequest(), metadata=md)


def test_the_control_forgery_works(stub: apbg.AuthServiceStub, trader_id: str) -> None:
    assert me(stub, bearer(hs256(claims(trader_id)))).user.id == trader_id


@pytest.mark.parametrize("kind", sorted(FORGERIES))
def test_forged_access_tokens_are_refused_with_the_generic_message(
    kind: str, stub: apbg.AuthServiceStub, trader_id: str
) -> None:
    token = FORGERIES[kind](trader_id)
    err = call_error(me, stub, bearer(token))
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert err.details() == INVALID_CREDENTIALS
    if token:
        assert token not in str(err.debug_error_string())


def test_malformed_headers_and_conflicting_credentials(
    stub: apbg.AuthServiceStub, live_server: LiveServer, trader_id: str
) -> None:
    good = hs256(claims(trader_id))
    for md in (
        [("authorization", f"Basic {good}")],
        [("authorization", "Bearer")],
        [("authorization", f"Bearer {good}"), ("x-api-key", "sk_00000000_" + "a" * 40)],
        [("x-api-key", "sk_nothex!_whatever")],
        [("x-api-key", "sk_00000000_" + "a" * 40)],
    ):
        err = call_error(me, stub, md)
        assert err.code() == grpc.StatusCode.UNAUTHENTICATED, md
        assert err.details() == INVALID_CREDENTIALS, md


def test_missing_credentials_say_how_to_authenticate(stub: apbg.AuthServiceStub) -> None:
    err = call_error(me, stub, [])
    assert err.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "bearer token or x-api-key" in (err.details() or "")


def test_revoked_and_reused_refresh_tokens(live_server: LiveServer) -> None:
    username, password, _ = new_user(live_server, prefix="rt")
    first = login(live_server, username, password)
    with live_server.channel() as ch:
        stub = apbg.AuthServiceStub(ch)
        rotated = stub.RefreshToken(apb.RefreshTokenRequest(refresh_token=first.refresh_token))
        assert me(stub, bearer(rotated.access_token)).user.username == username
        # The first token was used: presenting it again is reuse and ends the whole session.
        err = call_error(
            stub.RefreshToken, apb.RefreshTokenRequest(refresh_token=first.refresh_token)
        )
        assert (err.code(), err.details()) == (grpc.StatusCode.UNAUTHENTICATED, INVALID_CREDENTIALS)
        err = call_error(
            stub.RefreshToken, apb.RefreshTokenRequest(refresh_token=rotated.refresh_token)
        )
        assert (err.code(), err.details()) == (grpc.StatusCode.UNAUTHENTICATED, INVALID_CREDENTIALS)
        err = call_error(me, stub, bearer(rotated.access_token))
        assert (err.code(), err.details()) == (grpc.StatusCode.UNAUTHENTICATED, INVALID_CREDENTIALS)

        # Logout revokes the refresh token and ends the session's access token too.
        second = login(live_server, username, password)
        stub.Logout(apb.LogoutRequest(refresh_token=second.refresh_token))
        for call in (
            lambda: stub.RefreshToken(apb.RefreshTokenRequest(refresh_token=second.refresh_token)),
            lambda: me(stub, bearer(second.access_token)),
        ):
            err = call_error(call)
            assert (err.code(), err.details()) == (
                grpc.StatusCode.UNAUTHENTICATED,
                INVALID_CREDENTIALS,
            )
        # Garbage and unknown refresh tokens: the same answer.
        for token in ("rt_" + "A" * 43, "garbage"):
            err = call_error(stub.RefreshToken, apb.RefreshTokenRequest(refresh_token=token))
            assert (err.code(), err.details()) == (
                grpc.StatusCode.UNAUTHENTICATED,
                INVALID_CREDENTIALS,
            )


def test_revoked_and_expired_api_keys(live_server: LiveServer) -> None:
    with live_server.channel() as ch:
        stub = apbg.AuthServiceStub(ch)
        md = live_server.md("analyst")
        revoked = stub.CreateApiKey(apb.CreateApiKeyRequest(display_name=unique("k")), metadata=md)
        assert me(stub, [("x-api-key", revoked.secret)]).auth_method == "api_key"
        stub.RevokeApiKey(apb.RevokeApiKeyRequest(key_id=revoked.api_key.id), metadata=md)

        soon = timestamp_pb2.Timestamp()
        soon.FromDatetime(datetime.now(UTC) + timedelta(seconds=1))
        expiring = stub.CreateApiKey(
            apb.CreateApiKeyRequest(display_name=unique("k"), expire_time=soon), metadata=md
        )
        assert me(stub, [("x-api-key", expiring.secret)]).auth_method == "api_key"
        time.sleep(1.2)
        for secret in (revoked.secret, expiring.secret):
            err = call_error(me, stub, [("x-api-key", secret)])
            assert (err.code(), err.details()) == (
                grpc.StatusCode.UNAUTHENTICATED,
                INVALID_CREDENTIALS,
            )
            # A near miss of a real key (same prefix, wrong secret) is just as unknown.
            tampered = secret[:-1] + ("a" if secret[-1] != "a" else "b")
            err = call_error(me, stub, [("x-api-key", tampered)])
            assert err.details() == INVALID_CREDENTIALS


def test_rotating_the_jwt_secret_keeps_sessions_for_the_grace_period(tmp_path: Path) -> None:
    """Restart with a new secret and the old one as previous: tokens already handed out keep
    working; once the grace period is over they fail, and new logins use the new key."""
    old_secret = "old-secret-" + "o" * 40
    new_secret = "new-secret-" + "n" * 40
    srv = start_server(tmp_path, {"STRATOPT_JWT_SECRET": old_secret})
    try:
        old_token = srv.token("viewer")
    finally:
        stop_server(srv)

    def who(addr: str, token: str) -> str:
        with grpc.insecure_channel(addr) as ch:
            me = apbg.AuthServiceStub(ch).GetCurrentUser(
                apb.GetCurrentUserRequest(), metadata=[("authorization", f"Bearer {token}")]
            )
            return str(me.user.username)

    later = (datetime.now(UTC) + timedelta(minutes=15)).isoformat()
    srv = start_server(
        tmp_path,
        {
            "STRATOPT_JWT_SECRET": new_secret,
            "STRATOPT_JWT_PREVIOUS_SECRETS": old_secret,
            "STRATOPT_JWT_PREVIOUS_KEYS_UNTIL": later,
        },
    )
    try:
        assert who(srv.addr, old_token) == "viewer"
        new_token = srv.token("viewer")
        assert (
            jwt.get_unverified_header(new_token)["kid"]
            != jwt.get_unverified_header(old_token)["kid"]
        )
        assert who(srv.addr, new_token) == "viewer"
    finally:
        stop_server(srv)

    over = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    srv = start_server(
        tmp_path,
        {
            "STRATOPT_JWT_SECRET": new_secret,
            "STRATOPT_JWT_PREVIOUS_SECRETS": old_secret,
            "STRATOPT_JWT_PREVIOUS_KEYS_UNTIL": over,
        },
    )
    try:
        with pytest.raises(grpc.RpcError) as info:
            who(srv.addr, old_token)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED  # type: ignore[attr-defined]
        assert who(srv.addr, new_token) == "viewer"
    finally:
        stop_server(srv)
