"""`GenerationCache`: answers from memory only while no change to its tables was committed,
by this process or any other, on a real SQLite file; elsewhere it reads every time."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import Connection, select, text

from stratopt.store import migrate, models
from stratopt.store.db import Database
from stratopt.store.read_cache import GenerationCache, GenerationWatch


class CountingRead:
    """The strategy's name, counting the reads that reached the database."""

    def __init__(self, strategy_id: str) -> None:
        self.strategy_id = strategy_id
        self.reads = 0

    def __call__(self, c: Connection) -> str:
        self.reads += 1
        stmt = select(models.Strategy.name).where(models.Strategy.id == self.strategy_id)
        return str(c.execute(stmt).scalar_one())


@pytest.fixture()
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'cache.db'}")
    await migrate.upgrade(db)
    async with db.transaction() as s:
        s.add(models.User(id="u1", username="olga", role="trader", password_hash="x"))
        s.add(models.User(id="u2", username="rita", role="trader", password_hash="x"))
        await s.flush()
        s.add(models.Strategy(id="s1", owner_id="u1", name="first", name_key="first",
                              strategy_type="sma_crossover", category="trend",
                              risk_level="medium", status="draft"))  # fmt: skip
    yield db
    await db.dispose()


async def execute(db: Database, sql: str) -> None:
    async with db.transaction() as s:
        await s.execute(text(sql))


async def test_a_second_get_is_answered_from_memory(db: Database) -> None:
    cache: GenerationCache[str, str] = GenerationCache(db, "strategies")
    read = CountingRead("s1")
    assert [await cache.get("s1", read) for _ in range(3)] == ["first"] * 3
    assert read.reads == 1
    cache.close()


@pytest.mark.parametrize(
    "change",
    [
        "UPDATE strategies SET name = 'renamed' WHERE id = 's1'",
        "INSERT INTO strategy_shares (strategy_id, user_id, access, created_at) "
        "VALUES ('s1', 'u2', '[\"read\"]', '2026-01-01 00:00:00')",
        "DELETE FROM strategies WHERE id = 'nothing-matches'",
    ],
    ids=["update", "share", "delete-of-no-row"],
)
async def test_any_change_to_the_group_is_read_again(db: Database, change: str) -> None:
    cache: GenerationCache[str, str] = GenerationCache(db, "strategies")
    read = CountingRead("s1")
    await cache.get("s1", read)
    await execute(db, change)
    name = await cache.get("s1", read)
    # A DELETE matching no row fires no row trigger: SQLite triggers are FOR EACH ROW,
    # and nothing changed.
    assert read.reads == (1 if "nothing-matches" in change else 2)
    assert name == ("renamed" if "renamed" in change else "first")
    cache.close()


async def test_changes_to_other_tables_keep_the_cache(db: Database) -> None:
    cache: GenerationCache[str, str] = GenerationCache(db, "strategies")
    read = CountingRead("s1")
    await cache.get("s1", read)
    await execute(db, "UPDATE users SET role = 'analyst' WHERE id = 'u2'")
    await cache.get("s1", read)
    assert read.reads == 1
    cache.close()


async def test_a_commit_by_another_process_is_seen(db: Database) -> None:
    cache: GenerationCache[str, str] = GenerationCache(db, "strategies")
    read = CountingRead("s1")
    await cache.get("s1", read)
    path = db.url.split("///", 1)[1]
    update = "UPDATE strategies SET name = 'elsewhere' WHERE id = 's1'"
    code = f"import sqlite3; c = sqlite3.connect({path!r}); c.execute({update!r}); c.commit()"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert await cache.get("s1", read) == "elsewhere"
    cache.close()


async def test_a_load_overlapping_a_change_is_not_kept(db: Database) -> None:
    """The change lands after the generation was checked and is noticed (by a caller of
    another key) before the load ends: the loaded value is returned but not kept."""
    cache: GenerationCache[str, str] = GenerationCache(db, "strategies")
    other = CountingRead("s1")
    await cache.get("other", other)  # the cache has checked its generation

    def changing_read(c: Connection) -> str:
        with sqlite3.connect(db.url.split("///", 1)[1]) as w:
            w.execute("UPDATE strategies SET name = 'during' WHERE id = 's1'")
        assert cache._current()  # someone else looks now and sees the new generation
        return "loaded-before-the-change"

    assert await cache.get("s1", changing_read) == "loaded-before-the-change"
    read = CountingRead("s1")
    assert await cache.get("s1", read) == "during"
    assert read.reads == 1
    cache.close()


