"""Small lookups of users that other services need for display."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from stratopt.store import models


async def usernames(s: AsyncSession, ids: Iterable[str]) -> dict[str, str]:
    """User id -> username for the given ids; unknown ids are left out."""
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    rows = await s.execute(
        select(models.User.id, models.User.username).where(models.User.id.in_(wanted))
    )
    return {i: u for i, u in rows.all()}
