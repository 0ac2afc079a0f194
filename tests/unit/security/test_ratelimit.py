from __future__ import annotations

import asyncio

import pytest

from stratopt.security.errors import ConcurrencyLimitExceededError, RateLimitExceededError
from stratopt.security.ratelimit import (
    Category,
    ConcurrencyLimiter,
    Rate,
    RateLimits,
    TokenBucketLimiter,
)

from .conftest import TickClock

LIMITS = RateLimits(general=Rate(2.0, 4), backtest=Rate(0.5, 2))


@pytest.fixture
def limiter(ticks: TickClock) -> TokenBucketLimiter:
    return TokenBucketLimiter(LIMITS, clock=ticks)


def drain(limiter: TokenBucketLimiter, principal: str, category: Category, n: int) -> None:
    for i in range(n):
        assert limiter.check(principal, category).allowed, f"call {i + 1} of {n} refused"


def test_burst_then_refusal_with_retry_after(limiter: TokenBucketLimiter) -> None:
    remaining = [limiter.check("alice", Category.GENERAL).remaining for _ in range(4)]
    assert remaining == [3, 2, 1, 0]
    refused = limiter.check("alice", Category.GENERAL)
    assert not refused.allowed
    assert refused.limit == 4
    assert refused.remaining == 0
    assert refused.retry_after_seconds == pytest.approx(0.5)  # one token at 2/s
    assert refused.reset_seconds == pytest.approx(2.0)  # four tokens at 2/s


def test_refill_after_retry_after(limiter: TokenBucketLimiter, ticks: TickClock) -> None:
    drain(limiter, "alice", Category.GENERAL, 4)
    refused = limiter.check("alice", Category.GENERAL)
    ticks.advance(refused.retry_after_seconds * 0.9)
    assert not limiter.check("alice", Category.GENERAL).allowed
    ticks.advance(refused.retry_after_seconds * 0.1)
    assert limiter.check("alice", Category.GENERAL).allowed
    assert not limiter.check("alice", Category.GENERAL).allowed


def test_refill_is_capped_at_burst(limiter: TokenBucketLimiter, ticks: TickClock) -> None:
    drain(limiter, "alice", Category.GENERAL, 4)
    ticks.advance(3600)
    drain(limiter, "alice", Category.GENERAL, 4)
    assert not limiter.check("alice", Category.GENERAL).allowed


def test_principals_and_categories_are_independent(limiter: TokenBucketLimiter) -> None:
    drain(limiter, "alice", Category.GENERAL, 4)
    assert not limiter.check("alice", Category.GENERAL).allowed
    drain(limiter, "bob", Category.GENERAL, 4)
    drain(limiter, "alice", Category.BACKTEST, 2)
    assert not limiter.check("alice", Category.BACKTEST).allowed


def test_cost_takes_several_tokens(limiter: TokenBucketLimiter) -> None:
    assert limiter.check("alice", Category.GENERAL, cost=3).remaining == 1
    refused = limiter.check("alice", Category.GENERAL, cost=2)
    assert not refused.allowed
    assert refused.retry_after_seconds == pytest.approx(0.5)
    assert limiter.check("alice", Category.GENERAL, cost=1).allowed


@pytest.mark.parametrize("cost", [0, -1, 5])
def test_impossible_costs_are_errors(limiter: TokenBucketLimiter, cost: float) -> None:
    with pytest.raises(ValueError):
        limiter.check("alice", Category.GENERAL, cost=cost)


def test_enforce_raises_with_decision(limiter: TokenBucketLimiter) -> None:
    drain(limiter, "alice", Category.BACKTEST, 2)
    with pytest.raises(RateLimitExceededError) as info:
        limiter.enforce("alice", Category.BACKTEST)
    assert info.value.decision.retry_after_seconds == pytest.approx(2.0)


async def test_async_acquire_shares_the_buckets(limiter: TokenBucketLimiter) -> None:
    drain(limiter, "alice", Category.BACKTEST, 2)
    assert not (await limiter.acquire("alice", Category.BACKTEST)).allowed


def test_memory_is_bounded_by_lru_eviction(ticks: TickClock) -> None:
    limiter = TokenBucketLimiter(LIMITS, clock=ticks, max_buckets=2)
    drain(limiter, "alice", Category.GENERAL, 4)
    drain(limiter, "bob", Category.GENERAL, 4)
    limiter.check("alice", Category.GENERAL)  # alice is now most recent
    limiter.check("carol", Category.GENERAL)  # evicts bob
    assert len(limiter) == 2
    assert not limiter.check("alice", Category.GENERAL).allowed
    assert limiter.check("bob", Category.GENERAL).remaining == 3  # fresh bucket


