"""Rate limiting: token buckets per (principal, category), and concurrent-stream caps.

A token bucket holds up to `burst` tokens and refills at `per_second`; a call costing c is
allowed when c tokens are available. Bursts stay cheap (a UI opening a page fires a dozen
calls) while the sustained rate is bounded.

Production defaults (`RateLimits()`), per principal (user id or API key id):

============  =============  =====  ==========================================================
category      sustained      burst  why
============  =============  =====  ==========================================================
general       20 / s         40     reads and small writes; a busy dashboard, not a scraper
backtest      2 / s          10     each is up to ~1 s of a core; a compare screen fires ~10
optimization  10 / min       5      each starts a long job; the queue does the rest
export        1 / s          5      PDF/HTML rendering is the expensive part
data          5 / s          10     bar uploads and range queries move megabytes
auth          5 / min        5      login attempts per client IP and username (guessing)
auth per IP   60 / min       20     login attempts per client IP; higher because offices NAT
auth per user 30 / min       30     login attempts per username from all clients together
============  =============  =====  ==========================================================

Buckets live in process memory (`TokenBucketLimiter`), which is exact for one replica and
per-replica for several. A shared limiter implements `RateLimitBackend` on PostgreSQL with
one statement per check, so no lock is held across a round trip::

    INSERT INTO rate_buckets (key, tokens, updated_at)
    VALUES (:key, :burst - :cost, clock_timestamp())
    ON CONFLICT (key) DO UPDATE SET
        tokens = LEAST(:burst, rate_buckets.tokens + :rate *
                 EXTRACT(EPOCH FROM clock_timestamp() - rate_buckets.updated_at)) - :cost,
        updated_at = clock_timestamp()
    WHERE LEAST(:burst, rate_buckets.tokens + :rate *
          EXTRACT(EPOCH FROM clock_timestamp() - rate_buckets.updated_at)) >= :cost
    RETURNING tokens;

A returned row means allowed (`tokens` is what remains); no row means denied, and a plain
SELECT of the row gives the tokens from which `retry_after = (cost - tokens) / rate`. The row
lock taken by the upsert serializes concurrent checks of one key; `clock_timestamp()` (not
`now()`, which is frozen per transaction) keeps refill correct. Idle rows are deleted by
a periodic ``DELETE ... WHERE updated_at < now() - burst / rate``.
"""

from __future__ import annotations

import dataclasses
import math
import re
import threading
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Protocol

from stratopt.security.clock import MonotonicClock
from stratopt.security.errors import ConcurrencyLimitExceededError, RateLimitExceededError

_EPSILON = 1e-9  # absorbs float drift so waiting exactly retry_after seconds succeeds


class Category(StrEnum):
    GENERAL = "general"
    BACKTEST = "backtest"
    OPTIMIZATION = "optimization"
    EXPORT = "export"
    DATA = "data"
    AUTH = "auth"
    # Per client IP, for the calls that come before any principal exists (login, refresh).
    AUTH_IP = "auth_per_ip"
    # Per username from every client together: the ceiling on distributed guessing.
    AUTH_USER = "auth_per_user"


@dataclass(frozen=True)
class Rate:
    per_second: float
    burst: int

    def __post_init__(self) -> None:
        if not self.per_second > 0 or self.burst < 1:
            raise ValueError("a rate needs per_second > 0 and burst >= 1")

    @classmethod
    def per_minute(cls, count: float, burst: int) -> Rate:
        return cls(count / 60.0, burst)


@dataclass(frozen=True)
class RateLimits:
    """Per-category limits; see the module docstring for why these defaults."""

    general: Rate = Rate(20.0, 40)
    backtest: Rate = Rate(2.0, 10)
    optimization: Rate = Rate(10 / 60, 5)
    export: Rate = Rate(1.0, 5)
    data: Rate = Rate(5.0, 10)
    auth: Rate = Rate(5 / 60, 5)
    auth_per_ip: Rate = Rate(1.0, 20)
    auth_per_user: Rate = Rate(30 / 60, 30)
    max_concurrent_streams: int = 8

    def for_category(self, category: Category) -> Rate:
        rate: Rate = getattr(self, Category(category).value)
        return rate

    def with_specs(self, specs: Mapping[str, str]) -> RateLimits:
        """Override categories from text specs keyed by category value ("general": "5/s");
        empty specs keep the default, so unset settings change nothing."""
        changes: dict[str, Rate] = {}
        for name, spec in specs.items():
            if spec.strip():
                changes[Category(name).value] = parse_rate(spec)
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]


