"""`Database.read`: a whole read in one step, on a real SQLite file and on PostgreSQL.

On a SQLite file it runs on the calling thread (the event loop) on a plain sqlite3
connection without a busy timeout, and in a read thread when SQLite answers busy; it must
see every commit made through the async engine, never wait for a writer (WAL), hand its
errors to the caller, and stop its threads on dispose. Elsewhere it runs on the async
session (`run_sync`), so PostgreSQL keeps asyncpg.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, select, text, update
from sqlalchemy.exc import OperationalError

from stratopt.store import migrate, models
from stratopt.store.db import Database, is_sqlite_busy, sqlite_file_url
from tests.tools import fresh_postgres


def username_of(user_id: str) -> Callable[[Connection], tuple[str, str]]:
    def read(c: Connection) -> tuple[str, str]:
        stmt = select(models.User.username).where(models.User.id == user_id)
        return c.execute(stmt).scalar_one(), threading.current_thread().name

    return read


async def add_user(db: Database, user_id: str, username: str) -> None:
    async with db.transaction() as s:
        s.add(models.User(id=user_id, username=username, role="trader", password_hash="x"))


async def rename(db: Database, user_id: str, username: str) -> None:
    async with db.transaction() as s:
        await s.execute(
            update(models.User).where(models.User.id == user_id).values(username=username)
        )


@pytest.fixture()
async def lite(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'read.db'}?timeout=0.5")
    await migrate.upgrade(db)
    yield db
    await db.dispose()


def test_only_sqlite_files_get_a_read_engine() -> None:
    assert str(sqlite_file_url("sqlite+aiosqlite:////x/a.db")) == "sqlite+pysqlite:////x/a.db"
    for url in (
        "sqlite+aiosqlite://",
        "sqlite+aiosqlite:///:memory:",
        "sqlite+aiosqlite:///file::memory:?uri=true",
        "postgresql+asyncpg://u@h/d",
    ):
        assert sqlite_file_url(url) is None, url


def busy_once(db: Database, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Makes the next read on the loop answer SQLITE_BUSY, as if a lock stood in its way
    (hard to provoke for real: WAL readers do not wait for writers). Returns the engines
    each read ran on, "inline" or "thread"."""
    ran: list[str] = []
    real = Database._read_on

    def read_on(engine: Engine, fn: Callable[[Connection], object]) -> object:
        if engine is db._inline_engine:
            ran.append("inline")
            if ran.count("inline") == 1:
                busy = sqlite3.OperationalError("database is locked")
                busy.sqlite_errorcode = sqlite3.SQLITE_BUSY  # type: ignore[attr-defined]
                raise OperationalError("SELECT", {}, busy)
        else:
            ran.append("thread")
        return real(engine, fn)

    monkeypatch.setattr(Database, "_read_on", staticmethod(read_on))
    return ran


async def test_sqlite_reads_run_on_the_loop_and_see_every_commit(lite: Database) -> None:
    await add_user(lite, "u1", "first")
    name, thread = await lite.read(username_of("u1"))
    assert name == "first" and thread == threading.current_thread().name
    await rename(lite, "u1", "second")
    name, _ = await lite.read(username_of("u1"))
    assert name == "second", "a read must see the latest commit, not an old snapshot"


async def test_sqlite_reads_do_not_wait_for_a_writer(lite: Database, tmp_path: Path) -> None:
    await add_user(lite, "u1", "committed")
    holder = sqlite3.connect(tmp_path / "read.db", isolation_level=None, check_same_thread=False)
    try:
        holder.execute("BEGIN IMMEDIATE")
        holder.execute("UPDATE users SET username = 'uncommitted' WHERE id = 'u1'")
        name, _ = await lite.read(username_of("u1"))
        assert name == "committed", "WAL readers see the last commit while a writer works"
    finally:
        holder.execute("ROLLBACK")
        holder.close()


