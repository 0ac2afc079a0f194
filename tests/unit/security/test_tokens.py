from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
from datetime import timedelta
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from stratopt.security import tokens as tokens_module
from stratopt.security.errors import GENERIC_AUTH_MESSAGE, AuthenticationError
from stratopt.security.roles import Role
from stratopt.security.tokens import REQUIRED_CLAIMS, TokenConfig, TokenService

from .conftest import WallClock

SECRET = b"s" * 16 + b"e" * 16 + b"cret-material"
OTHER_SECRET = b"o" * 48


def hs_service(clock: WallClock, **options: Any) -> TokenService:
    return TokenService(TokenConfig(algorithm="HS256", secret=SECRET, **options), clock=clock)


def claims_at(clock: WallClock, **overrides: Any) -> dict[str, Any]:
    now = int(clock().timestamp())
    payload: dict[str, Any] = {
        "sub": "user-1",
        "role": "trader",
        "iat": now,
        "nbf": now,
        "exp": now + 900,
        "iss": "stratopt",
        "aud": "stratopt-api",
        "jti": "j-1",
        "typ": "access",
    }
    payload.update(overrides)
    return {k: v for k, v in payload.items() if v is not None}


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def hand_made(header: dict[str, Any], payload: dict[str, Any], key: bytes | None) -> str:
    """Build a JWS without any library guard rails, as an attacker would."""
    signing_input = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    signature = b"" if key is None else hmac.new(key, signing_input.encode(), "sha256").digest()
    return f"{signing_input}.{b64(signature)}"


def assert_rejected(service: TokenService, token: Any) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as info:
        service.verify_access(token)
    err = info.value
    assert str(err) == GENERIC_AUTH_MESSAGE
    assert err.reason
    if isinstance(token, str) and len(token) > 8:
        assert token not in err.reason
        assert token not in repr(err)
    return err


# --- happy paths ----------------------------------------------------------------------------


def test_hs256_roundtrip_carries_claims(clock: WallClock) -> None:
    service = hs_service(clock)
    token, expires_at = service.issue_access("user-1", Role.TRADER, session_id="fam-1")
    claims = service.verify_access(token)
    assert claims.subject == "user-1"
    assert claims.role is Role.TRADER
    assert claims.session_id == "fam-1"
    assert claims.issued_at == clock()
    assert expires_at == claims.expires_at == clock() + timedelta(minutes=15)
    payload = jwt.decode(token, options={"verify_signature": False})
    assert set(REQUIRED_CLAIMS) <= set(payload)
    assert payload["typ"] == "access"


def test_each_token_gets_a_unique_jti(clock: WallClock) -> None:
    service = hs_service(clock)
    first = service.verify_access(service.issue_access("u", Role.VIEWER).token)
    second = service.verify_access(service.issue_access("u", Role.VIEWER).token)
    assert first.token_id != second.token_id


@pytest.mark.parametrize("algorithm", ["RS256", "ES256"])
def test_asymmetric_roundtrip_and_verify_only_replica(
    clock: WallClock,
    rsa_pems: tuple[bytes, bytes],
    ec_pems: tuple[bytes, bytes],
    algorithm: str,
) -> None:
    private, public = rsa_pems if algorithm == "RS256" else ec_pems
    issuer = TokenService(
        TokenConfig(algorithm=algorithm, private_key_pem=private),
        clock=clock,  # type: ignore[arg-type]
    )
    replica = TokenService(
        TokenConfig(algorithm=algorithm, public_key_pem=public),
        clock=clock,  # type: ignore[arg-type]
    )
    token, _ = issuer.issue_access("user-9", Role.ANALYST)
    assert jwt.get_unverified_header(token)["alg"] == algorithm
    assert replica.verify_access(token).subject == "user-9"
    assert issuer.verify_access(token).role is Role.ANALYST
    with pytest.raises(RuntimeError):
        replica.issue_access("user-9", Role.ANALYST)