_PERIOD_UNITS = {
    "s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0,
    "m": 60.0, "min": 60.0, "minute": 60.0, "minutes": 60.0,
    "h": 3600.0, "hour": 3600.0, "hours": 3600.0,
}  # fmt: skip
_RATE_RE = re.compile(
    r"^\s*(?P<count>\d+(?:\.\d+)?)\s*/\s*(?P<n>\d+(?:\.\d+)?)?\s*(?P<unit>[a-z]+)"
    r"(?:\s+burst\s+(?P<burst>\d+))?\s*$"
)


def parse_rate(spec: str) -> Rate:
    """Read "20/s burst 40", "10/min burst 5", "5/1s" or "100/10s" (burst defaults to the
    count). The human-readable form exists so operators set limits in environment variables
    without computing per-second rates."""
    match = _RATE_RE.fullmatch(spec.strip().lower())
    unit = _PERIOD_UNITS.get(match["unit"]) if match else None
    if match is None or unit is None:
        raise ValueError(
            f"bad rate {spec!r}: use <count>/<period>[ burst <n>], e.g. '20/s burst 40'"
        )
    count = float(match["count"])
    period = float(match["n"] or 1) * unit
    if count <= 0 or period <= 0:
        raise ValueError(f"bad rate {spec!r}: count and period must be positive")
    burst = int(match["burst"]) if match["burst"] else max(1, math.ceil(count))
    return Rate(count / period, burst)


@dataclass(frozen=True)
class Decision:
    """Outcome of one check, shaped for `RetryInfo` and X-RateLimit-style metadata.

    `remaining` is whole tokens left; `reset_seconds` is how long until the bucket is full
    again; `retry_after_seconds` is 0 when allowed, else how long until `cost` tokens exist.
    """

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: float
    retry_after_seconds: float


class RateLimitBackend(Protocol):
    """What the interceptor needs; in-memory here, PostgreSQL in `store/` (see above)."""

    async def acquire(self, principal: str, category: Category, cost: float = 1) -> Decision: ...


def login_ip_key(peer: str) -> str:
    return "ip:" + peer


def login_user_key(username: str) -> str:
    """Usernames are case-insensitive for login, so "Alice" and "alice" share a bucket."""
    return "user:" + username.strip().casefold()


def login_pair_key(username: str, peer: str) -> str:
    """One client guessing one username: the bucket a guesser drains (and only theirs)."""
    return f"{login_user_key(username)}|{login_ip_key(peer)}"


def password_check_key(user_id: str) -> str:
    """Password checks by a signed-in user (ChangePassword): their own bucket, which failed
    logins by others cannot drain, shared by all their sessions so a stolen session cannot
    guess faster than the owner."""
    return "pw:" + user_id


LOGIN_BUCKETS = (
    (Category.AUTH_IP, lambda username, peer: login_ip_key(peer)),
    (Category.AUTH, login_pair_key),
    (Category.AUTH_USER, lambda username, peer: login_user_key(username)),
)
"""A login attempt, in order: the client's address, the (client, username) pair, and the
username from all clients. A refusal stops there, so later buckets are not drained: a
throttled guesser spends nothing of the username's ceiling, and the owner logging in from
another address (or holding a session) is not locked out by someone else's guesses."""


async def acquire_login(backend: RateLimitBackend, username: str, peer: str) -> Decision:
    """`TokenBucketLimiter.check_login` for any backend (the shared one included)."""
    decision: Decision | None = None
    for category, key in LOGIN_BUCKETS:
        decision = await backend.acquire(key(username, peer), category)
        if not decision.allowed:
            return decision
    assert decision is not None
    return decision


class _Bucket:
    __slots__ = ("rate", "tokens", "updated")

    def __init__(self, rate: Rate, tokens: float, updated: float) -> None:
        self.rate = rate
        self.tokens = tokens
        self.updated = updated


