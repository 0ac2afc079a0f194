"""Database engine and sessions: SQLite (aiosqlite) by default, PostgreSQL (asyncpg) by URL."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, Select, event, make_url, text
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import Session
from sqlalchemy.pool import SingletonThreadPool

T = TypeVar("T")
M = TypeVar("M")

WRITE_TRANSACTION = "stratopt_write_transaction"
"""Execution option marking a connection whose transaction will write (`Database.transaction`)."""
SQLITE_BUSY_TIMEOUT_S = 30.0
"""How long a SQLite statement waits for another writer's lock before failing (UNAVAILABLE);
`?timeout=<seconds>` on the database URL overrides it."""
PING_TIMEOUT_S = 5.0
"""A network database that does not answer within this is reported unreachable."""
READ_THREADS = 4
"""Threads (and at most as many pooled connections) serving `Database.read` on SQLite."""


def create_engine(url: str) -> AsyncEngine:
    """Creates the engine; SQLite gets WAL and a busy timeout so readers never block writers.

    On SQLite a write transaction starts with BEGIN IMMEDIATE, taking the write lock before
    its first read: the driver would otherwise read outside any transaction and begin only
    at the first INSERT/UPDATE, so two read-modify-writes could both act on what they read
    (lost updates). PostgreSQL gets the same guarantee from row locks (SELECT ... FOR UPDATE)
    or conditional UPDATEs where the code reads before it writes.
    """
    if url.startswith("sqlite"):
        busy_s = _sqlite_busy_timeout(url)
        engine = create_async_engine(url, connect_args={"timeout": busy_s})

        _sqlite_pragmas_on_connect(engine.sync_engine, busy_s)

        @event.listens_for(engine.sync_engine, "begin")
        def _sqlite_begin(conn: Any) -> None:
            # Read sessions keep the driver's behaviour (each read sees the latest commit).
            if conn.get_execution_options().get(WRITE_TRANSACTION):
                conn.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_async_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def _sqlite_pragmas_on_connect(engine: Engine, busy_s: float) -> None:
    @event.listens_for(engine, "connect")
    def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={int(busy_s * 1000)}")
        cur.close()


def sqlite_file_url(url: str) -> URL | None:
    """The plain-sqlite3 (pysqlite) form of a SQLite file URL, or None when `url` is not
    SQLite or names no file (an in-memory database is private to its connection)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    if "memory" in str(parsed.query.get("mode", "")) or parsed.database.startswith("file::memory:"):
        return None
    return parsed.set(drivername="sqlite+pysqlite")


def create_read_engine(url: str) -> Engine | None:
    """A synchronous engine over the same SQLite file, for `Database.read` in its threads:
    plain sqlite3 connections with the same pragmas, in autocommit reads like aiosqlite's
    (each read sees the latest commit). None for PostgreSQL and in-memory SQLite."""
    sync_url = sqlite_file_url(url)
    if sync_url is None:
        return None
    busy_s = _sqlite_busy_timeout(url)
    engine = create_sync_engine(
        sync_url,
        connect_args={"timeout": busy_s, "check_same_thread": False},
        pool_size=READ_THREADS,
        max_overflow=0,
    )
    _sqlite_pragmas_on_connect(engine, busy_s)
    return engine


def create_inline_read_engine(url: str) -> Engine | None:
    """Like `create_read_engine`, for reads run on the calling thread (the event loop): one
    connection per thread, and no busy timeout, so a read that would wait for a lock fails
    at once (and `Database.read` retries it in a thread) instead of stalling the loop."""
    sync_url = sqlite_file_url(url)
    if sync_url is None:
        return None
    # Each connection stays with its thread; not checking lets dispose() close them all.
    engine = create_sync_engine(
        sync_url,
        connect_args={"timeout": 0, "check_same_thread": False},
        poolclass=SingletonThreadPool,
    )
    _sqlite_pragmas_on_connect(engine, 0)
    return engine


