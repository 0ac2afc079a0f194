from __future__ import annotations

import asyncio
import dataclasses

import pytest

from stratopt.security.api_keys import ApiKeyService, InMemoryApiKeyRepo
from stratopt.security.authenticate import Authenticator
from stratopt.security.errors import AuthenticationError
from stratopt.security.ratelimit import Category, RateLimits, parse_rate
from stratopt.security.refresh_tokens import InMemoryRefreshTokenRepo, RefreshTokenPolicy
from stratopt.security.roles import Permission, Role
from stratopt.security.tokens import TokenConfig, TokenService
from stratopt.security.ttl_cache import TtlCache
from stratopt.security.users import InMemoryUserRepo, UserRecord

from .conftest import TickClock, WallClock

SECRET = b"k" * 32


class Fixture:
    def __init__(self, clock: WallClock, ticks: TickClock) -> None:
        self.tokens = TokenService(TokenConfig(secret=SECRET), clock=clock)
        self.keys = ApiKeyService(InMemoryApiKeyRepo(), clock=clock)
        self.users = InMemoryUserRepo()
        self.refresh_repo = InMemoryRefreshTokenRepo()
        self.refresh = RefreshTokenPolicy(self.refresh_repo, clock=clock)
        self.auth = Authenticator(
            self.tokens, self.keys, self.users, self.refresh_repo, cache_ttl=2.0, clock=ticks
        )
        self.ticks = ticks
        self.user = UserRecord("u1", "alice", Role.TRADER, password_hash="x")
        self.users.records["u1"] = self.user


@pytest.fixture
def fx(clock: WallClock, ticks: TickClock) -> Fixture:
    return Fixture(clock, ticks)


async def test_jwt_principal_takes_the_role_from_the_user_record(fx: Fixture) -> None:
    session = await fx.refresh.issue("u1")
    token = fx.tokens.issue_access("u1", Role.ADMIN, session.family_id).token  # stale claim
    p = await fx.auth.authenticate(token, None)
    assert (p.user_id, p.role, p.via, p.session_id) == ("u1", Role.TRADER, "jwt", session.family_id)


async def test_changes_apply_after_the_cache_ttl_or_at_once_when_forgotten(fx: Fixture) -> None:
    token = fx.tokens.issue_access("u1", Role.TRADER).token
    await fx.auth.authenticate(token, None)
    fx.users.records["u1"] = dataclasses.replace(fx.user, disabled=True)
    await fx.auth.authenticate(token, None)  # still cached
    fx.ticks.advance(2.1)
    with pytest.raises(AuthenticationError) as info:
        await fx.auth.authenticate(token, None)
    assert info.value.reason == "user disabled"

    fx.users.records["u1"] = fx.user
    fx.auth.forget_user("u1")
    assert (await fx.auth.authenticate(token, None)).username == "alice"


async def test_logging_out_ends_the_sessions_access_tokens(fx: Fixture) -> None:
    session = await fx.refresh.issue("u1")
    token = fx.tokens.issue_access("u1", Role.TRADER, session.family_id).token
    await fx.auth.authenticate(token, None)
    await fx.refresh.revoke(session.token)
    fx.auth.forget_session(session.family_id)
    with pytest.raises(AuthenticationError) as info:
        await fx.auth.authenticate(token, None)
    assert info.value.reason == "session ended"


async def test_api_key_principal_carries_scopes_and_prefix(fx: Fixture) -> None:
    created = await fx.keys.create("u1", Role.TRADER, "ci", [Permission.READ_STRATEGIES])
    p = await fx.auth.authenticate(None, created.key)
    assert p.via == "api_key" and p.key_prefix == created.record.prefix
    assert p.permissions == frozenset({Permission.READ_STRATEGIES})
    await fx.keys.revoke(created.record.key_id)
    with pytest.raises(AuthenticationError):
        await fx.auth.authenticate(None, created.key)


async def test_two_credentials_or_none_are_refused(fx: Fixture) -> None:
    token = fx.tokens.issue_access("u1", Role.TRADER).token
    created = await fx.keys.create("u1", Role.TRADER, "ci")
    for bearer, key in ((token, created.key), (None, None)):
        with pytest.raises(AuthenticationError):
            await fx.auth.authenticate(bearer, key)


