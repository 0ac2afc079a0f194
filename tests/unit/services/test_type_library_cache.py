"""TypeLibraryCache: reused for its time-to-live, never stored from a read older than a
clear, bounded, and one per database so every servicer's writes clear what the others list.
On a SQLite file it is exact: another process's change empties it at once (migration 0009).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from stratopt.security.principal import Principal
from stratopt.security.roles import Role
from stratopt.services.user_definitions import (
    GENERATION_GROUP,
    DefinitionFields,
    DefinitionView,
    TypeLibraryCache,
    UserDefinitions,
    library_of,
)
from stratopt.store import migrate, models
from stratopt.store.db import Database
from stratopt.store.read_cache import GenerationWatch

SOURCE = """param fast: int = 10 in [2, 50]
param slow: int = 30 in [5, 200]
constraint fast < slow
long_entry: crossover(ema(close, fast), sma(close, slow))
long_exit: crossunder(ema(close, fast), sma(close, slow))
"""


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def view(name: str) -> DefinitionView:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    return DefinitionView(
        id=name, kind="strategy", name=name, description="", source="", owner_id="u",
        owner_username="u", shared_with=(), indicators=(), params=(), constraints=(),
        version=1, created_at=t, updated_at=t,
    )  # fmt: skip


def test_an_answer_is_reused_until_its_time_to_live_ends() -> None:
    clock = Clock()
    cache = TypeLibraryCache(ttl_s=1.0, clock=clock)
    assert cache.get("u") is None
    cache.put("u", [view("a")], cache.generation, clock())
    clock.now += 0.9
    assert cache.get("u") == (view("a"),)
    assert cache.get("other") is None
    clock.now += 0.1
    assert cache.get("u") is None


def test_a_read_that_started_before_a_clear_is_not_stored() -> None:
    clock = Clock()
    cache = TypeLibraryCache(clock=clock)
    generation, read_at = cache.generation, clock()
    cache.clear()  # a write ended while the read was waiting for the database
    cache.put("u", [view("old")], generation, read_at)
    assert cache.get("u") is None
    cache.put("u", [view("new")], cache.generation, clock())
    assert cache.get("u") == (view("new"),)
    cache.clear()
    assert cache.get("u") is None


def test_the_least_recently_used_callers_leave_first() -> None:
    clock = Clock()
    cache = TypeLibraryCache(size=2, clock=clock)
    for user in ("a", "b"):
        cache.put(user, [], cache.generation, clock())
    assert cache.get("a") == ()
    cache.put("c", [], cache.generation, clock())
    assert cache.get("b") is None and cache.get("a") == () and cache.get("c") == ()


def test_every_user_definitions_of_one_database_shares_one_cache() -> None:
    one, two = Database("sqlite+aiosqlite://"), Database("sqlite+aiosqlite://")
    assert UserDefinitions(one).library is UserDefinitions(one).library is library_of(one)
    assert library_of(two) is not library_of(one)


@pytest.fixture()
async def two_processes(tmp_path: Path) -> AsyncIterator[tuple[Database, Database]]:
    """Two Database objects on one SQLite file: what two server processes share."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'library.db'}"
    one, two = Database(url), Database(url)
    await migrate.upgrade(one)
    async with one.transaction() as s:
        for user in ("olga", "rita"):
            s.add(models.User(id=user, username=user, role="trader", password_hash="x"))
    yield one, two
    for db in (one, two):
        library_of(db).watch.close()  # type: ignore[union-attr]
        await db.dispose()


def principal(user: str) -> Principal:
    return Principal(user_id=user, username=user, role=Role.TRADER, via="jwt")


async def test_on_a_sqlite_file_another_process_changes_show_at_once(
    two_processes: tuple[Database, Database],
) -> None:
    here, there = (UserDefinitions(db) for db in two_processes)
    clock = Clock()
    here.library.clock = clock
    assert await here.strategy_types(principal("olga")) == []
    assert await here.strategy_types(principal("rita")) == []

    created = await there.create(
        principal("olga"), DefinitionFields("strategy", "trend", "", SOURCE)
    )
    assert [v.name for v in await here.strategy_types(principal("olga"))] == ["trend"]
    assert await here.strategy_types(principal("rita")) == []

    await there.share(principal("olga"), created.id, "rita")
    assert [v.name for v in await here.strategy_types(principal("rita"))] == ["trend"]

    await there.delete(principal("olga"), created.id)
    assert await here.strategy_types(principal("olga")) == []
    assert await here.strategy_types(principal("rita")) == []

    # Exact, so kept past the time-to-live while nothing changes.
    clock.now += 60
    assert here.library.get("olga") == ()


async def test_without_a_generation_to_watch_the_time_to_live_applies(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'old.db'}")
    await migrate.upgrade(db)
    async with db.transaction() as s:  # as a schema from before migration 0009
        await s.execute(
            models.ChangeGeneration.__table__.delete().where(
                models.ChangeGeneration.name == GENERATION_GROUP
            )
        )
    clock = Clock()
    watch = GenerationWatch(db, GENERATION_GROUP)
    cache = TypeLibraryCache(ttl_s=1.0, clock=clock, watch=watch)
    assert watch.current() is None
    cache.put("u", [view("a")], cache.generation, clock())
    assert cache.get("u") == (view("a"),)
    clock.now += 1.0
    assert cache.get("u") is None
    watch.close()
    await db.dispose()