class TokenBucketLimiter:
    """In-process token buckets with bounded memory.

    At most `max_buckets` buckets are kept, least recently used evicted first. Evicting a
    bucket is the same as letting it refill, and the LRU one is almost always an idle, full
    bucket, so the bound costs no accuracy in practice while keeping a flood of distinct
    principals (or spoofed IPs on the login path) from growing memory without limit.
    """

    def __init__(
        self,
        limits: RateLimits | None = None,
        *,
        clock: MonotonicClock = time.monotonic,
        max_buckets: int = 100_000,
    ) -> None:
        if max_buckets < 1:
            raise ValueError("max_buckets must be >= 1")
        self.limits = limits or RateLimits()
        self._clock = clock
        self._max_buckets = max_buckets
        self._buckets: OrderedDict[tuple[str, str], _Bucket] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, principal: str, category: Category, cost: float = 1) -> Decision:
        """Take `cost` tokens from the (principal, category) bucket if it has them."""
        category = Category(category)
        return self._take((principal, category.value), self.limits.for_category(category), cost)

    async def acquire(self, principal: str, category: Category, cost: float = 1) -> Decision:
        return self.check(principal, category, cost)

    def enforce(self, principal: str, category: Category, cost: float = 1) -> Decision:
        """`check`, raising `RateLimitExceededError` when refused."""
        decision = self.check(principal, category, cost)
        if not decision.allowed:
            raise RateLimitExceededError(decision)
        return decision

    def check_login(self, username: str, peer: str) -> Decision:
        """One login attempt against the buckets of `LOGIN_BUCKETS`, in order; a refusal
        leaves the later ones untouched."""
        decision: Decision | None = None
        for category, key in LOGIN_BUCKETS:
            decision = self.check(key(username, peer), category)
            if not decision.allowed:
                return decision
        assert decision is not None
        return decision

    def sweep(self) -> int:
        """Drop buckets that have refilled completely (they carry no state); return how
        many. Optional housekeeping: the LRU bound already caps memory."""
        now = self._clock()
        with self._lock:
            full = [
                key
                for key, bucket in self._buckets.items()
                if self._refilled(bucket, bucket.rate, now) + _EPSILON >= bucket.rate.burst
            ]
            for key in full:
                del self._buckets[key]
        return len(full)

    def _take(self, key: tuple[str, str], rate: Rate, cost: float) -> Decision:
        if not 0 < cost <= rate.burst:
            raise ValueError(f"cost must be in (0, {rate.burst}] for this category")
        now = self._clock()
        with self._lock:
            bucket = self._bucket(key, rate, now)
            tokens = self._refilled(bucket, rate, now)
            allowed = tokens + _EPSILON >= cost
            if allowed:
                tokens = max(0.0, tokens - cost)
            bucket.tokens, bucket.updated = tokens, now
        return Decision(
            allowed=allowed,
            limit=rate.burst,
            remaining=math.floor(tokens + _EPSILON),
            reset_seconds=(rate.burst - tokens) / rate.per_second,
            retry_after_seconds=0.0 if allowed else (cost - tokens) / rate.per_second,
        )

    def _bucket(self, key: tuple[str, str], rate: Rate, now: float) -> _Bucket:
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = _Bucket(rate, float(rate.burst), now)
            self._buckets[key] = bucket
            while len(self._buckets) > self._max_buckets:
                self._buckets.popitem(last=False)
        else:
            self._buckets.move_to_end(key)
        return bucket

    @staticmethod
    def _refilled(bucket: _Bucket, rate: Rate, now: float) -> float:
        elapsed = max(0.0, now - bucket.updated)
        return min(float(rate.burst), bucket.tokens + elapsed * rate.per_second)


class ConcurrencyLimiter:
    """Caps how many long-lived streams (Watch*/Stream* RPCs) one principal holds at once.

    A stream costs a task, a queue and a DB/feed subscription for as long as it is open, so
    token buckets (which meter starts, not duration) cannot bound it. Refusal is immediate
    rather than queued: a client that opens more streams than allowed has a bug or leaks.
    """

    def __init__(self, max_per_principal: int = 8) -> None:
        if max_per_principal < 1:
            raise ValueError("max_per_principal must be >= 1")
        self.max_per_principal = max_per_principal
        self._held: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, principal: str) -> bool:
        with self._lock:
            held = self._held.get(principal, 0)
            if held >= self.max_per_principal:
                return False
            self._held[principal] = held + 1
            return True

    def release(self, principal: str) -> None:
        with self._lock:
            held = self._held.get(principal, 0)
            if held <= 0:
                raise ValueError("release without a matching acquire")
            if held == 1:
                del self._held[principal]  # keeps memory proportional to open streams
            else:
                self._held[principal] = held - 1

    def in_use(self, principal: str) -> int:
        return self._held.get(principal, 0)

    def total_in_use(self) -> int:
        """Slots held by everyone (the streams open on this replica)."""
        with self._lock:
            return sum(self._held.values())

    def __len__(self) -> int:
        return len(self._held)

    @asynccontextmanager
    async def slot(self, principal: str) -> AsyncIterator[None]:
        """Hold one slot for the duration of a stream; `ConcurrencyLimitExceededError` if
        none is free. Released even when the stream is cancelled."""
        if not self.acquire(principal):
            raise ConcurrencyLimitExceededError(self.max_per_principal)
        try:
            yield
        finally:
            self.release(principal)
