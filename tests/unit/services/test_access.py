"""The one access module: owner or admin, public datasets, shares, accounts."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from stratopt.errors import NotFound, PermissionDenied
from stratopt.security.principal import Principal
from stratopt.security.roles import Permission, Role
from stratopt.services.access import (
    PUBLIC_OWNER,
    Access,
    dataset_owner_scope,
    load_strategy,
    manages_account,
    owner_scope,
    owns,
    read_strategy,
    require_owner,
    sees_dataset,
    visible_strategies,
)
from stratopt.store import migrate, models
from stratopt.store.db import Database


def jwt_user(role: Role, user_id: str) -> Principal:
    return Principal(user_id=user_id, username=user_id, role=role, via="jwt")


OWNER = jwt_user(Role.TRADER, "owner")
OTHER = jwt_user(Role.TRADER, "other")
ADMIN = jwt_user(Role.ADMIN, "root")


class Row:
    def __init__(self, owner_id: str) -> None:
        self.owner_id = owner_id


def test_owner_or_admin() -> None:
    assert owns(OWNER, "owner")
    assert owns(ADMIN, "owner")
    assert not owns(OTHER, "owner")
    assert owner_scope(OWNER) == "owner"
    assert owner_scope(ADMIN) is None


def test_require_owner_hides_what_you_do_not_own() -> None:
    row = Row("owner")
    assert require_owner(OWNER, row, "backtest", "b1") is row
    assert require_owner(ADMIN, row, "backtest", "b1") is row
    for principal, found in ((OTHER, row), (OWNER, None)):
        with pytest.raises(NotFound):
            require_owner(principal, found, "backtest", "b1")


def test_public_datasets_are_seen_by_everyone_and_owned_by_nobody() -> None:
    assert sees_dataset(OTHER, PUBLIC_OWNER)
    assert not owns(OTHER, PUBLIC_OWNER)
    assert owns(ADMIN, PUBLIC_OWNER)
    assert sees_dataset(OWNER, "owner") and not sees_dataset(OTHER, "owner")
    assert dataset_owner_scope(OTHER) == ("other", PUBLIC_OWNER)
    assert dataset_owner_scope(ADMIN) is None


def test_accounts_are_managed_by_themselves_and_user_managers() -> None:
    assert manages_account(OWNER, "owner")
    assert not manages_account(OWNER, "other")
    assert manages_account(ADMIN, "other")
    # An admin's key without MANAGE_USERS manages only its own account.
    scoped = Principal(
        "root",
        "root",
        Role.ADMIN,
        via="api_key",
        key_id="k",
        scopes=frozenset({Permission.READ_STRATEGIES}),
    )
    assert not manages_account(scoped, "other")


@pytest.fixture()
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'access.db'}")
    await migrate.upgrade(database)
    async with database.transaction() as s:
        for uid in ("owner", "other", "reader", "root"):
            s.add(models.User(id=uid, username=uid, role="trader", password_hash="x"))
        await s.flush()
        s.add(
            models.Strategy(
                id="s1",
                owner_id="owner",
                name="one",
                name_key="one",
                strategy_type="sma_crossover",
                category="trend_following",
                risk_level="medium",
                status="draft",
            )
        )
        await s.flush()
        s.add(models.StrategyShare(strategy_id="s1", user_id="reader", access=["execute"]))
    yield database
    await database.dispose()


async def test_strategy_access_through_shares(db: Database) -> None:
    reader = jwt_user(Role.TRADER, "reader")
    async with db.session() as s:
        for principal in (OWNER, ADMIN):
            for need in Access:
                assert (await load_strategy(s, principal, "s1", need)).id == "s1"
        # A grant implies read; what it does not grant is refused openly (they can see it).
        assert (await load_strategy(s, reader, "s1", Access.READ)).id == "s1"
        assert (await load_strategy(s, reader, "s1", Access.EXECUTE)).id == "s1"
        with pytest.raises(PermissionDenied):
            await load_strategy(s, reader, "s1", Access.WRITE)
        # Without a share the strategy does not exist, whatever was asked.
        for need in (Access.READ, Access.DELETE):
            with pytest.raises(NotFound):
                await load_strategy(s, OTHER, "s1", need)
        with pytest.raises(NotFound):
            await load_strategy(s, OWNER, "missing", Access.READ)

        async def visible(p: Principal) -> list[str]:
            stmt = visible_strategies(select(models.Strategy.id), p)
            return list((await s.execute(stmt)).scalars())

        assert await visible(OWNER) == ["s1"]
        assert await visible(reader) == ["s1"]
        assert await visible(ADMIN) == ["s1"]
        assert await visible(OTHER) == []


async def test_one_step_reads_decide_exactly_like_load_strategy(db: Database) -> None:
    """`read_strategy` (GetStrategy's path through `Database.read`) must refuse and allow the
    very same callers as `load_strategy`, with the same errors."""
    reader = jwt_user(Role.TRADER, "reader")

    async def outcome_async(p: Principal, sid: str, need: Access) -> str:
        async with db.session() as s:
            try:
                return (await load_strategy(s, p, sid, need)).id
            except (NotFound, PermissionDenied) as e:
                return type(e).__name__

    async def outcome_read(p: Principal, sid: str, need: Access) -> str:
        try:
            return await db.read(lambda s: read_strategy(s, p, sid, need).id)
        except (NotFound, PermissionDenied) as e:
            return type(e).__name__

    seen = set()
    for principal in (OWNER, ADMIN, reader, OTHER):
        for sid in ("s1", "missing"):
            for need in Access:
                expected = await outcome_async(principal, sid, need)
                assert await outcome_read(principal, sid, need) == expected, (principal, sid)
                seen.add(expected)
    assert seen == {"s1", "NotFound", "PermissionDenied"}