async def test_ttl_cache_caches_misses_and_expires(ticks: TickClock) -> None:
    cache: TtlCache[str | None] = TtlCache(1.0, max_entries=2, clock=ticks)
    loads: list[str] = []

    async def load(key: str) -> str | None:
        loads.append(key)
        return None

    for _ in range(3):
        await cache.get_or_load("a", lambda: load("a"))
    assert loads == ["a"]
    ticks.advance(1.5)
    await cache.get_or_load("a", lambda: load("a"))
    await cache.get_or_load("b", lambda: load("b"))
    await cache.get_or_load("c", lambda: load("c"))
    assert len(cache) == 2


async def test_ttl_cache_shares_one_load_among_concurrent_callers(ticks: TickClock) -> None:
    """64 calls of one user arriving as an entry expires cost one database read, not 64."""
    cache: TtlCache[str] = TtlCache(1.0, clock=ticks)
    gate = asyncio.Event()
    loads = 0

    async def load() -> str:
        nonlocal loads
        loads += 1
        await gate.wait()
        return f"v{loads}"

    waiters = [asyncio.create_task(cache.get_or_load("a", load)) for _ in range(64)]
    await asyncio.sleep(0)
    waiters[0].cancel()  # one caller going away does not cancel the others' load
    gate.set()
    results = await asyncio.gather(*waiters[1:])
    assert loads == 1 and set(results) == {"v1"}
    assert await cache.get_or_load("a", load) == "v1"


async def test_ttl_cache_keeps_no_load_that_started_before_forget(ticks: TickClock) -> None:
    """A load under way when this process changes the row may have read the old value: it
    must not be stored, and callers after `forget` load afresh."""
    cache: TtlCache[str] = TtlCache(10.0, clock=ticks)
    gate, started = asyncio.Event(), asyncio.Event()
    value = "old"

    async def load() -> str:
        seen = value
        started.set()
        await gate.wait()
        return seen

    early = asyncio.create_task(cache.get_or_load("a", load))
    await started.wait()
    value = "new"
    cache.forget("a")
    late = asyncio.create_task(cache.get_or_load("a", load))
    await asyncio.sleep(0)
    gate.set()
    assert await early == "old" and await late == "new"
    assert await cache.get_or_load("a", load) == "new"


async def test_ttl_cache_failed_loads_reach_every_waiter_and_are_not_kept(
    ticks: TickClock,
) -> None:
    cache: TtlCache[str] = TtlCache(1.0, clock=ticks)
    calls = 0

    async def load() -> str:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0)
        if calls == 1:
            raise ConnectionError("database down")
        return "up"

    got = await asyncio.gather(
        *(cache.get_or_load("a", load) for _ in range(3)), return_exceptions=True
    )
    assert calls == 1 and all(isinstance(g, ConnectionError) for g in got)
    assert await cache.get_or_load("a", load) == "up"


@pytest.mark.parametrize(
    ("spec", "per_second", "burst"),
    [
        ("20/s burst 40", 20.0, 40),
        ("10/min burst 5", 10 / 60, 5),
        ("5/1s", 5.0, 5),
        ("100/10s", 10.0, 100),
        (" 60 / hour ", 60 / 3600, 60),
        ("0.5/s burst 1", 0.5, 1),
    ],
)
def test_rate_specs(spec: str, per_second: float, burst: int) -> None:
    rate = parse_rate(spec)
    assert rate.per_second == pytest.approx(per_second) and rate.burst == burst


@pytest.mark.parametrize("spec", ["", "fast", "5", "5/fortnight", "0/s", "5/s burst", "-1/s"])
def test_bad_rate_specs_are_refused(spec: str) -> None:
    with pytest.raises(ValueError):
        parse_rate(spec)


def test_specs_override_only_what_they_name() -> None:
    limits = RateLimits().with_specs({"general": "5/s burst 5", "backtest": ""})
    assert limits.for_category(Category.GENERAL) == parse_rate("5/s burst 5")
    assert limits.for_category(Category.BACKTEST) == RateLimits().backtest
    with pytest.raises(ValueError):
        RateLimits().with_specs({"nonsense": "5/s"})