async def test_get_and_first_return_detached_rows(lite: Database) -> None:
    await add_user(lite, "u1", "first")
    user = await lite.get(models.User, "u1")
    assert user is not None and user.username == "first" and user.role == "trader"
    assert await lite.get(models.User, "nope") is None
    by_name = await lite.first(select(models.User).where(models.User.username == "first"))
    assert by_name is not None and by_name.id == "u1"
    assert await lite.first(select(models.User).where(models.User.username == "x")) is None
    await rename(lite, "u1", "second")
    renamed = await lite.get(models.User, "u1")
    assert renamed is not None and renamed.username == "second"


async def test_scans_run_in_a_read_thread_and_see_every_commit(lite: Database) -> None:
    """Reads of many rows (`scan`) must not hold the event loop."""
    await add_user(lite, "u1", "first")
    name, thread = await lite.scan(username_of("u1"))
    assert name == "first" and thread.startswith("db-read")
    await rename(lite, "u1", "second")
    assert (await lite.scan(username_of("u1")))[0] == "second"


async def test_a_busy_read_is_retried_in_a_read_thread(
    lite: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    await add_user(lite, "u1", "x")
    ran = busy_once(lite, monkeypatch)
    name, thread = await lite.read(username_of("u1"))
    assert name == "x" and thread.startswith("db-read")
    assert ran == ["inline", "thread"]
    await lite.read(username_of("u1"))
    assert ran[-1] == "inline", "only the busy read moves to a thread"


def test_busy_is_told_from_other_sqlite_errors() -> None:
    busy = sqlite3.OperationalError("database is locked")
    busy.sqlite_errorcode = sqlite3.SQLITE_BUSY  # type: ignore[attr-defined]
    assert is_sqlite_busy(OperationalError("SELECT 1", {}, busy))
    other = sqlite3.OperationalError("no such table: x")
    other.sqlite_errorcode = sqlite3.SQLITE_ERROR  # type: ignore[attr-defined]
    assert not is_sqlite_busy(OperationalError("SELECT 1", {}, other))
    assert not is_sqlite_busy(LookupError("locked"))


async def test_errors_inside_a_read_reach_the_caller(lite: Database) -> None:
    def broken(c: Connection) -> None:
        c.execute(text("SELECT * FROM no_such_table"))

    def refuses(_c: Connection) -> None:
        raise LookupError("nothing here")

    with pytest.raises(Exception, match="no_such_table"):
        await lite.read(broken)
    with pytest.raises(LookupError):
        await lite.read(refuses)
    await add_user(lite, "u1", "still works")
    assert (await lite.read(username_of("u1")))[0] == "still works"


async def test_dispose_stops_the_read_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'stop.db'}")
    await migrate.upgrade(db)
    await add_user(db, "u1", "x")
    busy_once(db, monkeypatch)
    await db.read(username_of("u1"))
    assert any(t.name.startswith("db-read") for t in threading.enumerate())
    await db.dispose()
    assert not any(t.name.startswith("db-read") for t in threading.enumerate())


async def test_in_memory_sqlite_reads_on_the_async_session() -> None:
    db = Database("sqlite+aiosqlite://")
    try:
        await migrate.upgrade(db)
        await add_user(db, "u1", "mem")
        name, thread = await db.read(username_of("u1"))
        assert name == "mem" and not thread.startswith("db-read")
    finally:
        await db.dispose()


@pytest.mark.postgres
async def test_postgres_reads_on_the_async_session() -> None:
    async with fresh_postgres("stratopt_read") as db:
        await add_user(db, "u1", "first")
        got, thread = await db.read(username_of("u1"))
        assert got == "first" and not thread.startswith("db-read")
        await rename(db, "u1", "second")
        assert (await db.read(username_of("u1")))[0] == "second"
        assert (await db.scan(username_of("u1")))[0] == "second"
        user = await db.get(models.User, "u1")
        assert user is not None and user.username == "second"
        found = await db.first(select(models.User).where(models.User.username == "second"))
        assert found is not None and found.id == "u1"
