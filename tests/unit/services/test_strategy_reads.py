"""GetStrategy and ListStrategies read through `Database.read`/`scan` (Core rows on a plain
connection) and must answer alike on a SQLite file and on PostgreSQL: owners, grantees and
strangers, filters, pages and their tokens, totals, owner names."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from stratopt.errors import NotFound
from stratopt.security.principal import Principal
from stratopt.security.roles import Role
from stratopt.services.strategies import StrategyCatalog, StrategyQuery
from stratopt.services.validation import StrategyFields
from stratopt.store import migrate, models
from stratopt.store.db import Database
from tests.tools import fresh_postgres

OWNER = Principal(user_id="owner", username="olga", role=Role.TRADER, via="jwt")
READER = Principal(user_id="reader", username="rita", role=Role.TRADER, via="jwt")
OTHER = Principal(user_id="other", username="otto", role=Role.TRADER, via="jwt")
ADMIN = Principal(user_id="root", username="root", role=Role.ADMIN, via="jwt")


@asynccontextmanager
async def sqlite(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'reads.db'}")
    await migrate.upgrade(db)
    try:
        yield db
    finally:
        await db.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StrategyCatalog]:
    opened = sqlite(tmp_path) if request.param == "sqlite" else fresh_postgres("stratopt_reads")
    async with opened as db:
        async with db.transaction() as s:
            for p in (OWNER, READER, OTHER, ADMIN):
                s.add(
                    models.User(
                        id=p.user_id, username=p.username, role=p.role.value, password_hash="x"
                    )
                )
        yield StrategyCatalog(db)


async def test_get_and_list_agree_on_both_databases(catalog: StrategyCatalog) -> None:
    made = []
    for i in range(7):
        tags = ["even"] if i % 2 == 0 else ["odd"]
        made.append(
            await catalog.create(
                OWNER, StrategyFields(name=f"s{i}", strategy_type="sma_crossover", tags=tags)
            )
        )
    async with catalog.db.transaction() as s:
        s.add(models.StrategyShare(strategy_id=made[3].id, user_id=READER.user_id, access=["read"]))

    got = await catalog.get(OWNER, made[0].id)
    assert (got.name, got.owner_username, got.tags, got.version) == ("s0", "olga", ["even"], 1)
    assert got.created_at.tzinfo is not None and isinstance(got.parameters, dict)
    assert (await catalog.get(READER, made[3].id)).name == "s3"
    assert (await catalog.get(ADMIN, made[5].id)).name == "s5"
    for who, sid in ((READER, made[0].id), (OTHER, made[3].id), (OWNER, "missing")):
        with pytest.raises(NotFound):
            await catalog.get(who, sid)

    # Newest first by default; three pages of 3, 3 and 1, each token leading on.
    names, token, pages = [], "", 0
    while True:
        page = await catalog.list_page(OWNER, StrategyQuery(), 3, token)
        assert page.total_size == 7 and len(page.rows) <= 3
        names += [v.name for v in page.rows]
        pages += 1
        token = page.next_page_token
        if not token:
            break
    assert pages == 3 and names == [f"s{i}" for i in reversed(range(7))]
    assert all(v.owner_username == "olga" for v in page.rows)

    even = await catalog.list_page(OWNER, StrategyQuery(tags=("even",), order_by="name"), 0, "")
    assert [v.name for v in even.rows] == ["s0", "s2", "s4", "s6"] and even.total_size == 4
    shared = await catalog.list_page(READER, StrategyQuery(), 0, "")
    assert [v.name for v in shared.rows] == ["s3"] and shared.total_size == 1
    assert (await catalog.list_page(OTHER, StrategyQuery(), 0, "")).total_size == 0
    assert (await catalog.list_page(ADMIN, StrategyQuery(), 0, "")).total_size == 7


async def test_get_follows_every_change_after_answers_from_memory(
    catalog: StrategyCatalog,
) -> None:
    """GetStrategy's views are kept in memory on SQLite (store/read_cache.py): an update, a
    share taken back and a delete must each show at the next read, for every caller."""
    made = await catalog.create(OWNER, StrategyFields(name="kept", strategy_type="sma_crossover"))
    async with catalog.db.transaction() as s:
        s.add(models.StrategyShare(strategy_id=made.id, user_id=READER.user_id, access=["read"]))
    for _ in range(2):
        assert (await catalog.get(OWNER, made.id)).version == 1
        assert (await catalog.get(READER, made.id)).name == "kept"

    async with catalog.db.transaction() as s:
        row = await s.get(models.Strategy, made.id)
        assert row is not None
        row.name, row.version = "changed", 2
    assert (await catalog.get(OWNER, made.id)).name == "changed"
    assert (await catalog.get(READER, made.id)).version == 2

    async with catalog.db.transaction() as s:
        share = await s.get(models.StrategyShare, (made.id, READER.user_id))
        await s.delete(share)
    with pytest.raises(NotFound):
        await catalog.get(READER, made.id)
    assert (await catalog.get(ADMIN, made.id)).name == "changed"

    async with catalog.db.transaction() as s:
        await s.delete(await s.get(models.Strategy, made.id))
    for who in (OWNER, ADMIN):
        with pytest.raises(NotFound):
            await catalog.get(who, made.id)
