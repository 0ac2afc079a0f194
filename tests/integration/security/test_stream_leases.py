"""Stream leases on both databases: concurrent openers never exceed the cap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stratopt.store import migrate
from stratopt.store.db import Database
from stratopt.store.stream_leases import SqlStreamLeases
from tests.tools import fresh_postgres


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Database]:
    if request.param == "sqlite":
        database = Database(f"sqlite+aiosqlite:///{tmp_path / 'leases.db'}")
        await migrate.upgrade(database)
        yield database
        await database.dispose()
        return
    async with fresh_postgres("stratopt_sl") as database:
        yield database


async def test_racing_openers_get_exactly_the_cap(db: Database) -> None:
    holders = [SqlStreamLeases(db, f"p{i}") for i in range(4)]
    got = await asyncio.gather(*(holders[i % 4].open("alice", 3) for i in range(24)))
    assert sum(g is not None for g in got) == 3
    assert await holders[0].open("bob", 3) is not None  # per user
    # Closing one frees one place; a holder's shutdown frees all of its own.
    await holders[0].close(next(g for g in got if g is not None))
    assert await holders[3].open("alice", 3) is not None
    assert await holders[3].open("alice", 3) is None
    for h in holders:
        await h.close_all()
    assert await holders[1].open("alice", 3) is not None


async def test_leases_of_a_silent_holder_lapse(db: Database) -> None:
    live, dead = SqlStreamLeases(db, "live", ttl_seconds=0.5), SqlStreamLeases(db, "dead")
    assert await dead.open("alice", 1) is not None
    assert await live.open("alice", 1) is None
    mine = None
    for _ in range(40):  # the dead holder never heartbeats
        await asyncio.sleep(0.1)
        await live.heartbeat()
        mine = await live.open("alice", 1)
        if mine is not None:
            break
    assert mine is not None
