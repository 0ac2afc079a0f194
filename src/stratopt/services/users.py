"""Small lookups of users that other services need for display."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from stratopt.errors import InvalidArgument, NotFound
from stratopt.store import models

# User id -> username. A username never changes once the user exists (there is no rename),
# so entries never go stale; this saves one query of every GetStrategy-like read (about a
# third of its cost on SQLite). Bounded, least recently used first out.
_NAMES: OrderedDict[str, str] = OrderedDict()
_NAMES_MAX = 10_000
_NAMES_LOCK = threading.Lock()
"""`read_usernames` runs in `Database.read`/`scan`, on the loop or in a read thread."""


async def usernames(s: AsyncSession, ids: Iterable[str]) -> dict[str, str]:
    """User id -> username for the given ids; unknown ids are left out."""
    found, missing = _cached(ids)
    if missing:
        _remember(found, (await s.execute(_query(missing))).all())
    return found


def read_usernames(c: Connection, ids: Iterable[str]) -> dict[str, str]:
    """`usernames` for a read running as one step (`Database.read`)."""
    found, missing = _cached(ids)
    if missing:
        _remember(found, c.execute(_query(missing)).all())
    return found


def _cached(ids: Iterable[str]) -> tuple[dict[str, str], set[str]]:
    """The names known already, and the ids still to look up."""
    wanted = {i for i in ids if i}
    found: dict[str, str] = {}
    with _NAMES_LOCK:
        for i in wanted:
            name = _NAMES.get(i)
            if name is not None:
                _NAMES.move_to_end(i)
                found[i] = name
    return found, wanted - found.keys()


def _query(ids: set[str]) -> Any:
    return select(models.User.id, models.User.username).where(models.User.id.in_(ids))


def _remember(found: dict[str, str], rows: Iterable[Any]) -> None:
    with _NAMES_LOCK:
        for i, name in rows:
            found[i] = name
            _NAMES[i] = name
        while len(_NAMES) > _NAMES_MAX:
            _NAMES.popitem(last=False)


async def grantee_by_name(s: AsyncSession, username: str) -> models.User:
    """The enabled user called `username` (any case), to share something with; NOT_FOUND
    for a missing or disabled one alike."""
    name = username.strip().lower()
    if not name:
        raise InvalidArgument.field("username", "required")
    user = (
        await s.execute(select(models.User).where(func.lower(models.User.username) == name))
    ).scalar_one_or_none()
    if user is None or user.disabled:
        raise NotFound("user", name)
    return user