def test_sweep_drops_only_full_buckets(limiter: TokenBucketLimiter, ticks: TickClock) -> None:
    limiter.check("alice", Category.GENERAL)
    ticks.advance(1.0)
    drain(limiter, "bob", Category.GENERAL, 4)
    assert limiter.sweep() == 1
    assert len(limiter) == 1
    assert not limiter.check("bob", Category.GENERAL).allowed


def test_login_limited_per_client_and_username(ticks: TickClock) -> None:
    limiter = TokenBucketLimiter(clock=ticks)
    for _ in range(5):
        assert limiter.check_login("Alice", "10.0.0.1").allowed
    refused = limiter.check_login(" alice ", "10.0.0.1")
    assert not refused.allowed
    assert refused.retry_after_seconds == pytest.approx(12.0)  # 5 per minute
    # The guesser's address is throttled; Alice elsewhere and Bob here are not.
    assert limiter.check_login("alice", "10.0.0.2").allowed
    assert limiter.check_login("bob", "10.0.0.1").allowed


def test_login_has_a_ceiling_per_username_across_clients(ticks: TickClock) -> None:
    limits = RateLimits(auth_per_user=Rate.per_minute(8, 8))
    limiter = TokenBucketLimiter(limits, clock=ticks)
    allowed = [limiter.check_login("alice", f"10.0.{i // 2}.{i}").allowed for i in range(12)]
    assert allowed == [True] * 8 + [False] * 4
    assert limiter.check_login("bob", "10.0.9.9").allowed
    # Refused pair attempts do not spend the ceiling: a throttled client costs nothing more.
    limiter2 = TokenBucketLimiter(limits, clock=ticks)
    for _ in range(20):
        limiter2.check_login("carol", "203.0.113.9")
    assert limiter2.check_login("carol", "198.51.100.1").remaining == 8 - 5 - 1


def test_login_ip_refusal_spares_the_username_bucket(ticks: TickClock) -> None:
    limits = RateLimits(auth=Rate.per_minute(5, 5), auth_per_ip=Rate.per_minute(2, 2))
    limiter = TokenBucketLimiter(limits, clock=ticks)
    for name in ("u1", "u2"):
        assert limiter.check_login(name, "203.0.113.7").allowed
    for _ in range(10):
        assert not limiter.check_login("victim", "203.0.113.7").allowed
    for i in range(5):
        assert limiter.check_login("victim", f"198.51.100.{i}").allowed


def test_production_defaults_match_the_documentation() -> None:
    limits = RateLimits()
    assert limits.for_category(Category.GENERAL) == Rate(20.0, 40)
    assert limits.for_category(Category.BACKTEST) == Rate(2.0, 10)
    assert limits.for_category(Category.OPTIMIZATION) == Rate.per_minute(10, 5)
    assert limits.for_category(Category.EXPORT) == Rate(1.0, 5)
    assert limits.for_category(Category.DATA) == Rate(5.0, 10)
    assert limits.for_category(Category.AUTH) == Rate.per_minute(5, 5)
    assert limits.for_category(Category.AUTH_IP) == Rate.per_minute(60, 20)
    assert limits.for_category(Category.AUTH_USER) == Rate.per_minute(30, 30)
    for category in Category:
        assert limits.for_category(category).burst >= 1


def test_rate_validation() -> None:
    with pytest.raises(ValueError):
        Rate(0.0, 1)
    with pytest.raises(ValueError):
        Rate(1.0, 0)


# --- concurrency ----------------------------------------------------------------------------


def test_concurrency_acquire_release() -> None:
    streams = ConcurrencyLimiter(max_per_principal=2)
    assert streams.acquire("alice") and streams.acquire("alice")
    assert not streams.acquire("alice")
    assert streams.acquire("bob")
    streams.release("alice")
    assert streams.in_use("alice") == 1
    assert streams.acquire("alice")
    for _ in range(2):
        streams.release("alice")
    streams.release("bob")
    assert len(streams) == 0
    with pytest.raises(ValueError):
        streams.release("alice")


async def test_concurrency_slot_context_manager() -> None:
    streams = ConcurrencyLimiter(max_per_principal=1)
    async with streams.slot("alice"):
        assert streams.in_use("alice") == 1
        with pytest.raises(ConcurrencyLimitExceededError):
            async with streams.slot("alice"):
                pass  # pragma: no cover
        async with streams.slot("bob"):
            pass
    assert streams.in_use("alice") == 0


async def test_concurrency_slot_released_on_cancel() -> None:
    streams = ConcurrencyLimiter(max_per_principal=1)
    started = asyncio.Event()

    async def stream() -> None:
        async with streams.slot("alice"):
            started.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(stream())
    await started.wait()
    assert not streams.acquire("alice")
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert streams.in_use("alice") == 0
    assert streams.acquire("alice")
