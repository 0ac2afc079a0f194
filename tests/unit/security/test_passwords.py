from __future__ import annotations

import asyncio
import threading
import time

import pytest

from stratopt.security import passwords
from stratopt.security.passwords import (
    DEFAULT_PARAMS,
    PasswordHasher,
    ScryptParams,
    check_password_policy,
    hash_password,
    needs_rehash,
    verify_password,
)

FAST = ScryptParams(log2_n=10, r=8, p=1)  # ~1 MiB, milliseconds: keeps the suite quick
GOOD = "correct horse battery staple"


def test_roundtrip_with_fast_params() -> None:
    encoded = hash_password(GOOD, FAST)
    assert encoded.startswith("$scrypt$ln=10,r=8,p=1$")
    assert GOOD not in encoded
    assert verify_password(GOOD, encoded)
    assert not verify_password(GOOD + "!", encoded)
    assert not verify_password("", encoded)


def test_default_params_roundtrip() -> None:
    encoded = hash_password(GOOD)
    assert encoded.startswith("$scrypt$ln=17,r=8,p=1$")
    assert verify_password(GOOD, encoded)
    assert not needs_rehash(encoded)


def test_salts_are_random() -> None:
    first, second = hash_password(GOOD, FAST), hash_password(GOOD, FAST)
    assert first != second
    assert first.split("$")[3] != second.split("$")[3]


def test_unicode_is_normalized() -> None:
    composed, decomposed = "café-au-lait-1234", "cafe\u0301-au-lait-1234"
    assert composed != decomposed
    assert verify_password(decomposed, hash_password(composed, FAST))


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "not a hash",
        "$argon2id$v=19$m=65536,t=3,p=4$c2FsdA$aGFzaA",
        "$scrypt$ln=10,r=8,p=1$!!!$AAAA",
        "$scrypt$ln=30,r=8,p=1$c2FsdHNhbHRzYWx0c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",  # 128 GiB
        "$scrypt$ln=10,r=8,p=1$c2FsdA$aGFzaGhhc2hoYXNoaGFzaA",  # salt too short
    ],
)
def test_malformed_or_hostile_hashes_verify_false(stored: str) -> None:
    assert not verify_password(GOOD, stored, FAST)
    assert needs_rehash(stored)


def test_tampered_hash_fails() -> None:
    encoded = hash_password(GOOD, FAST)
    head, key = encoded.rsplit("$", 1)
    tampered = f"{head}${'A' if key[0] != 'A' else 'B'}{key[1:]}"
    assert not verify_password(GOOD, tampered)


def test_missing_user_still_costs_a_hash(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[ScryptParams] = []
    real = passwords._derive

    def counting(password: str, salt: bytes, params: ScryptParams) -> bytes:
        calls.append(params)
        return real(password, salt, params)

    monkeypatch.setattr(passwords, "_derive", counting)
    assert not verify_password(GOOD, None, FAST)
    assert calls == [FAST]


def test_needs_rehash_when_params_change() -> None:
    encoded = hash_password(GOOD, FAST)
    assert not needs_rehash(encoded, FAST)
    assert needs_rehash(encoded, ScryptParams(log2_n=11))
    assert needs_rehash(encoded, ScryptParams(log2_n=10, key_bytes=64))
    assert needs_rehash(encoded, DEFAULT_PARAMS)


def test_params_validation() -> None:
    with pytest.raises(ValueError):
        ScryptParams(log2_n=23)
    with pytest.raises(ValueError):
        ScryptParams(log2_n=21, r=16)  # 4 GiB
    with pytest.raises(ValueError):
        ScryptParams(salt_bytes=8)
    assert DEFAULT_PARAMS.memory_bytes == pytest.approx(128 * 2**20, rel=0.01)


# --- policy -------------------------------------------------------------------------------


def test_policy_accepts_a_long_passphrase() -> None:
    assert check_password_policy(GOOD, username="alice") == []


@pytest.mark.parametrize(
    ("password", "fragment"),
    [
        ("short1!", "at least 12"),
        ("aaaaaaaaaaaaaaaa", "different characters"),
        ("abababababab1212", "different characters"),
        ("Password1234", "commonly used"),
        ("my-alice-passphrase", "username"),
        ("my stratopt password", "service name"),
        ("x" * 1025 + "abcdef", "at most"),
    ],
)
def test_policy_rejections(password: str, fragment: str) -> None:
    problems = check_password_policy(password, username="Alice")
    assert any(fragment in p for p in problems), problems
    assert all(password not in p for p in problems)


def test_policy_counts_characters_not_bytes() -> None:
    assert check_password_policy("ñandú-ñandú-1") == []  # 13 characters, more bytes
    assert check_password_policy("ñandú-ñand")  # 10 characters, 13 bytes


# --- async front end ------------------------------------------------------------------------


async def test_hasher_roundtrip_and_rehash() -> None:
    hasher = PasswordHasher(FAST)
    encoded = await hasher.hash(GOOD)
    assert await hasher.verify(GOOD, encoded)
    assert not await hasher.verify("wrong password!", encoded)
    assert not await hasher.verify(GOOD, None)
    assert not hasher.needs_rehash(encoded)
    assert PasswordHasher(ScryptParams(log2_n=11)).needs_rehash(encoded)


async def test_hasher_caps_concurrency(monkeypatch: pytest.MonkeyPatch) -> None:
    lock = threading.Lock()
    active = peak = 0

    def slow_hash(password: str, params: ScryptParams) -> str:
        nonlocal active, peak
        with lock:
            active += 1
            peak = max(peak, active)
        time.sleep(0.02)
        with lock:
            active -= 1
        return "done"

    monkeypatch.setattr(passwords, "hash_password", slow_hash)
    hasher = PasswordHasher(FAST, max_concurrency=2)
    results = await asyncio.gather(*(hasher.hash(f"pw-{i}") for i in range(6)))
    assert results == ["done"] * 6
    assert peak == 2
