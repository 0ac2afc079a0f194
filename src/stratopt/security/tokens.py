"""Short-lived JWT access tokens: issuing and strict verification.

Verification trusts nothing in the token before the signature has been checked with the one
configured algorithm and key. That single rule closes the classic JWT holes: `alg: none`,
HS256 tokens signed with an RS256 public key used as an HMAC secret ("key confusion"), and
algorithm downgrades. Every failure raises the same `AuthenticationError`; the precise cause
is kept in `.reason` for debug logs and is always one of the fixed phrases below.

Time checks (exp, nbf, iat) are done here with an injectable clock rather than by PyJWT, so
tests can move time and the verified-token cache honours expiry with the very same clock.

Key rotation. Every token names its key in the `kid` header: a digest of the HS256 secret, or
the RFC 7638 thumbprint of the public key, so every replica computes the same id and the id
reveals nothing. Verification picks the key by `kid` from a key set: the current key, plus
previous keys (`previous_secrets` / `previous_public_keys_pem`) accepted until
`previous_keys_until` (or for as long as they are configured, which is how every replica
learns a new key before any of them signs with it). Tokens from before key ids existed have
no `kid`; only the current key verifies those. `key_set()` is the JWKS of the public keys.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal, NamedTuple, get_args

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from stratopt.security.clock import WallClock, utc_now
from stratopt.security.errors import AuthenticationError
from stratopt.security.roles import Role

Algorithm = Literal["HS256", "RS256", "ES256"]
ALGORITHMS: tuple[str, ...] = get_args(Algorithm)

ACCESS_TOKEN_TYPE = "access"
REQUIRED_CLAIMS = ("sub", "role", "iat", "nbf", "exp", "iss", "aud", "jti", "typ")
MAX_TOKEN_LENGTH = 8192
MIN_HMAC_SECRET_BYTES = 32  # RFC 7518 §3.2: the key must be at least the hash size.
MIN_RSA_BITS = 2048
_ALLOWED_HEADER_KEYS = frozenset({"alg", "typ", "kid"})

_PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
_PublicKey = rsa.RSAPublicKey | ec.EllipticCurvePublicKey


@dataclass(frozen=True)
class TokenConfig:
    """How access tokens are signed and what verification demands.

    HS256 needs `secret` (>= 32 bytes). RS256/ES256 need `public_key_pem` to verify and
    `private_key_pem` to issue (a replica that only verifies can omit the private key; the
    public key is derived from the private one when only that is given). Key material is
    excluded from `repr` so a logged config leaks nothing.
    """

    algorithm: Algorithm = "HS256"
    secret: bytes | None = field(default=None, repr=False)
    private_key_pem: bytes | None = field(default=None, repr=False)
    public_key_pem: bytes | None = None
    issuer: str = "stratopt"
    audience: str = "stratopt-api"
    access_ttl: timedelta = timedelta(minutes=15)
    leeway: timedelta = timedelta(seconds=10)
    # Keys that verify but no longer sign (rotation), until `previous_keys_until` if set.
    previous_secrets: tuple[bytes, ...] = field(default=(), repr=False)
    previous_public_keys_pem: tuple[bytes, ...] = ()
    previous_keys_until: datetime | None = None

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm must be one of {ALGORITHMS}")
        if self.algorithm == "HS256":
            if self.secret is None or len(self.secret) < MIN_HMAC_SECRET_BYTES:
                raise ValueError(f"HS256 needs a secret of at least {MIN_HMAC_SECRET_BYTES} bytes")
            if self.private_key_pem or self.public_key_pem or self.previous_public_keys_pem:
                raise ValueError("HS256 takes a secret, not PEM keys")
            if any(len(p) < MIN_HMAC_SECRET_BYTES for p in self.previous_secrets):
                raise ValueError(
                    f"previous HS256 secrets need at least {MIN_HMAC_SECRET_BYTES} bytes too"
                )
        else:
            if self.secret is not None or self.previous_secrets:
                raise ValueError(f"{self.algorithm} takes PEM keys, not a secret")
            if self.private_key_pem is None and self.public_key_pem is None:
                raise ValueError(f"{self.algorithm} needs a private and/or public PEM key")
        if self.access_ttl <= timedelta(0) or self.leeway < timedelta(0):
            raise ValueError("access_ttl must be positive and leeway non-negative")
        if self.leeway >= self.access_ttl:
            raise ValueError("leeway must be much smaller than access_ttl")

    @classmethod
    def from_files(
        cls,
        algorithm: Algorithm,
        *,
        secret_file: str | Path | None = None,
        private_key_file: str | Path | None = None,
        public_key_file: str | Path | None = None,
        **options: Any,
    ) -> TokenConfig:
        """Read key material from files (mounted secrets) instead of env vars or argv,
        which leak through /proc, `ps` and crash reports. A secret file's trailing newline
        is stripped because editors add one."""
        secret = Path(secret_file).read_bytes().rstrip(b"\r\n") if secret_file else None
        private = Path(private_key_file).read_bytes() if private_key_file else None
        public = Path(public_key_file).read_bytes() if public_key_file else None
        return cls(
            algorithm=algorithm,
            secret=secret,
            private_key_pem=private,
            public_key_pem=public,
            **options,
        )


class IssuedToken(NamedTuple):
    token: str
    expires_at: datetime


@dataclass(frozen=True)
class Claims:
    """The verified content of an access token."""

    subject: str
    role: Role
    issued_at: datetime
    not_before: datetime
    expires_at: datetime
    token_id: str
    session_id: str | None = None


@dataclass(frozen=True)
class _Keys:
    signing: bytes | _PrivateKey | None
    verifying: bytes | _PublicKey
    kid: str = ""
    # Verification keys by kid: the current one first, then the previous ones.
    previous: tuple[tuple[str, bytes | _PublicKey], ...] = ()


class TokenService:
    """Issues and verifies access tokens; keeps a small cache of verified tokens.

    The cache is keyed by the SHA-256 of the token (the token itself is never kept as a
    key) and only ever holds tokens that passed full verification. A hit still re-checks
    exp/nbf against the clock, so caching never extends a token's life. It exists because
    verification (base64, JSON, HMAC/RSA/ECDSA) dominates the cost of small RPCs and clients
    send the same token on every call for 15 minutes.
    """

    def __init__(
        self, config: TokenConfig, *, clock: WallClock = utc_now, cache_size: int = 4096
    ) -> None:
        self.config = config
        self._clock = clock
        self._keys = _load_keys(config)
        self._by_kid: dict[str, bytes | _PublicKey] = dict(self._keys.previous)
        self._by_kid[self._keys.kid] = self._keys.verifying
        self._retire_at = (
            config.previous_keys_until.timestamp() if config.previous_keys_until else None
        )
        # Verified claims by token digest, with when they stop counting because their key
        # was a previous one that retires (None: signed by the current key).
        self._cache: OrderedDict[bytes, tuple[Claims, float | None]] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    @property
    def key_id(self) -> str:
        """The `kid` of the signing (current) key."""
        return self._keys.kid

    def key_set(self) -> dict[str, list[dict[str, Any]]]:
        """The public keys that verify tokens, as a JWKS (RFC 7517): current first. Empty
        for HS256, whose key is a shared secret."""
        if self.config.algorithm == "HS256":
            return {"keys": []}
        keys = [(self._keys.kid, self._keys.verifying), *self._keys.previous]
        return {"keys": [_public_jwk(key, kid, self.config.algorithm) for kid, key in keys]}

    def issue_access(self, subject: str, role: Role, session_id: str | None = None) -> IssuedToken:
        """Sign an access token. `session_id` is the refresh-token family, so a session's
        access tokens can be traced to (and audited with) the login that created them."""
        if self._keys.signing is None:
            raise RuntimeError("this TokenService has no private key; it can only verify")
        if not subject:
            raise ValueError("subject must be non-empty")
        now = int(self._clock().timestamp())
        exp = now + int(self.config.access_ttl.total_seconds())
        payload: dict[str, Any] = {
            "sub": subject,
            "role": Role(role).value,
            "iat": now,
            "nbf": now,
            "exp": exp,
            "iss": self.config.issuer,
            "aud": self.config.audience,
            "jti": secrets.token_urlsafe(16),
            "typ": ACCESS_TOKEN_TYPE,
        }
        if session_id is not None:
            payload["sid"] = session_id
        token = jwt.encode(
            payload,
            self._keys.signing,
            algorithm=self.config.algorithm,
            headers={"kid": self._keys.kid},
        )
        return IssuedToken(token, _from_epoch(exp))

    def verify_access(self, token: str) -> Claims:
        if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
            raise AuthenticationError("token missing or oversized")
        now = self._clock().timestamp()
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest()
        cached = self._cache_get(digest)
        if cached is not None:
            claims, retires = cached
            if retires is not None and now >= retires:
                raise AuthenticationError("signing key retired")
            self._check_times(claims, now)
            return claims
        payload, retires = self._decode(token, now)
        claims = self._claims_from(payload)
        self._check_times(claims, now)
        self._cache_put(digest, (claims, retires))
        return claims

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()

    # --- verification steps ---------------------------------------------------------------

    def _verifying_key(self, header: dict[str, Any], now: float) -> tuple[Any, float | None]:
        """The key the token names, and when it retires (None for the current key)."""
        kid = header.get("kid")
        if kid is None:  # issued before tokens named their key: the current key only
            return self._keys.verifying, None
        if not isinstance(kid, str) or kid not in self._by_kid:
            raise AuthenticationError("unknown signing key")
        if kid == self._keys.kid:
            return self._keys.verifying, None
        if self._retire_at is not None and now >= self._retire_at:
            raise AuthenticationError("signing key retired")
        return self._by_kid[kid], self._retire_at

    def _decode(self, token: str, now: float) -> tuple[dict[str, Any], float | None]:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthenticationError("malformed token") from None
        # Reject before touching the key: only the configured algorithm, no embedded keys or
        # key URLs (jwk, jku, x5u, x5c) that a careless library might honour.
        if header.get("alg") != self.config.algorithm:
            raise AuthenticationError("algorithm not allowed")
        if not set(header) <= _ALLOWED_HEADER_KEYS:
            raise AuthenticationError("unexpected header parameters")
        key, retires = self._verifying_key(header, now)
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[self.config.algorithm],
                audience=self.config.audience,
                issuer=self.config.issuer,
                options={
                    "require": list(REQUIRED_CLAIMS),
                    "verify_exp": False,
                    "verify_nbf": False,
                    "verify_iat": False,
                    "strict_aud": True,
                    "enforce_minimum_key_length": True,
                },
            )
        except jwt.PyJWTError as exc:
            raise AuthenticationError(_reason_for(exc)) from None
        except (ValueError, TypeError):
            raise AuthenticationError("malformed token") from None
        return payload, retires

    def _claims_from(self, payload: dict[str, Any]) -> Claims:
        if payload.get("typ") != ACCESS_TOKEN_TYPE:
            raise AuthenticationError("wrong token type")
        sub, jti, sid = payload.get("sub"), payload.get("jti"), payload.get("sid")
        if not isinstance(sub, str) or not sub or not isinstance(jti, str) or not jti:
            raise AuthenticationError("invalid sub or jti")
        if sid is not None and not isinstance(sid, str):
            raise AuthenticationError("invalid sid")
        raw_role = payload.get("role")
        try:
            if not isinstance(raw_role, str):
                raise ValueError
            role = Role(raw_role)
        except ValueError:
            raise AuthenticationError("unknown role") from None
        iat, nbf, exp = (_numeric_date(payload, name) for name in ("iat", "nbf", "exp"))
        if not iat <= nbf < exp:
            raise AuthenticationError("inconsistent iat/nbf/exp")
        # Bound the lifetime: a token this service did not mint with its own TTL (another
        # component sharing the key, or a TTL since lowered) does not get to live longer.
        if exp - iat > (self.config.access_ttl + self.config.leeway).total_seconds():
            raise AuthenticationError("lifetime exceeds access_ttl")
        return Claims(
            subject=sub,
            role=role,
            issued_at=_from_epoch(iat),
            not_before=_from_epoch(nbf),
            expires_at=_from_epoch(exp),
            token_id=jti,
            session_id=sid,
        )

    def _check_times(self, claims: Claims, now: float) -> None:
        leeway = self.config.leeway.total_seconds()
        if now >= claims.expires_at.timestamp() + leeway:
            raise AuthenticationError("token expired")
        if now + leeway < claims.not_before.timestamp():
            raise AuthenticationError("token not yet valid")
        if now + leeway < claims.issued_at.timestamp():
            raise AuthenticationError("token issued in the future")

    # --- cache ----------------------------------------------------------------------------

    def _cache_get(self, digest: bytes) -> tuple[Claims, float | None] | None:
        with self._lock:
            claims = self._cache.get(digest)
            if claims is not None:
                self._cache.move_to_end(digest)
            return claims

    def _cache_put(self, digest: bytes, entry: tuple[Claims, float | None]) -> None:
        if self._cache_size <= 0:
            return
        with self._lock:
            self._cache[digest] = entry
            self._cache.move_to_end(digest)
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)


# --- helpers --------------------------------------------------------------------------------


def _numeric_date(payload: dict[str, Any], name: str) -> int:
    value = payload.get(name)
    # bool is an int subclass; floats and numeric strings are not what we issue.
    if not isinstance(value, int) or isinstance(value, bool):
        raise AuthenticationError(f"claim {name} is not an integer")
    return value


def _from_epoch(seconds: int) -> datetime:
    return datetime.fromtimestamp(seconds, tz=UTC)


_REASONS: tuple[tuple[type[jwt.PyJWTError], str], ...] = (
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.MissingRequiredClaimError, "missing required claim"),
    (jwt.InvalidKeyError, "key rejected"),
    (jwt.DecodeError, "malformed token"),
)


def _reason_for(exc: jwt.PyJWTError) -> str:
    """A fixed phrase per failure class; library messages are not reused because we do not
    control what they may quote from the token."""
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing required claim {exc.claim}"
    for kind, reason in _REASONS:
        if isinstance(exc, kind):
            return reason
    return f"rejected ({type(exc).__name__})"


def _load_keys(config: TokenConfig) -> _Keys:
    if config.algorithm == "HS256":
        assert config.secret is not None  # guaranteed by TokenConfig
        secrets_ = tuple((_secret_kid(p), p) for p in config.previous_secrets if p != config.secret)
        return _Keys(
            signing=config.secret,
            verifying=config.secret,
            kid=_secret_kid(config.secret),
            previous=secrets_,
        )
    private = _load_private(config) if config.private_key_pem else None
    public = _load_public(config) if config.public_key_pem else None
    if private is None:
        assert public is not None  # guaranteed by TokenConfig
        current: _PublicKey = public
    else:
        if public is not None and not _same_public_key(private, public):
            raise ValueError("public_key_pem does not match private_key_pem")
        current = private.public_key()
    kid = _public_kid(current, config.algorithm)
    olds = [_load_public_pem(pem, config.algorithm) for pem in config.previous_public_keys_pem]
    publics = tuple((k, key) for key in olds if (k := _public_kid(key, config.algorithm)) != kid)
    return _Keys(signing=private, verifying=current, kid=kid, previous=publics)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _secret_kid(secret: bytes) -> str:
    """A stable id for an HMAC secret: a domain-separated SHA-256, 128 bits of it. The secret
    has at least 256 bits of entropy, so the id gives nothing away."""
    return "hs-" + _b64(hashlib.sha256(b"stratopt jwt kid\x00" + secret).digest()[:16])


def _public_jwk(key: Any, kid: str, algorithm: str) -> dict[str, Any]:
    impl = jwt.get_algorithm_by_name(algorithm)
    jwk = json.loads(impl.to_jwk(key))
    return {**jwk, "kid": kid, "use": "sig", "alg": algorithm}


def _public_kid(key: Any, algorithm: str) -> str:
    """The RFC 7638 JWK thumbprint of a public key (what JWKS consumers expect as kid)."""
    jwk = json.loads(jwt.get_algorithm_by_name(algorithm).to_jwk(key))
    members = ("e", "kty", "n") if jwk["kty"] == "RSA" else ("crv", "kty", "x", "y")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return _b64(hashlib.sha256(canonical.encode()).digest())


def _load_private(config: TokenConfig) -> _PrivateKey:
    assert config.private_key_pem is not None
    key = serialization.load_pem_private_key(config.private_key_pem, password=None)
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ValueError("unsupported private key type")
    _check_key_fits(config.algorithm, key)
    return key


def _load_public(config: TokenConfig) -> _PublicKey:
    assert config.public_key_pem is not None
    return _load_public_pem(config.public_key_pem, config.algorithm)


def _load_public_pem(pem: bytes, algorithm: str) -> _PublicKey:
    key = serialization.load_pem_public_key(pem)
    if not isinstance(key, rsa.RSAPublicKey | ec.EllipticCurvePublicKey):
        raise ValueError("unsupported public key type")
    _check_key_fits(algorithm, key)
    return key


def _check_key_fits(algorithm: str, key: _PrivateKey | _PublicKey) -> None:
    """RS256 demands an RSA key of >= 2048 bits, ES256 an EC key on P-256 (RFC 7518 §3.4);
    anything else is a configuration mistake worth failing loudly at startup."""
    if algorithm == "RS256":
        if not isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
            raise ValueError("RS256 needs an RSA key")
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(f"RS256 needs an RSA key of at least {MIN_RSA_BITS} bits")
    elif algorithm == "ES256":
        if not isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
            raise ValueError("ES256 needs an EC key")
        if not isinstance(key.curve, ec.SECP256R1):
            raise ValueError("ES256 needs a P-256 (secp256r1) key")


def _same_public_key(private: _PrivateKey, public: _PublicKey) -> bool:
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return private.public_key().public_bytes(*spki) == public.public_bytes(*spki)
