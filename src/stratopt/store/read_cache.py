"""Reads kept in memory while the tables they came from are unchanged (SQLite files).

Why: GetStrategy is the API's hottest call, and reading and converting the row was about
40 % of its CPU under load, although almost every call reads a strategy that nobody changed
since the call before.

Why it is exact:
- Triggers raise a generation number (`change_generations`, migrations 0008 and 0009) on every
  insert, update and delete of the tables of its group, in the writer's own transaction.
  No writer, in any process, can forget to.
- Before answering from memory, the cache asks SQLite `PRAGMA data_version` on a
  connection of its own. An unchanged value means that no other connection, in any
  process, has committed anything since it last looked. On a quiet machine this costs
  about two microseconds, but under load the first call into SQLite after a call's gRPC
  work cost 19 (SQLite's code and data were out of the CPU caches).
- So while the database is in WAL mode the cache first compares the WAL-index header, the
  48 bytes at the start of the `-shm` file that every connection, of any process and any
  SQLite version, rewrites when it commits (https://www.sqlite.org/walformat.html). The
  same bytes as before `PRAGMA data_version` last ran mean no commit since: the cache's
  generation stands, and SQLite is not called. Other bytes (a commit, a checkpoint that
  restarted the log, a read that overlapped a writer) only send it to the PRAGMA.
- Only when something was committed does it read the group's generation (one row by key).
  A new generation empties the cache.
- A value loaded after that check is at least as new as the generation it is filed under,
  and the next change raises the generation. So a value older than the last commit to its
  tables is never served. A load that overlapped a change someone else noticed is not kept.

Elsewhere (PostgreSQL, in-memory SQLite, a schema without the table) every `get` reads.
A cache belongs to one event loop: it is not locked.
"""

from __future__ import annotations

import mmap
import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from sqlalchemy import Connection

from stratopt.store.db import Database

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_GENERATION = "SELECT generation FROM change_generations WHERE name = ?"
WAL_HEADER_BYTES = 48  # the first copy of the WAL-index header (WalIndexHdr)


class WalHeader:
    """The WAL-index header of a database in WAL mode, read from its `-shm` file.

    Reading it is a 48-byte copy from shared memory. It is only safe while a connection of
    ours to the database is open: that connection keeps SQLite from truncating the file
    under the mapping (which would make reading it fail with SIGBUS)."""

    def __init__(self, mapping: mmap.mmap) -> None:
        self._mapping = mapping

    @classmethod
    def of(cls, conn: sqlite3.Connection) -> WalHeader | None:
        """The header of `conn`'s main database; None unless it is a file in WAL mode."""
        try:
            (mode,) = conn.execute("PRAGMA journal_mode").fetchone()
            files = {name: path for _, name, path in conn.execute("PRAGMA database_list")}
            if str(mode).lower() != "wal" or not files.get("main"):
                return None
            with open(f"{files['main']}-shm", "rb") as f:
                mapping = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except (sqlite3.Error, OSError, ValueError):
            return None
        if len(mapping) < WAL_HEADER_BYTES:
            mapping.close()
            return None
        return cls(mapping)

    def read(self) -> bytes:
        return self._mapping[:WAL_HEADER_BYTES]

    def close(self) -> None:
        self._mapping.close()


class GenerationWatch:
    """The current generation of `group`, read on a plain connection of its own.

    `current()` compares the WAL-index header while nothing was committed, else costs a
    `PRAGMA data_version`; None means it cannot tell (not a SQLite file, no such table or
    row, an error, the database disposed of), and the caller must then not trust what it
    kept. A watch belongs to one thread at a time (an event loop): it is not locked."""

    def __init__(self, db: Database, group: str) -> None:
        self._group = group
        self._conn = db.sqlite_connection()
        self._data_version: int | None = None
        self._generation: int | None = None
        self._wal: WalHeader | None = None
        # The WAL-index header read just before the PRAGMA that gave `_generation`.
        self._header: bytes | None = None

    def current(self) -> int | None:
        conn = self._conn
        if conn is None:
            return None
        header = self._wal.read() if self._wal is not None and _open(conn) else None
        if header is not None and header == self._header:
            return self._generation
        try:
            (data_version,) = conn.execute("PRAGMA data_version").fetchone()
            if data_version != self._data_version:
                row = conn.execute(_GENERATION, (self._group,)).fetchone()
                self._generation = int(row[0]) if row is not None else None
        except sqlite3.Error:
            self._generation = None
        if self._generation is None:
            self._forget()
            return None
        self._data_version, self._header = data_version, header
        if self._wal is None:
            self._wal = WalHeader.of(conn)
        return self._generation

    def _forget(self) -> None:
        self._data_version = self._generation = self._header = None
        if self._wal is not None:
            self._wal.close()
            self._wal = None

    def close(self) -> None:
        self._forget()
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _open(conn: sqlite3.Connection) -> bool:
    """False once `conn` was closed (`Database.dispose` closes the watches' connections)."""
    try:
        conn.in_transaction  # noqa: B018  (raises on a closed connection)
    except sqlite3.ProgrammingError:
        return False
    return True


class GenerationCache(Generic[K, V]):
    """Values read by `Database.read`, by key, valid while generation `group` stands.

    Values are shared by every caller that gets them: treat them as read-only."""

    def __init__(self, db: Database, group: str, size: int = 2048) -> None:
        self._db = db
        self._size = size
        self._watch = GenerationWatch(db, group)
        self._generation: int | None = None
        self._entries: OrderedDict[K, V] = OrderedDict()

    async def get(self, key: K, load: Callable[[Connection], V]) -> V:
        """The value under `key`, or `load` run by `Database.read` (and kept)."""
        if not self._current():
            return await self._db.read(load)
        hit = self._entries.get(key)
        if hit is not None:
            self._entries.move_to_end(key)
            return hit
        generation = self._generation
        value = await self._db.read(load)
        if generation == self._generation:
            self._entries[key] = value
            if len(self._entries) > self._size:
                self._entries.popitem(last=False)
        return value

    def _current(self) -> bool:
        """Drops what a commit to the group made stale; False when it cannot tell."""
        generation = self._watch.current()
        if generation != self._generation:
            self._entries.clear()
            self._generation = generation
        return generation is not None

    def close(self) -> None:
        self._entries.clear()
        self._generation = None
        self._watch.close()