def is_sqlite_busy(exc: BaseException) -> bool:
    """A SQLite statement refused because another connection holds a lock it needs."""
    orig = exc.orig if isinstance(exc, OperationalError) else exc
    if not isinstance(orig, sqlite3.OperationalError):
        return False
    code = getattr(orig, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    return "locked" in str(orig) or "busy" in str(orig)


def _sqlite_busy_timeout(url: str) -> float:
    """Seconds from the URL's `timeout` query parameter, else SQLITE_BUSY_TIMEOUT_S."""
    raw = make_url(url).query.get("timeout")
    if isinstance(raw, tuple):
        raw = raw[-1] if raw else None
    return float(raw) if raw else SQLITE_BUSY_TIMEOUT_S


class Database:
    """Owns the engine and hands out sessions; one per process."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False)
        self._read_engine = create_read_engine(url)
        self._inline_engine = create_inline_read_engine(url)
        self._read_threads: ThreadPoolExecutor | None = None
        self._plain: list[sqlite3.Connection] = []
        """Connections `sqlite_connection` handed out: their owners (the read caches) live
        as long as this database, so `dispose` closes them."""

    @property
    def backend(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        async with self.sessions() as s:
            yield s

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session in one transaction, committed at the end; every read-modify-write goes
        through here. On SQLite it holds the database's write lock from its first statement
        (BEGIN IMMEDIATE), so writers run one at a time and never act on stale reads."""
        async with self.sessions() as s, s.begin():
            await s.connection(execution_options={WRITE_TRANSACTION: True})
            yield s

    async def read(self, fn: Callable[[Connection], T]) -> T:
        """Runs `fn(connection)`, a small read by key (Core queries and turning rows into
        values), in one step, for hot read paths (GetStrategy).

        On a SQLite file it runs right here, on the event loop, on a plain sqlite3
        connection without a busy timeout. In WAL mode a reader does not wait for writers,
        and a read by primary key from the page cache takes tens of microseconds; handing
        it to a thread cost about 270 us of CPU (the hand-off and the GIL going back and
        forth), the largest single cost of a GetStrategy. Should a lock stand in the way
        after all (SQLITE_BUSY), the read is repeated in one of READ_THREADS threads, which
        waits out the busy timeout as every other statement does.

        Elsewhere (PostgreSQL, in-memory SQLite) `fn` runs on a connection of the async
        engine through `AsyncConnection.run_sync`, so asyncpg keeps its behaviour. `fn` must
        only read a bounded number of rows (it may run on the loop) and commits nothing."""
        if self._read_engine is None or self._inline_engine is None:
            async with self.engine.connect() as c:
                return await c.run_sync(fn)
        try:
            return self._read_on(self._inline_engine, fn)
        except OperationalError as e:
            if not is_sqlite_busy(e):
                raise
        return await self._in_thread(fn)

    async def get(self, model: type[M], key: Any) -> M | None:
        """The row of `model` with primary key `key`, or None, as one `read` (on the loop
        for a SQLite file), returned detached as a closed session leaves it. For hot
        lookups by key (a backtest, a dataset, an API key on every call made with it)."""

        def fetch(c: Connection) -> M | None:
            with Session(c) as s:
                return s.get(model, key)

        return await self.read(fetch)

    async def first(self, stmt: Select[M]) -> M | None:
        """The first entity `stmt` selects, or None, as one `read` (a lookup by a unique
        key other than the primary key), detached."""

        def fetch(c: Connection) -> M | None:
            with Session(c) as s:
                return s.scalars(stmt.limit(1)).first()

        return await self.read(fetch)

    async def scan(self, fn: Callable[[Connection], T]) -> T:
        """`read` for reads of many rows (pages, counts), which must not hold the event
        loop: on a SQLite file always in a read thread, one hand-off for the whole read
        where an ORM read through aiosqlite made one per cursor call (ListStrategies of 20:
        2.9 -> 1.2 ms of CPU). Elsewhere as `read`."""
        if self._read_engine is None:
            async with self.engine.connect() as c:
                return await c.run_sync(fn)
        return await self._in_thread(fn)

    async def _in_thread(self, fn: Callable[[Connection], T]) -> T:
        assert self._read_engine is not None
        if self._read_threads is None:
            self._read_threads = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="db-read")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._read_threads, self._read_on, self._read_engine, fn)

    @staticmethod
    def _read_on(engine: Engine, fn: Callable[[Connection], T]) -> T:
        with engine.connect() as c:
            return fn(c)

    def sqlite_connection(self) -> sqlite3.Connection | None:
        """A new plain sqlite3 connection to the database file, in autocommit and without a
        busy timeout; None unless the database is a SQLite file (store/read_cache.py asks it
        whether anything changed). The caller may close it; `dispose` closes it at the latest,
        and a use after that raises sqlite3.ProgrammingError."""
        url = sqlite_file_url(self.url)
        if url is None or url.database is None:
            return None
        uri = str(url.query.get("uri", "")).lower() in ("true", "1")
        conn = sqlite3.connect(
            url.database, timeout=0, isolation_level=None, check_same_thread=False, uri=uri
        )
        self._plain.append(conn)
        return conn

    async def ping(self) -> bool:
        """True when the database would accept a write now; the health probe calls it.

        It opens a write transaction, so on SQLite it also fails while another process holds
        the write lock past the busy timeout (a `SELECT 1` on a pooled connection would not
        even touch the file); on PostgreSQL the pool's pre-ping replaces dead connections,
        and a server that does not answer within PING_TIMEOUT_S counts as down."""
        try:
            if self.backend == "sqlite":
                # No timeout around it: cancelling a call running in aiosqlite's thread
                # would leave that connection mid-statement; the busy timeout bounds it.
                await self._write_probe()
            else:
                async with asyncio.timeout(PING_TIMEOUT_S):
                    await self._write_probe()
            return True
        except Exception:
            return False

    async def _write_probe(self) -> None:
        async with self.transaction() as s:
            await s.execute(text("SELECT 1"))

    async def dispose(self) -> None:
        if self._read_threads is not None:
            threads, self._read_threads = self._read_threads, None
            await asyncio.to_thread(threads.shutdown, wait=True)
        for engine in (self._read_engine, self._inline_engine):
            if engine is not None:
                engine.dispose()
        plain, self._plain = self._plain, []
        for conn in plain:
            conn.close()
        await self.engine.dispose()
