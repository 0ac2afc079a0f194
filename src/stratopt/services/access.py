"""Who may do what to one strategy: owner, admin, or a grantee through a share.

Callers who may not even read a strategy get NOT_FOUND, never PERMISSION_DENIED, so ids of
other users' strategies cannot be probed.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from stratopt.errors import NotFound, PermissionDenied
from stratopt.security.principal import Principal
from stratopt.store import models


class Access(StrEnum):
    READ = "read"
    WRITE = "write"
    EXECUTE = "execute"
    DELETE = "delete"
    SHARE = "share"


async def load_strategy(
    s: AsyncSession, principal: Principal, strategy_id: str, need: Access, *, lock: bool = False
) -> models.Strategy:
    stmt = select(models.Strategy).where(models.Strategy.id == strategy_id)
    if lock and s.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = (await s.execute(stmt)).scalar_one_or_none()
    if row is None:
        raise NotFound("strategy", strategy_id)
    if principal.is_admin or row.owner_id == principal.user_id:
        return row
    granted = await granted_access(s, strategy_id, principal.user_id)
    if not granted:
        raise NotFound("strategy", strategy_id)
    if need not in granted:
        raise PermissionDenied(f"this strategy is shared with you without {need.value} access")
    return row


async def granted_access(s: AsyncSession, strategy_id: str, user_id: str) -> set[Access]:
    share = await s.get(models.StrategyShare, (strategy_id, user_id))
    if share is None:
        return set()
    # Any grant implies read: a strategy you may run or edit is one you may look at.
    return {Access(a) for a in share.access} | {Access.READ}
