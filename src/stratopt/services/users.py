"""Small lookups of users that other services need for display."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from stratopt.store import models

# User id -> username. A username never changes once the user exists (there is no rename),
# so entries never go stale; this saves one query of every GetStrategy-like read (about a
# third of its cost on SQLite). Bounded, least recently used first out.
_NAMES: OrderedDict[str, str] = OrderedDict()
_NAMES_MAX = 10_000


async def usernames(s: AsyncSession, ids: Iterable[str]) -> dict[str, str]:
    """User id -> username for the given ids; unknown ids are left out."""
    wanted = {i for i in ids if i}
    found: dict[str, str] = {}
    for i in wanted:
        name = _NAMES.get(i)
        if name is not None:
            _NAMES.move_to_end(i)
            found[i] = name
    missing = wanted - found.keys()
    if not missing:
        return found
    rows = await s.execute(
        select(models.User.id, models.User.username).where(models.User.id.in_(missing))
    )
    for i, name in rows.all():
        found[i] = name
        _NAMES[i] = name
    while len(_NAMES) > _NAMES_MAX:
        _NAMES.popitem(last=False)
    return found