# --- time -------------------------------------------------------------------------------------


def test_expired_token_rejected_after_leeway(clock: WallClock) -> None:
    service = hs_service(clock, leeway=timedelta(seconds=10))
    token, _ = service.issue_access("user-1", Role.VIEWER)
    clock.advance(minutes=15, seconds=5)
    assert service.verify_access(token).subject == "user-1"  # inside leeway
    clock.advance(seconds=6)
    assert assert_rejected(service, token).reason == "token expired"


def test_expired_token_rejected_even_when_cached(clock: WallClock) -> None:
    service = hs_service(clock, leeway=timedelta(0))
    token, _ = service.issue_access("user-1", Role.VIEWER)
    service.verify_access(token)
    clock.advance(minutes=15)
    assert_rejected(service, token)


def test_not_yet_valid_token_rejected(clock: WallClock) -> None:
    service = hs_service(clock)
    now = int(clock().timestamp())
    future_nbf = jwt.encode(claims_at(clock, nbf=now + 120), SECRET, algorithm="HS256")
    assert assert_rejected(service, future_nbf).reason == "token not yet valid"
    clock.advance(minutes=2)
    assert service.verify_access(future_nbf).subject == "user-1"


def test_token_issued_in_the_future_rejected(clock: WallClock) -> None:
    service = hs_service(clock)
    now = int(clock().timestamp())
    token = jwt.encode(
        claims_at(clock, iat=now + 300, nbf=now + 300, exp=now + 900), SECRET, algorithm="HS256"
    )
    assert_rejected(service, token)


def test_lifetime_longer_than_access_ttl_rejected(clock: WallClock) -> None:
    service = hs_service(clock)
    now = int(clock().timestamp())
    token = jwt.encode(claims_at(clock, exp=now + 86_400), SECRET, algorithm="HS256")
    assert assert_rejected(service, token).reason == "lifetime exceeds access_ttl"


@pytest.mark.parametrize("bad", ["1900000000", 1.9e9, True, None])
def test_non_integer_time_claims_rejected(clock: WallClock, bad: Any) -> None:
    service = hs_service(clock)
    payload = claims_at(clock)
    payload["exp"] = bad
    token = jwt.encode(payload, SECRET, algorithm="HS256")
    assert_rejected(service, token)


# --- forgery and confusion ----------------------------------------------------------------------


def test_wrong_secret_rejected(clock: WallClock) -> None:
    service = hs_service(clock)
    forged = jwt.encode(claims_at(clock), OTHER_SECRET, algorithm="HS256")
    assert assert_rejected(service, forged).reason == "bad signature"


def test_tampered_payload_rejected(clock: WallClock) -> None:
    service = hs_service(clock)
    token, _ = service.issue_access("user-1", Role.VIEWER)
    header, _, signature = token.split(".")
    payload = b64(json.dumps(claims_at(clock, role="admin")).encode())
    assert_rejected(service, f"{header}.{payload}.{signature}")


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_rejected(clock: WallClock, alg: str) -> None:
    service = hs_service(clock)
    unsigned = hand_made({"alg": alg, "typ": "JWT"}, claims_at(clock), key=None)
    assert_rejected(service, unsigned)
    assert_rejected(service, unsigned.rstrip("."))


def test_hs256_token_signed_with_public_key_rejected_by_rs256(
    clock: WallClock, rsa_pems: tuple[bytes, bytes]
) -> None:
    """Key confusion: the attacker knows the public key and uses it as an HMAC secret."""
    private, public = rsa_pems
    service = TokenService(TokenConfig(algorithm="RS256", private_key_pem=private), clock=clock)
    forged = hand_made({"alg": "HS256", "typ": "JWT"}, claims_at(clock), key=public)
    assert assert_rejected(service, forged).reason == "algorithm not allowed"


def test_rs256_token_rejected_by_hs256(clock: WallClock, rsa_pems: tuple[bytes, bytes]) -> None:
    token = jwt.encode(claims_at(clock), rsa_pems[0], algorithm="RS256")
    assert_rejected(hs_service(clock), token)


