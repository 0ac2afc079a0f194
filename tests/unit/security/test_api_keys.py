from __future__ import annotations

import re
from datetime import timedelta

import pytest

from stratopt.security import api_keys as api_keys_module
from stratopt.security.api_keys import (
    ApiKeyService,
    InMemoryApiKeyRepo,
    generate_api_key,
    hash_api_key,
)
from stratopt.security.errors import GENERIC_AUTH_MESSAGE, AuthenticationError
from stratopt.security.roles import ROLE_PERMISSIONS, Permission, Role

from .conftest import WallClock

KEY_FORMAT = re.compile(r"^sk_[0-9a-f]{8}_[0-9A-Za-z]{40}$")


@pytest.fixture
def repo() -> InMemoryApiKeyRepo:
    return InMemoryApiKeyRepo()


@pytest.fixture
def service(repo: InMemoryApiKeyRepo, clock: WallClock) -> ApiKeyService:
    return ApiKeyService(repo, clock=clock)


async def assert_refused(service: ApiKeyService, key: str) -> str:
    with pytest.raises(AuthenticationError) as info:
        await service.verify(key)
    assert str(info.value) == GENERIC_AUTH_MESSAGE
    assert not key or key not in info.value.reason
    return info.value.reason


def test_generated_keys_have_the_documented_shape() -> None:
    keys = {generate_api_key() for _ in range(50)}
    assert len(keys) == 50
    for key, prefix in keys:
        assert KEY_FORMAT.match(key)
        assert key.startswith(f"sk_{prefix}_")


async def test_create_and_verify(
    service: ApiKeyService, repo: InMemoryApiKeyRepo, clock: WallClock
) -> None:
    created = await service.create("user-1", Role.TRADER, "ci bot")
    assert KEY_FORMAT.match(created.key)
    assert created.key not in repr(created)
    record = await service.verify(created.key)
    assert record.key_id == created.record.key_id
    assert record.scopes == ROLE_PERMISSIONS[Role.TRADER]
    assert record.expires_at == clock() + timedelta(days=90)
    assert record.display == f"sk_{record.prefix}_…"
    stored = repo.records[record.key_id]
    assert stored.key_hash == hash_api_key(created.key)
    assert created.key not in repr(stored)
    secret = created.key.rsplit("_", 1)[1]
    assert secret not in repr(stored)


async def test_wrong_secret_with_valid_prefix_refused(service: ApiKeyService) -> None:
    created = await service.create("user-1", Role.TRADER, "bot")
    head, secret = created.key.rsplit("_", 1)
    flipped = ("B" if secret[0] == "A" else "A") + secret[1:]
    assert await assert_refused(service, f"{head}_{flipped}") == "api key mismatch"


@pytest.mark.parametrize(
    "key",
    [
        "",
        "sk_",
        "sk_1234567_" + "a" * 40,
        "sk_1234567g_" + "a" * 40,
        "sk_12345678_" + "a" * 39,
        "pk_12345678_" + "a" * 40,
        "sk_12345678_" + "a" * 40 + "\n",
    ],
)
async def test_malformed_keys_refused(service: ApiKeyService, key: str) -> None:
    assert await assert_refused(service, key) == "malformed api key"


async def test_unknown_prefix_refused(service: ApiKeyService) -> None:
    key, _ = generate_api_key()
    assert await assert_refused(service, key) == "unknown api key"


async def test_revoked_key_refused(service: ApiKeyService) -> None:
    created = await service.create("user-1", Role.ANALYST, "report job")
    assert await service.revoke(created.record.key_id)
    assert not await service.revoke(created.record.key_id)
    assert await assert_refused(service, created.key) == "api key revoked"


async def test_expired_key_refused(service: ApiKeyService, clock: WallClock) -> None:
    created = await service.create(
        "user-1", Role.VIEWER, "short", expires_at=clock() + timedelta(hours=1)
    )
    clock.advance(minutes=59)
    await service.verify(created.key)
    clock.advance(minutes=1)
    assert await assert_refused(service, created.key) == "api key expired"


async def test_non_expiring_keys_only_when_policy_allows(
    repo: InMemoryApiKeyRepo, clock: WallClock
) -> None:
    forever = ApiKeyService(repo, clock=clock, default_ttl=None)
    created = await forever.create("user-1", Role.VIEWER, "forever")
    assert created.record.expires_at is None
    clock.advance(days=3650)
    await forever.verify(created.key)
    with pytest.raises(ValueError):
        await forever.create("user-1", Role.VIEWER, "past", expires_at=clock() - timedelta(1))


