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
from typing import Any

from sqlalchemy import DateTime, Select, and_, or_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from stratopt.errors import InvalidArgument

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
    size = page_size(requested)
    cursor = decode_token(token, qhash)
    if cursor is not None and _is_datetime(sort_col):
        try:
            cursor = Cursor(datetime.fromisoformat(str(cursor.key)), cursor.id)
        except ValueError:
            raise InvalidArgument.field("page_token", "malformed page token") from None
    stmt = after_cursor(stmt, sort_col, id_col, cursor, desc=desc)
    rows = list((await session.execute(stmt.limit(size + 1))).scalars())
    if len(rows) <= size:
        return rows, ""
    rows = rows[:size]
    key = getattr(rows[-1], sort_col.key)
    key = key.isoformat() if isinstance(key, datetime) else key
    return rows, encode_token(Cursor(key, getattr(rows[-1], id_col.key)), qhash)


def _is_datetime(col: InstrumentedAttribute[Any]) -> bool:
    """Also true for type decorators over DateTime (UTCDateTime), whose python_type is object."""
    kind = col.type
    return isinstance(kind, DateTime) or isinstance(getattr(kind, "impl", None), DateTime)