def test_es256_token_rejected_by_rs256(
    clock: WallClock, rsa_pems: tuple[bytes, bytes], ec_pems: tuple[bytes, bytes]
) -> None:
    service = TokenService(TokenConfig(algorithm="RS256", public_key_pem=rsa_pems[1]), clock=clock)
    token = jwt.encode(claims_at(clock), ec_pems[0], algorithm="ES256")
    assert_rejected(service, token)


def test_rs256_token_from_other_key_rejected(
    clock: WallClock, rsa_pems: tuple[bytes, bytes], other_rsa_pems: tuple[bytes, bytes]
) -> None:
    service = TokenService(TokenConfig(algorithm="RS256", public_key_pem=rsa_pems[1]), clock=clock)
    token = jwt.encode(claims_at(clock), other_rsa_pems[0], algorithm="RS256")
    assert assert_rejected(service, token).reason == "bad signature"


def test_embedded_key_headers_rejected(clock: WallClock) -> None:
    service = hs_service(clock)
    token = jwt.encode(
        claims_at(clock), SECRET, algorithm="HS256", headers={"jku": "https://evil/keys"}
    )
    assert assert_rejected(service, token).reason == "unexpected header parameters"


# --- claims -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"aud": "someone-else"}, "wrong audience"),
        ({"aud": ["stratopt-api", "other"]}, "wrong audience"),
        ({"iss": "evil"}, "wrong issuer"),
        ({"typ": "refresh"}, "wrong token type"),
        ({"role": "superuser"}, "unknown role"),
        ({"sub": ""}, None),
        ({"sub": 42}, None),
    ],
)
def test_bad_claims_rejected(
    clock: WallClock, overrides: dict[str, Any], reason: str | None
) -> None:
    token = jwt.encode(claims_at(clock, **overrides), SECRET, algorithm="HS256")
    err = assert_rejected(hs_service(clock), token)
    if reason is not None:
        assert err.reason == reason


@pytest.mark.parametrize("claim", REQUIRED_CLAIMS)
def test_missing_required_claim_rejected(clock: WallClock, claim: str) -> None:
    payload = claims_at(clock)
    del payload[claim]
    token = jwt.encode(payload, SECRET, algorithm="HS256")
    assert_rejected(hs_service(clock), token)


@pytest.mark.parametrize(
    "garbage",
    ["", "abc", "a.b.c", "....", "eyJhbGciOiJIUzI1NiJ9.bm90IGpzb24.c2ln", "x" * 10_000, None, 123],
)
def test_garbage_rejected(clock: WallClock, garbage: Any) -> None:
    assert_rejected(hs_service(clock), garbage)


