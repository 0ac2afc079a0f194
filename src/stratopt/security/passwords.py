"""Password hashing with scrypt, and the password policy.

Why scrypt: it is memory-hard (an attacker's GPU/ASIC pays for RAM, not just arithmetic) and
ships with the standard library through OpenSSL, so there is no native dependency to build.
Defaults follow the OWASP Password Storage Cheat Sheet: N=2**17, r=8, p=1, i.e. 128 MiB and
about 0.33 s per hash on the 2-core reference machine. That cost is the point, which is why
`PasswordHasher` runs hashes in worker threads (hashlib releases the GIL) behind a semaphore:
an unbounded login flood would otherwise pin every core and allocate 128 MiB per attempt.

Hashes are stored as self-describing PHC strings, e.g.
``$scrypt$ln=17,r=8,p=1$<salt b64>$<hash b64>``, so parameters can be raised later: old hashes
still verify with their own parameters and `needs_rehash` tells the login path to upgrade
them once it holds the plaintext.

Passwords are NFKC-normalized before hashing (NIST SP 800-63B) so the same password typed
on different keyboards/IMEs verifies. No function here logs, and no error message includes
the password or the hash.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import re
import secrets
import unicodedata
from dataclasses import dataclass

_SCHEME = "scrypt"
_PHC_RE = re.compile(
    r"^\$scrypt\$ln=(?P<ln>\d{1,2}),r=(?P<r>\d{1,3}),p=(?P<p>\d{1,3})"
    r"\$(?P<salt>[A-Za-z0-9+/]+)\$(?P<hash>[A-Za-z0-9+/]+)$"
)
# Bounds applied to parameters read back from storage, so a corrupted or planted hash
# string cannot make verification allocate gigabytes or spin for minutes.
_MAX_LOG2_N = 22
_MAX_MEMORY_BYTES = 1 << 30
_MIN_SALT_BYTES = 16
_MIN_KEY_BYTES = 16


@dataclass(frozen=True)
class ScryptParams:
    log2_n: int = 17
    r: int = 8
    p: int = 1
    salt_bytes: int = 16
    key_bytes: int = 32

    def __post_init__(self) -> None:
        if not 1 <= self.log2_n <= _MAX_LOG2_N:
            raise ValueError(f"log2_n must be in [1, {_MAX_LOG2_N}]")
        if self.r < 1 or self.p < 1:
            raise ValueError("r and p must be >= 1")
        if self.memory_bytes > _MAX_MEMORY_BYTES:
            raise ValueError("scrypt parameters need more than 1 GiB of memory")
        if self.salt_bytes < _MIN_SALT_BYTES or self.key_bytes < _MIN_KEY_BYTES:
            raise ValueError("salt and key must be at least 16 bytes")

    @property
    def n(self) -> int:
        return 1 << self.log2_n

    @property
    def memory_bytes(self) -> int:
        """What OpenSSL allocates: the V array (128*r*(N+2)) plus B (128*r*p)."""
        return 128 * self.r * (self.n + 2) + 128 * self.r * self.p


DEFAULT_PARAMS = ScryptParams()


@dataclass(frozen=True)
class _Decoded:
    params: ScryptParams
    salt: bytes
    key: bytes


def hash_password(password: str, params: ScryptParams = DEFAULT_PARAMS) -> str:
    salt = secrets.token_bytes(params.salt_bytes)
    key = _derive(password, salt, params)
    return _encode(params, salt, key)


def verify_password(
    password: str, encoded: str | None, missing_params: ScryptParams = DEFAULT_PARAMS
) -> bool:
    """Constant-time check of `password` against a stored hash.

    Pass `encoded=None` when the user does not exist: a dummy hash with `missing_params`
    (use the parameters real users have) is still computed, so the response time does not
    reveal which usernames are registered. Malformed hashes verify as False rather than
    raising, because the caller's only sensible reaction is the same generic
    "authentication failed".
    """
    decoded = _decode(encoded) if encoded is not None else None
    if decoded is None:
        _derive(password, bytes(missing_params.salt_bytes), missing_params)
        return False
    key = _derive(password, decoded.salt, decoded.params)
    return hmac.compare_digest(key, decoded.key)


def needs_rehash(encoded: str, params: ScryptParams = DEFAULT_PARAMS) -> bool:
    """True when `encoded` was made with different (or unreadable) parameters."""
    decoded = _decode(encoded)
    if decoded is None:
        return True
    return (decoded.params.log2_n, decoded.params.r, decoded.params.p) != (
        params.log2_n,
        params.r,
        params.p,
    ) or (len(decoded.salt), len(decoded.key)) != (params.salt_bytes, params.key_bytes)


def _derive(password: str, salt: bytes, params: ScryptParams) -> bytes:
    secret = unicodedata.normalize("NFKC", password).encode("utf-8")
    return hashlib.scrypt(
        secret,
        salt=salt,
        n=params.n,
        r=params.r,
        p=params.p,
        maxmem=params.memory_bytes + (1 << 20),
        dklen=params.key_bytes,
    )


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def _encode(params: ScryptParams, salt: bytes, key: bytes) -> str:
    return f"${_SCHEME}$ln={params.log2_n},r={params.r},p={params.p}${_b64(salt)}${_b64(key)}"


def _decode(encoded: str) -> _Decoded | None:
    match = _PHC_RE.match(encoded)
    if match is None:
        return None
    try:
        salt = _unb64(match["salt"])
        key = _unb64(match["hash"])
        params = ScryptParams(
            log2_n=int(match["ln"]),
            r=int(match["r"]),
            p=int(match["p"]),
            salt_bytes=len(salt),
            key_bytes=len(key),
        )
    except (ValueError, binascii.Error):
        return None
    return _Decoded(params, salt, key)


# --- policy -------------------------------------------------------------------------------

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
_MIN_DISTINCT_CHARS = 5

# Length alone rejects the classic top-N lists (almost all shorter than 12); these are the
# well-known long ones, plus context words an attacker would try first against this service.
_COMMON_LONG_PASSWORDS = frozenset(
    {
        "123456789012",
        "1234567890123",
        "qwertyuiopasdfgh",
        "qwertyuiop123",
        "1q2w3e4r5t6y",
        "1qaz2wsx3edc",
        "password1234",
        "password12345",
        "password123456",
        "passwordpassword",
        "iloveyou1234",
        "letmein12345",
        "welcome12345",
        "administrator",
        "changeme1234",
        "trustno1trustno1",
        "stratopt1234",
        "tradingview123",
    }
)
_CONTEXT_WORDS = ("stratopt",)


def check_password_policy(
    password: str,
    *,
    username: str | None = None,
    min_length: int = MIN_PASSWORD_LENGTH,
    max_length: int = MAX_PASSWORD_LENGTH,
) -> list[str]:
    """Return the policy violations (empty list = acceptable).

    NIST SP 800-63B style: length matters, composition rules ("one digit, one symbol") do
    not, and known-bad or trivially guessable passwords are refused. The upper bound only
    stops absurd inputs. Messages never echo the password.
    """
    normalized = unicodedata.normalize("NFKC", password)
    folded = normalized.casefold()
    problems: list[str] = []
    if len(normalized) < min_length:
        problems.append(f"must be at least {min_length} characters")
    if len(normalized) > max_length:
        problems.append(f"must be at most {max_length} characters")
    if len(set(folded)) < _MIN_DISTINCT_CHARS:
        problems.append(f"must contain at least {_MIN_DISTINCT_CHARS} different characters")
    if folded in _COMMON_LONG_PASSWORDS:
        problems.append("is a commonly used password")
    if username and len(username) >= 3 and username.casefold() in folded:
        problems.append("must not contain the username")
    if any(word in folded for word in _CONTEXT_WORDS):
        problems.append("must not contain the service name")
    return problems


# --- async front end ----------------------------------------------------------------------


class PasswordHasher:
    """Async hashing for the event loop: off-thread, and at most `max_concurrency` at once.

    Each scrypt call holds `params.memory_bytes` (128 MiB by default) for ~0.3 s; the cap
    bounds both memory and CPU under a burst of logins, and the auth rate limit bounds
    how long the queue behind it can grow.
    """

    def __init__(self, params: ScryptParams = DEFAULT_PARAMS, max_concurrency: int = 2) -> None:
        self.params = params
        self._slots = asyncio.Semaphore(max_concurrency)

    async def hash(self, password: str) -> str:
        async with self._slots:
            return await asyncio.to_thread(hash_password, password, self.params)

    async def verify(self, password: str, encoded: str | None) -> bool:
        async with self._slots:
            return await asyncio.to_thread(verify_password, password, encoded, self.params)

    def needs_rehash(self, encoded: str) -> bool:
        return needs_rehash(encoded, self.params)
