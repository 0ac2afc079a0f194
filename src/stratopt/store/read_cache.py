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
  process, has committed anything since it last looked. This costs about a microsecond.
- Only when something was committed does it read the group's generation (one row by key).
  A new generation empties the cache.
- A value loaded after that check is at least as new as the generation it is filed under,
  and the next change raises the generation. So a value older than the last commit to its
  tables is never served. A load that overlapped a change someone else noticed is not kept.

Elsewhere (PostgreSQL, in-memory SQLite, a schema without the table) every `get` reads.
A cache belongs to one event loop: it is not locked.
"""

from __future__ import annotations

import sqlite3
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from sqlalchemy import Connection

from stratopt.store.db import Database

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

_GENERATION = "SELECT generation FROM change_generations WHERE name = ?"


class GenerationWatch:
    """The current generation of `group`, read on a plain connection of its own.

    `current()` costs a `PRAGMA data_version` (about a microsecond) while nothing was
    committed; None means it cannot tell (not a SQLite file, no such table or row, an
    error), and the caller must then not trust what it kept. A watch belongs to one thread
    at a time (an event loop): it is not locked."""

    def __init__(self, db: Database, group: str) -> None:
        self._group = group
        self._conn = db.sqlite_connection()
        self._data_version: int | None = None
        self._generation: int | None = None

    def current(self) -> int | None:
        if self._conn is None:
            return None
        try:
            (data_version,) = self._conn.execute("PRAGMA data_version").fetchone()
            if data_version == self._data_version:
                return self._generation
            row = self._conn.execute(_GENERATION, (self._group,)).fetchone()
        except sqlite3.Error:
            row = None
        if row is None:
            self._data_version = self._generation = None
            return None
        self._data_version, self._generation = data_version, int(row[0])
        return self._generation

    def close(self) -> None:
        self._data_version = self._generation = None
        if self._conn is not None:
            self._conn.close()
            self._conn = None


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