@pytest.mark.parametrize("kind", ["in-memory", "no-table"])
async def test_without_a_way_to_check_it_reads_every_time(tmp_path: Path, kind: str) -> None:
    if kind == "in-memory":
        db = Database("sqlite+aiosqlite://")
    else:
        db = Database(f"sqlite+aiosqlite:///{tmp_path / 'bare.db'}")
    async with db.engine.begin() as c:
        await c.run_sync(models.Base.metadata.create_all)
        if kind == "no-table":
            await c.execute(text("DROP TABLE change_generations"))
    cache: GenerationCache[str, int] = GenerationCache(db, "strategies")
    calls: list[int] = []
    count: Callable[[Connection], int] = lambda c: calls.append(1) or len(calls)  # noqa: E731
    assert [await cache.get("k", count) for _ in range(3)] == [1, 2, 3]
    cache.close()
    await db.dispose()


async def test_dispose_closes_the_watch_connections(tmp_path: Path) -> None:
    """The caches live as long as their database: its dispose releases their files, and a
    cache asked afterwards cannot tell (so it reads) rather than failing."""
    path = tmp_path / "owned.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await migrate.upgrade(db)
    cache: GenerationCache[str, int] = GenerationCache(db, "strategies")
    watch = GenerationWatch(db, "user_definitions")
    assert watch.current() is not None

    def open_on_file() -> int:
        fds = Path("/proc/self/fd").iterdir()
        return sum(1 for fd in fds if os.path.realpath(fd) == str(path.resolve()))

    assert open_on_file() >= 2
    await db.dispose()
    assert open_on_file() == 0
    assert watch.current() is None
    cache.close()


def statements_on(watch: GenerationWatch) -> list[str]:
    """The SQL the watch's own connection runs from now on."""
    ran: list[str] = []
    assert watch._conn is not None
    watch._conn.set_trace_callback(ran.append)
    return ran


async def test_while_nothing_is_committed_sqlite_is_not_asked(db: Database) -> None:
    """The WAL-index header stands in for `PRAGMA data_version` until a commit changes it."""
    watch = GenerationWatch(db, "strategies")
    first = watch.current()
    assert first is not None
    assert watch.current() == first  # the header is read before a PRAGMA from now on
    ran = statements_on(watch)
    assert [watch.current() for _ in range(100)] == [first] * 100
    assert ran == []
    await execute(db, "UPDATE users SET role = 'analyst' WHERE id = 'u2'")  # another group
    assert watch.current() == first
    assert ran[0] == "PRAGMA data_version" and ran[1].startswith("SELECT generation")
    assert len(ran) == 2
    await execute(db, "UPDATE strategies SET name = 'again' WHERE id = 's1'")
    assert watch.current() == first + 1
    watch.close()


async def test_a_commit_after_the_log_restarted_is_seen(db: Database) -> None:
    """A checkpoint that empties the log, then commits from another connection: the header
    cycles through new salts and frame counts, and every change is still noticed."""
    watch = GenerationWatch(db, "strategies")
    start = watch.current()
    assert start is not None and watch.current() == start
    path = db.url.split("///", 1)[1]
    with sqlite3.connect(path) as other:
        other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert watch.current() == start  # a checkpoint changes no data
    for n in range(1, 4):
        with sqlite3.connect(path) as other:
            other.execute(f"UPDATE strategies SET name = 'n{n}' WHERE id = 's1'")
        assert watch.current() == start + n
        with sqlite3.connect(path) as other:
            other.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    watch.close()


async def test_a_disposed_database_releases_the_shared_memory(tmp_path: Path) -> None:
    path = tmp_path / "mapped.db"
    db = Database(f"sqlite+aiosqlite:///{path}")
    await migrate.upgrade(db)
    watch = GenerationWatch(db, "strategies")
    assert watch.current() is not None and watch.current() is not None

    def mapped() -> bool:
        return f"{path}-shm" in Path("/proc/self/maps").read_text()

    assert mapped()
    await db.dispose()
    assert watch.current() is None
    assert not mapped()
    watch.close()
