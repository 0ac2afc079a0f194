from __future__ import annotations

import pytest

from stratopt.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound
from stratopt.security.errors import AuthenticationError
from stratopt.security.passwords import PasswordHasher, ScryptParams
from stratopt.security.roles import Role
from stratopt.security.users import UNKNOWN_USER, InMemoryUserRepo, UserService

from .conftest import WallClock

PASSWORD = "a perfectly fine passphrase"


@pytest.fixture
def users(clock: WallClock) -> UserService:
    return UserService(InMemoryUserRepo(), PasswordHasher(ScryptParams(log2_n=10)), clock=clock)


async def test_usernames_are_normalized_and_unique(users: UserService) -> None:
    alice = await users.create("  Alice ", PASSWORD, Role.TRADER)
    assert alice.username == "alice" and alice.display_name == "alice"
    with pytest.raises(AlreadyExists):
        await users.create("ALICE", PASSWORD, Role.VIEWER)
    with pytest.raises(InvalidArgument) as info:
        await users.create("a b", "short", Role.VIEWER, email="nope")
    fields = {v.field for v in info.value.violations}
    assert fields == {"user.username", "password", "user.email"}
    assert "short" not in info.value.message


async def test_login_failures_share_one_error_type_and_cost(
    users: UserService, clock: WallClock
) -> None:
    await users.create("bob", PASSWORD, Role.TRADER)
    with pytest.raises(AuthenticationError) as unknown:
        await users.authenticate("nobody", PASSWORD)
    assert unknown.value.reason == UNKNOWN_USER
    with pytest.raises(AuthenticationError) as wrong:
        await users.authenticate("bob", "not the password")
    assert str(unknown.value) == str(wrong.value)
    ok = await users.authenticate("BOB", PASSWORD)
    assert ok.last_login_at == clock.now


async def test_disabled_users_cannot_log_in(users: UserService) -> None:
    await users.create("admin", PASSWORD, Role.ADMIN)
    carol = await users.create("carol", PASSWORD, Role.TRADER)
    await users.update(carol.user_id, {"disabled": True})
    with pytest.raises(AuthenticationError) as info:
        await users.authenticate("carol", PASSWORD)
    assert info.value.reason == "user disabled"


async def test_hashes_are_upgraded_on_login_when_parameters_rise() -> None:
    repo = InMemoryUserRepo()
    weak = UserService(repo, PasswordHasher(ScryptParams(log2_n=8)))
    user = await weak.create("dave", PASSWORD, Role.VIEWER)
    assert "ln=8" in user.password_hash
    strong = UserService(repo, PasswordHasher(ScryptParams(log2_n=10)))
    await strong.authenticate("dave", PASSWORD)
    stored = await repo.get(user.user_id)
    assert stored is not None and "ln=10" in stored.password_hash
    await strong.authenticate("dave", PASSWORD)  # the new hash verifies


async def test_change_password_checks_the_current_one_and_the_policy(users: UserService) -> None:
    erin = await users.create("erin", PASSWORD, Role.TRADER)
    with pytest.raises(InvalidArgument) as info:
        await users.change_password(erin.user_id, "wrong current one", "another fine phrase")
    assert info.value.violations[0].field == "current_password"
    with pytest.raises(InvalidArgument):
        await users.change_password(erin.user_id, PASSWORD, PASSWORD)
    with pytest.raises(InvalidArgument):
        await users.change_password(erin.user_id, PASSWORD, "erin-password-1")  # has username
    await users.change_password(erin.user_id, PASSWORD, "another fine phrase")
    await users.authenticate("erin", "another fine phrase")
    with pytest.raises(AuthenticationError):
        await users.authenticate("erin", PASSWORD)


async def test_the_last_enabled_admin_is_protected(users: UserService) -> None:
    root = await users.create("root", PASSWORD, Role.ADMIN)
    for change in ({"role": Role.TRADER}, {"disabled": True}):
        with pytest.raises(FailedPrecondition):
            await users.update(root.user_id, change)
    with pytest.raises(FailedPrecondition):
        await users.delete(root.user_id)
    second = await users.create("second", PASSWORD, Role.ADMIN)
    await users.update(root.user_id, {"role": Role.TRADER})
    with pytest.raises(FailedPrecondition):
        await users.delete(second.user_id)
    assert (await users.get(root.user_id)).role is Role.TRADER


async def test_updates_accept_only_profile_role_and_disabled(users: UserService) -> None:
    await users.create("admin", PASSWORD, Role.ADMIN)
    frank = await users.create("frank", PASSWORD, Role.VIEWER)
    with pytest.raises(InvalidArgument):
        await users.update(frank.user_id, {"username": "francis"})
    with pytest.raises(InvalidArgument):
        await users.update(frank.user_id, {"email": "not an email"})
    updated = await users.update(frank.user_id, {"email": "f@example.com", "role": Role.ANALYST})
    assert (updated.email, updated.role) == ("f@example.com", Role.ANALYST)
    with pytest.raises(NotFound):
        await users.update("missing", {"email": "f@example.com"})