async def test_scopes_narrow_and_cannot_exceed_role(service: ApiKeyService) -> None:
    created = await service.create(
        "user-1", Role.TRADER, "read only", scopes=[Permission.READ_STRATEGIES]
    )
    assert created.record.scopes == {Permission.READ_STRATEGIES}
    with pytest.raises(ValueError, match="manage_users"):
        await service.create("user-1", Role.TRADER, "escalate", scopes=[Permission.MANAGE_USERS])
    with pytest.raises(ValueError):
        await service.create("user-1", Role.TRADER, "empty", scopes=[])


async def test_rotation_keeps_old_key_for_grace_period(
    service: ApiKeyService, repo: InMemoryApiKeyRepo, clock: WallClock
) -> None:
    old = await service.create("user-1", Role.TRADER, "deploy", scopes=[Permission.RUN_BACKTESTS])
    clock.advance(days=10)
    new = await service.rotate(old.record.key_id, grace=timedelta(hours=2))
    assert new.key != old.key
    assert (new.record.user_id, new.record.name, new.record.scopes) == (
        "user-1",
        "deploy",
        old.record.scopes,
    )
    assert new.record.expires_at == clock() + timedelta(days=90)  # same lifetime as the old key
    assert repo.records[old.record.key_id].rotated_to == new.record.key_id

    clock.advance(hours=1, minutes=59)
    await service.verify(old.key)
    await service.verify(new.key)
    clock.advance(minutes=1)
    assert await assert_refused(service, old.key) == "api key expired"
    await service.verify(new.key)


async def test_rotation_grace_never_extends_old_expiry(
    service: ApiKeyService, repo: InMemoryApiKeyRepo, clock: WallClock
) -> None:
    old = await service.create(
        "user-1", Role.TRADER, "soon", expires_at=clock() + timedelta(hours=1)
    )
    await service.rotate(old.record.key_id, grace=timedelta(days=1))
    assert repo.records[old.record.key_id].expires_at == clock() + timedelta(hours=1)


async def test_rotation_refused_for_rotated_revoked_or_unknown(service: ApiKeyService) -> None:
    old = await service.create("user-1", Role.TRADER, "k")
    await service.rotate(old.record.key_id)
    with pytest.raises(ValueError):
        await service.rotate(old.record.key_id)
    revoked = await service.create("user-1", Role.TRADER, "r")
    await service.revoke(revoked.record.key_id)
    with pytest.raises(ValueError):
        await service.rotate(revoked.record.key_id)
    with pytest.raises(LookupError):
        await service.rotate("no-such-id")


async def test_last_used_is_throttled(
    service: ApiKeyService, repo: InMemoryApiKeyRepo, clock: WallClock
) -> None:
    created = await service.create("user-1", Role.TRADER, "k")
    key_id = created.record.key_id
    await service.verify(created.key)
    first_use = clock()
    assert repo.records[key_id].last_used_at == first_use
    clock.advance(seconds=30)
    await service.verify(created.key)
    assert repo.records[key_id].last_used_at == first_use
    clock.advance(seconds=31)
    await service.verify(created.key)
    assert repo.records[key_id].last_used_at == clock()


async def test_prefix_collision_is_retried(
    service: ApiKeyService, monkeypatch: pytest.MonkeyPatch
) -> None:
    existing = await service.create("user-1", Role.TRADER, "first")
    fresh = generate_api_key()
    queue = [(existing.key, existing.record.prefix), fresh]
    monkeypatch.setattr(api_keys_module, "generate_api_key", lambda: queue.pop(0))
    created = await service.create("user-2", Role.TRADER, "second")
    assert created.key == fresh[0]
    assert (await service.verify(existing.key)).user_id == "user-1"


async def test_prefix_collision_gives_up_eventually(
    service: ApiKeyService, monkeypatch: pytest.MonkeyPatch
) -> None:
    existing = await service.create("user-1", Role.TRADER, "first")
    monkeypatch.setattr(
        api_keys_module, "generate_api_key", lambda: (existing.key, existing.record.prefix)
    )
    with pytest.raises(RuntimeError):
        await service.create("user-2", Role.TRADER, "second")


async def test_list_for_user(service: ApiKeyService, clock: WallClock) -> None:
    a = await service.create("user-1", Role.TRADER, "a")
    clock.advance(seconds=1)
    b = await service.create("user-1", Role.TRADER, "b")
    await service.create("user-2", Role.TRADER, "c")
    listed = await service.list_for_user("user-1")
    assert [r.key_id for r in listed] == [a.record.key_id, b.record.key_id]
