from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from stratopt.security.errors import GENERIC_AUTH_MESSAGE, AuthenticationError
from stratopt.security.refresh_tokens import (
    InMemoryRefreshTokenRepo,
    RefreshTokenPolicy,
    RefreshTokenRecord,
    RefreshTokenReuseError,
    hash_refresh_token,
)

from .conftest import WallClock


@pytest.fixture
def repo() -> InMemoryRefreshTokenRepo:
    return InMemoryRefreshTokenRepo()


@pytest.fixture
def policy(repo: InMemoryRefreshTokenRepo, clock: WallClock) -> RefreshTokenPolicy:
    return RefreshTokenPolicy(repo, clock=clock)


async def assert_refused(policy: RefreshTokenPolicy, token: str) -> AuthenticationError:
    with pytest.raises(AuthenticationError) as info:
        await policy.rotate(token)
    assert str(info.value) == GENERIC_AUTH_MESSAGE
    if token:
        assert token not in info.value.reason
    return info.value


async def test_issue_stores_only_a_hash(
    policy: RefreshTokenPolicy, repo: InMemoryRefreshTokenRepo, clock: WallClock
) -> None:
    issued = await policy.issue("user-1")
    assert issued.token.startswith("rt_")
    assert issued.token not in repr(issued)
    assert issued.expires_at == clock() + timedelta(days=30)
    (record,) = repo.records.values()
    assert record.token_hash == hash_refresh_token(issued.token) != issued.token
    assert issued.token not in repr(record)


async def test_rotation_issues_successor_in_same_family(
    policy: RefreshTokenPolicy, clock: WallClock
) -> None:
    first = await policy.issue("user-1")
    clock.advance(days=1)
    second = await policy.rotate(first.token)
    assert second.token != first.token
    assert (second.family_id, second.user_id) == (first.family_id, "user-1")
    assert second.expires_at == clock() + timedelta(days=30)
    third = await policy.rotate(second.token)
    assert third.family_id == first.family_id


async def test_reuse_of_rotated_token_revokes_whole_family(policy: RefreshTokenPolicy) -> None:
    first = await policy.issue("user-1")
    second = await policy.rotate(first.token)
    other_login = await policy.issue("user-1")

    with pytest.raises(RefreshTokenReuseError) as info:
        await policy.rotate(first.token)
    assert str(info.value) == GENERIC_AUTH_MESSAGE
    assert info.value.family_id == first.family_id
    assert (await assert_refused(policy, second.token)).reason == "refresh token revoked"
    # A different login (family) of the same user is untouched.
    assert (await policy.rotate(other_login.token)).family_id == other_login.family_id


async def test_concurrent_use_counts_as_reuse(
    repo: InMemoryRefreshTokenRepo, clock: WallClock
) -> None:
    class YieldingRepo(InMemoryRefreshTokenRepo):
        async def get(self, token_hash: str) -> RefreshTokenRecord | None:
            record = await super().get(token_hash)
            await asyncio.sleep(0)  # let the other request read the same unused record
            return record

    yielding = YieldingRepo()
    policy = RefreshTokenPolicy(yielding, clock=clock)
    first = await policy.issue("user-1")
    results = await asyncio.gather(
        policy.rotate(first.token), policy.rotate(first.token), return_exceptions=True
    )
    winners = [r for r in results if not isinstance(r, BaseException)]
    losers = [r for r in results if isinstance(r, BaseException)]
    assert len(winners) == 1 and len(losers) == 1
    assert isinstance(losers[0], RefreshTokenReuseError)
    # The winner's successor died with the family.
    await assert_refused(policy, winners[0].token)


async def test_expiry_after_thirty_days(policy: RefreshTokenPolicy, clock: WallClock) -> None:
    early = await policy.issue("user-1")
    late = await policy.issue("user-1")
    clock.advance(days=29, hours=23)
    await policy.rotate(early.token)
    clock.advance(hours=1)
    assert (await assert_refused(policy, late.token)).reason == "refresh token expired"


async def test_session_cannot_outlive_max_session_age(
    repo: InMemoryRefreshTokenRepo, clock: WallClock
) -> None:
    policy = RefreshTokenPolicy(
        repo, ttl=timedelta(days=30), max_session_age=timedelta(days=45), clock=clock
    )
    start = clock()
    token = (await policy.issue("user-1")).token
    clock.advance(days=20)
    second = await policy.rotate(token)
    assert second.expires_at == start + timedelta(days=45)
    clock.advance(days=25)
    await assert_refused(policy, second.token)


async def test_logout_revokes_family_and_is_idempotent(policy: RefreshTokenPolicy) -> None:
    first = await policy.issue("user-1")
    second = await policy.rotate(first.token)
    await policy.revoke(second.token)
    await policy.revoke(second.token)
    await policy.revoke("rt_not-a-real-token")
    await policy.revoke("garbage")
    await assert_refused(policy, second.token)


async def test_revoke_all_for_user_spares_other_users(policy: RefreshTokenPolicy) -> None:
    mine = [await policy.issue("user-1") for _ in range(3)]
    theirs = await policy.issue("user-2")
    assert await policy.revoke_all_for_user("user-1") == 3
    for issued in mine:
        await assert_refused(policy, issued.token)
    await policy.rotate(theirs.token)


async def test_revoke_family_by_id(policy: RefreshTokenPolicy) -> None:
    issued = await policy.issue("user-1")
    assert await policy.revoke_family(issued.family_id) == 1
    await assert_refused(policy, issued.token)


@pytest.mark.parametrize(
    "token", ["", "rt_short", "sk_abcdefgh_x", "rt_" + "A" * 43 + "!", "x" * 50]
)
async def test_malformed_and_unknown_tokens_refused(policy: RefreshTokenPolicy, token: str) -> None:
    await assert_refused(policy, token)


async def test_unknown_well_formed_token_refused(policy: RefreshTokenPolicy) -> None:
    assert (await assert_refused(policy, "rt_" + "A" * 43)).reason == "unknown refresh token"


async def test_delete_expired_housekeeping(
    policy: RefreshTokenPolicy, repo: InMemoryRefreshTokenRepo, clock: WallClock
) -> None:
    await policy.issue("user-1")
    clock.advance(days=10)
    await policy.issue("user-1")
    cutoff: datetime = clock() + timedelta(days=25)
    assert await repo.delete_expired(cutoff) == 1
    assert len(repo.records) == 1


def test_policy_validates_lifetimes(repo: InMemoryRefreshTokenRepo) -> None:
    with pytest.raises(ValueError):
        RefreshTokenPolicy(repo, ttl=timedelta(0))
    with pytest.raises(ValueError):
        RefreshTokenPolicy(repo, ttl=timedelta(days=30), max_session_age=timedelta(days=1))