def test_failures_leave_no_token_in_logs(
    clock: WallClock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    service = hs_service(clock)
    forged = jwt.encode(claims_at(clock), OTHER_SECRET, algorithm="HS256")
    err = assert_rejected(service, forged)
    logging.getLogger("test").warning("auth failed: %s (%s)", err, err.reason)
    assert forged not in caplog.text
    assert err.__cause__ is None and err.__suppress_context__


# --- cache --------------------------------------------------------------------------------------


def test_cache_skips_decoding_for_known_tokens(
    clock: WallClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    service = hs_service(clock)
    token, _ = service.issue_access("user-1", Role.VIEWER)
    first = service.verify_access(token)

    def boom(*_: Any, **__: Any) -> Any:
        raise AssertionError("decoded again")

    monkeypatch.setattr(tokens_module.jwt, "decode", boom)
    assert service.verify_access(token) == first


def test_cache_is_bounded_lru(clock: WallClock, monkeypatch: pytest.MonkeyPatch) -> None:
    service = TokenService(TokenConfig(secret=SECRET), clock=clock, cache_size=2)
    issued = [service.issue_access(f"user-{i}", Role.VIEWER).token for i in range(3)]
    for token in issued:
        service.verify_access(token)
    monkeypatch.setattr(tokens_module.jwt, "decode", lambda *a, **k: {})
    assert service.verify_access(issued[2]).subject == "user-2"
    assert_rejected(service, issued[0])  # evicted, so decoded (by the stub) and refused


def test_cache_disabled_with_size_zero(clock: WallClock, monkeypatch: pytest.MonkeyPatch) -> None:
    service = TokenService(TokenConfig(secret=SECRET), clock=clock, cache_size=0)
    token, _ = service.issue_access("user-1", Role.VIEWER)
    service.verify_access(token)
    monkeypatch.setattr(tokens_module.jwt, "decode", lambda *a, **k: {})
    assert_rejected(service, token)


# --- configuration ------------------------------------------------------------------------------


def test_config_rejects_weak_or_mismatched_material(
    rsa_pems: tuple[bytes, bytes], ec_pems: tuple[bytes, bytes], other_rsa_pems: tuple[bytes, bytes]
) -> None:
    with pytest.raises(ValueError):
        TokenConfig(algorithm="HS256", secret=b"short")
    with pytest.raises(ValueError):
        TokenConfig(algorithm="HS256", secret=SECRET, public_key_pem=rsa_pems[1])
    with pytest.raises(ValueError):
        TokenConfig(algorithm="RS256")
    with pytest.raises(ValueError):
        TokenConfig(algorithm="RS256", secret=SECRET)
    with pytest.raises(ValueError):
        TokenConfig(algorithm="PS256", secret=SECRET)  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        TokenService(TokenConfig(algorithm="RS256", private_key_pem=ec_pems[0]))
    with pytest.raises(ValueError):
        TokenService(TokenConfig(algorithm="ES256", public_key_pem=rsa_pems[1]))
    with pytest.raises(ValueError):
        TokenService(
            TokenConfig(
                algorithm="RS256", private_key_pem=rsa_pems[0], public_key_pem=other_rsa_pems[1]
            )
        )


def test_config_rejects_small_rsa_and_wrong_curve() -> None:
    small = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    p384 = ec.generate_private_key(ec.SECP384R1())
    for algorithm, key in (("RS256", small), ("ES256", p384)):
        pem = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        with pytest.raises(ValueError):
            TokenService(TokenConfig(algorithm=algorithm, public_key_pem=pem))  # type: ignore[arg-type]


def test_config_from_files_and_repr_hides_secrets(
    tmp_path: Path, clock: WallClock, rsa_pems: tuple[bytes, bytes]
) -> None:
    secret_file = tmp_path / "jwt.secret"
    secret_file.write_bytes(SECRET + b"\n")
    config = TokenConfig.from_files("HS256", secret_file=secret_file)
    assert config.secret == SECRET
    assert SECRET.decode() not in repr(config)

    (tmp_path / "key.pem").write_bytes(rsa_pems[0])
    rs = TokenConfig.from_files("RS256", private_key_file=tmp_path / "key.pem")
    assert "PRIVATE" not in repr(rs)
    service = TokenService(rs, clock=clock)
    assert service.verify_access(service.issue_access("u", Role.ADMIN).token).role is Role.ADMIN


def test_token_hash_is_not_the_token(clock: WallClock) -> None:
    """Guards the cache-key property the docstring promises: keys are digests."""
    service = hs_service(clock)
    token, _ = service.issue_access("user-1", Role.VIEWER)
    service.verify_access(token)
    assert list(service._cache) == [hashlib.sha256(token.encode()).digest()]


# --- key rotation: kid and a key set ---------------------------------------------------------


def test_tokens_name_their_key(clock: WallClock) -> None:
    service = hs_service(clock)
    token, _ = service.issue_access("user-1", Role.VIEWER)
    kid = jwt.get_unverified_header(token)["kid"]
    assert kid == service.key_id and len(kid) >= 16
    assert SECRET.decode(errors="ignore")[:8] not in kid  # derived, never the secret
    assert hs_service(clock).key_id == kid  # stable across restarts and replicas
    other = TokenService(TokenConfig(algorithm="HS256", secret=OTHER_SECRET), clock=clock)
    assert other.key_id != kid


def test_rotated_secret_keeps_old_tokens_for_the_grace_period(clock: WallClock) -> None:
    old = hs_service(clock)
    token, _ = old.issue_access("user-1", Role.TRADER)
    until = clock() + timedelta(minutes=15)
    rotated = TokenService(
        TokenConfig(
            algorithm="HS256",
            secret=OTHER_SECRET,
            previous_secrets=(SECRET,),
            previous_keys_until=until,
        ),
        clock=clock,
    )
    assert rotated.verify_access(token).subject == "user-1"  # signed by the previous key
    fresh, _ = rotated.issue_access("user-2", Role.VIEWER)
    assert jwt.get_unverified_header(fresh)["kid"] == rotated.key_id != old.key_id
    with pytest.raises(AuthenticationError):
        old.verify_access(fresh)  # the old replica does not know the new key
    clock.advance(minutes=16)
    again, _ = old.issue_access("user-1", Role.TRADER)  # minted with the retired key
    rotated.clear_cache()
    err = assert_rejected(rotated, again)
    assert err.reason == "signing key retired"
    # Without the previous key the old tokens fail at once.
    plain = TokenService(TokenConfig(algorithm="HS256", secret=OTHER_SECRET), clock=clock)
    assert assert_rejected(plain, again).reason == "unknown signing key"


def test_previous_keys_without_an_end_verify_while_configured(clock: WallClock) -> None:
    """Step one of a rolling rotation: every replica learns the new key before any signs."""
    new = TokenService(TokenConfig(algorithm="HS256", secret=OTHER_SECRET), clock=clock)
    learning = hs_service(clock, previous_secrets=(OTHER_SECRET,))
    token, _ = new.issue_access("user-3", Role.ANALYST)
    clock.advance(minutes=10)
    assert learning.verify_access(token).subject == "user-3"


def test_unknown_kid_and_legacy_tokens(clock: WallClock) -> None:
    service = hs_service(clock)
    payload = claims_at(clock)
    forged_kid = hand_made({"alg": "HS256", "typ": "JWT", "kid": "nope"}, payload, SECRET)
    assert assert_rejected(service, forged_kid).reason == "unknown signing key"
    # Tokens issued before key ids existed carry none: the current key alone verifies them.
    legacy = hand_made({"alg": "HS256", "typ": "JWT"}, payload, SECRET)
    assert service.verify_access(legacy).subject == "user-1"
    rotated = TokenService(
        TokenConfig(algorithm="HS256", secret=OTHER_SECRET, previous_secrets=(SECRET,)),
        clock=clock,
    )
    assert_rejected(rotated, legacy)


def test_asymmetric_rotation_and_key_set(
    clock: WallClock, rsa_pems: tuple[bytes, bytes], other_rsa_pems: tuple[bytes, bytes]
) -> None:
    old_private, old_public = rsa_pems
    new_private, _ = other_rsa_pems
    old = TokenService(TokenConfig(algorithm="RS256", private_key_pem=old_private), clock=clock)
    token, _ = old.issue_access("user-4", Role.TRADER)
    rotated = TokenService(
        TokenConfig(
            algorithm="RS256",
            private_key_pem=new_private,
            previous_public_keys_pem=(old_public,),
        ),
        clock=clock,
    )
    assert rotated.verify_access(token).subject == "user-4"
    keys = rotated.key_set()["keys"]
    assert [k["kid"] for k in keys] == [rotated.key_id, old.key_id]
    assert all(k["kty"] == "RSA" and k["use"] == "sig" and "d" not in k for k in keys)
    assert TokenService(TokenConfig(algorithm="HS256", secret=SECRET)).key_set() == {"keys": []}
