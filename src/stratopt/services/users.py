"""Small lookups of users that several servicers need for display."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select

from stratopt.store import models
from stratopt.store.db import Database


async def usernames(db: Database, ids: Iterable[str]) -> dict[str, str]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    async with db.session() as s:
        rows = await s.execute(
            select(models.User.id, models.User.username).where(models.User.id.in_(wanted))
        )
        return {i: u for i, u in rows.all()}
