"""Which database errors are outages (UNAVAILABLE, retry later) and which stay bugs."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import exc as sa_exc
from sqlalchemy import text

from stratopt.errors import StorageFull, Unavailable
from stratopt.store import outages
from stratopt.store.db import Database


def wrapped(orig: BaseException, invalidated: bool = False) -> sa_exc.DBAPIError:
    return sa_exc.OperationalError("SELECT 1", {}, orig, connection_invalidated=invalidated)


class PgError(Exception):
    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    "orig",
    [
        sqlite3.OperationalError("database is locked"),
        sqlite3.OperationalError("unable to open database file"),
        sqlite3.OperationalError("disk I/O error"),
        PgError("the database system is shutting down", "57P03"),
        PgError("terminating connection due to administrator command", "57P01"),
        PgError("connection failure", "08006"),
        PgError("too many connections", "53300"),
        ConnectionResetError("reset by peer"),
    ],
)
def test_outages_become_unavailable_with_a_retry_hint(orig: BaseException) -> None:
    err = outages.translate(wrapped(orig))
    assert isinstance(err, Unavailable) and err.retry_after_seconds >= 1.0
    assert "database" in err.message


def test_a_dropped_connection_is_an_outage_whatever_the_driver_said() -> None:
    assert isinstance(outages.translate(wrapped(Exception("?"), invalidated=True)), Unavailable)


def test_a_full_sqlite_disk_is_storage_full() -> None:
    err = outages.translate(wrapped(sqlite3.OperationalError("database or disk is full")))
    assert isinstance(err, StorageFull) and err.reason == "STORAGE_FULL"


@pytest.mark.parametrize(
    "exc",
    [
        wrapped(sqlite3.OperationalError("no such table: strategies")),
        wrapped(sqlite3.OperationalError('near "SELEC": syntax error')),
        sa_exc.IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE constraint failed")),
        wrapped(PgError("relation does not exist", "42P01")),
        ConnectionRefusedError("a webhook receiver, not the database"),
        ValueError("a bug"),
    ],
)
def test_bugs_and_other_failures_are_not_outages(exc: BaseException) -> None:
    assert outages.translate(exc) is None


async def test_a_refused_connection_from_inside_the_pool_is_an_outage(tmp_path: Path) -> None:
    """asyncpg lets ConnectionRefusedError out bare; what counts is that it came from the
    driver. A URL to a port nobody listens on gives exactly that."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = Database(f"postgresql+asyncpg://nobody@127.0.0.1:{port}/none")
    try:
        with pytest.raises(OSError) as caught:
            async with db.session() as session:
                await session.execute(text("SELECT 1"))
        assert isinstance(outages.translate(caught.value), Unavailable)
        assert not await asyncio.wait_for(db.ping(), 10)
    finally:
        await db.dispose()


async def test_sqlite_ping_fails_while_another_process_holds_the_write_lock(
    tmp_path: Path,
) -> None:
    path = tmp_path / "x.db"
    db = Database(f"sqlite+aiosqlite:///{path}?timeout=0.2")
    try:
        assert await db.ping()
        holder = sqlite3.connect(path, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        assert not await db.ping(), "a database that cannot take a write is not healthy"
        holder.execute("ROLLBACK")
        holder.close()
        assert await db.ping()
    finally:
        await db.dispose()
