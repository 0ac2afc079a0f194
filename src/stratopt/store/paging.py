"""Keyset pagination with opaque tokens.

Tokens carry the last row's sort key and id, not an offset, so pages stay correct while rows
are added or removed; a hash of the query rides along so a token cannot be replayed against a
different filter.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Connection, DateTime, Row, Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute, Session

from stratopt.errors import InvalidArgument
from stratopt.store.db import Database

R = TypeVar("R")

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


def page_size(
    requested: int, *, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE
) -> int:
    if requested < 0:
        raise InvalidArgument.field("page_size", "must not be negative")
    return min(requested or default, maximum)


def query_hash(**query: Any) -> str:
    raw = json.dumps(query, sort_keys=True, default=str).encode()
    return hashlib.sha256(raw).hexdigest()[:16]


@dataclass(frozen=True)
class Cursor:
    key: Any
    id: str


def encode_token(cursor: Cursor, qhash: str) -> str:
    raw = json.dumps({"k": cursor.key, "i": cursor.id, "q": qhash}, separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def token_int(value: Any) -> int:
    """A number a page token carries; one altered by hand answers INVALID_ARGUMENT (the
    query hash is no secret, so a token that passes it can still hold anything)."""
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        number = -1
    if number < 0:  # offsets and sequences, never negative
        raise InvalidArgument.field("page_token", "malformed page token")
    return number


def token_float(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError, OverflowError):
        raise InvalidArgument.field("page_token", "malformed page token") from None


def decode_token(token: str, qhash: str) -> Cursor | None:
    if not token:
        return None
    try:
        padded = token + "=" * (-len(token) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if data["q"] != qhash:
            raise InvalidArgument.field(
                "page_token", "the page token belongs to a different query; start over"
            )
        return Cursor(key=data["k"], id=str(data["i"]))
    except InvalidArgument:
        raise
    except Exception:
        raise InvalidArgument.field("page_token", "malformed page token") from None


def after_cursor(
    stmt: Select[Any],
    sort_col: InstrumentedAttribute[Any],
    id_col: InstrumentedAttribute[Any],
    cursor: Cursor | None,
    *,
    desc: bool,
) -> Select[Any]:
    """Adds the keyset condition and the matching ORDER BY (ties broken by id)."""
    if cursor is not None:
        key = cursor.key
        if desc:
            cond = or_(sort_col < key, and_(sort_col == key, id_col < cursor.id))
        else:
            cond = or_(sort_col > key, and_(sort_col == key, id_col > cursor.id))
        stmt = stmt.where(cond)
    if desc:
        return stmt.order_by(sort_col.desc(), id_col.desc())
    return stmt.order_by(sort_col.asc(), id_col.asc())


async def keyset_page(
    session: AsyncSession,
    stmt: Select[Any],
    sort_col: InstrumentedAttribute[Any],
    id_col: InstrumentedAttribute[Any],
    *,
    requested: int,
    token: str,
    qhash: str,
    desc: bool = True,
) -> tuple[list[Any], str]:
    """One page of `stmt` ordered by (sort_col, id) and the token of the next page."""
    page = Keyset(sort_col, id_col, requested, token, qhash, desc)
    rows = list((await session.execute(page.query(stmt))).scalars())
    return page.result(rows)


@dataclass(frozen=True)
class Keyset:
    """One page request: the query that fetches it, and the page made of what it fetched."""

    sort_col: InstrumentedAttribute[Any]
    id_col: InstrumentedAttribute[Any]
    requested: int
    token: str
    qhash: str
    desc: bool = True

    @property
    def size(self) -> int:
        return page_size(self.requested)

    def query(self, stmt: Select[Any]) -> Select[Any]:
        """`stmt` after the token's row, in order, one row past the page (is there more?)."""
        cursor = decode_token(self.token, self.qhash)
        if cursor is not None and _is_datetime(self.sort_col):
            try:
                cursor = Cursor(datetime.fromisoformat(str(cursor.key)), cursor.id)
            except ValueError:
                raise InvalidArgument.field("page_token", "malformed page token") from None
        stmt = after_cursor(stmt, self.sort_col, self.id_col, cursor, desc=self.desc)
        return stmt.limit(self.size + 1)

    def read(self, c: Connection, stmt: Select[Any]) -> tuple[list[Row[Any]], str]:
        """The page as Core rows, for a read running as one step (`Database.read`/`scan`);
        `stmt` selects table columns."""
        return self.result(list(c.execute(self.query(stmt)).all()))

    async def scan(self, db: Database, stmt: Select[Any]) -> tuple[list[Any], str]:
        """The page's ORM rows, loaded as one step (`Database.scan`: in a read thread on a
        SQLite file) and returned detached, as a closed session leaves them. One hand-off,
        where a page through aiosqlite took one per cursor call (ListJobs, ListBacktests,
        ListDatasets from a Python client: 2.15-2.3 -> 1.8-1.9 ms per call). A bad token
        is refused before any read."""
        query = self.query(stmt)

        def read(c: Connection) -> list[Any]:
            with Session(c) as s:
                return list(s.scalars(query))

        return self.result(await db.scan(read))

    def result(self, rows: list[R]) -> tuple[list[R], str]:
        """The page and the token of the next one ("" after the last)."""
        size = self.size
        if len(rows) <= size:
            return rows, ""
        rows = rows[:size]
        key = getattr(rows[-1], self.sort_col.key)
        key = key.isoformat() if isinstance(key, datetime) else key
        return rows, encode_token(Cursor(key, getattr(rows[-1], self.id_col.key)), self.qhash)


def _is_datetime(col: InstrumentedAttribute[Any]) -> bool:
    """Also true for type decorators over DateTime (UTCDateTime), whose python_type is object."""
    kind = col.type
    return isinstance(kind, DateTime) or isinstance(getattr(kind, "impl", None), DateTime)
