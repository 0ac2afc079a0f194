"""Sharing a strategy: the owner (or an admin) grants another user read, write, execute,
delete or share access; a grantee holding SHARE may pass on at most what they hold.

Checks run inside the transaction that changes the share, and every grant or removal is a
history event of the strategy ("shared"/"unshared"), so the strategy's history shows who
could act on it and since when. Callers who cannot see the strategy get NOT_FOUND (through
`load_strategy`), never a hint that it exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from stratopt.errors import InvalidArgument, NotFound, PermissionDenied
from stratopt.security.principal import Principal
from stratopt.services.access import Access, granted_access, load_strategy, owns
from stratopt.services.strategies import record
from stratopt.services.users import grantee_by_name
from stratopt.store import models
from stratopt.store.db import Database
from stratopt.store.models import utcnow

ACCESS_ORDER = tuple(Access)


@dataclass(frozen=True)
class Share:
    strategy_id: str
    user_id: str
    username: str
    access: tuple[Access, ...]
    created_at: datetime


def normalize_access(access: Iterable[Access]) -> tuple[Access, ...]:
    """Canonical order, read always included: any grant implies seeing the strategy."""
    chosen = set(access) | {Access.READ}
    return tuple(a for a in ACCESS_ORDER if a in chosen)


class StrategySharing:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def share(
        self, principal: Principal, strategy_id: str, username: str, access: Iterable[Access]
    ) -> Share:
        access = list(access)
        if not access:
            raise InvalidArgument.field("access", "grant at least one access")
        wanted = normalize_access(access)
        async with self.db.transaction() as s:
            row = await load_strategy(s, principal, strategy_id, Access.SHARE, lock=True)
            grantee = await grantee_by_name(s, username)
            if grantee.id == row.owner_id:
                raise InvalidArgument.field("username", "the owner already has every access")
            if grantee.id == principal.user_id:
                raise InvalidArgument.field("username", "you cannot share with yourself")
            await _check_within_own(s, principal, row, wanted)
            share = await s.get(models.StrategyShare, (strategy_id, grantee.id))
            if share is None:
                share = models.StrategyShare(
                    strategy_id=strategy_id, user_id=grantee.id, created_at=utcnow()
                )
                s.add(share)
            else:
                await _check_within_own(s, principal, row, _access_of(share))
            share.access = [a.value for a in wanted]
            record(s, row, principal, "shared", [f"shares.{grantee.username}"])
            return Share(strategy_id, grantee.id, grantee.username, wanted, share.created_at)

    async def unshare(self, principal: Principal, strategy_id: str, username: str) -> str:
        """Removes the user's share; returns their username."""
        async with self.db.transaction() as s:
            leaving = username.strip().lower() == principal.username
            # Anyone may leave a share they hold; removing someone else needs SHARE access.
            need = Access.READ if leaving else Access.SHARE
            row = await load_strategy(s, principal, strategy_id, need, lock=True)
            grantee = await grantee_by_name(s, username)
            share = await s.get(models.StrategyShare, (strategy_id, grantee.id))
            if share is None:
                raise NotFound("share", f"{strategy_id}/{grantee.username}")
            if not leaving:
                # A re-sharer cannot remove someone holding access they do not hold.
                await _check_within_own(s, principal, row, _access_of(share))
            await s.delete(share)
            record(s, row, principal, "unshared", [f"shares.{grantee.username}"])
            return grantee.username

    async def list_shares(self, principal: Principal, strategy_id: str) -> list[Share]:
        async with self.db.session() as s:
            await load_strategy(s, principal, strategy_id, Access.SHARE)
            rows = (
                await s.execute(
                    select(models.StrategyShare, models.User.username)
                    .join(models.User, models.User.id == models.StrategyShare.user_id)
                    .where(models.StrategyShare.strategy_id == strategy_id)
                    .order_by(models.User.username)
                )
            ).all()
        return [
            Share(strategy_id, share.user_id, name, _access_of(share), share.created_at)
            for share, name in rows
        ]


def _access_of(share: models.StrategyShare) -> tuple[Access, ...]:
    return normalize_access(Access(a) for a in share.access)


async def _check_within_own(
    s: AsyncSession, principal: Principal, row: models.Strategy, access: Iterable[Access]
) -> None:
    if owns(principal, row.owner_id):
        return
    own = await granted_access(s, row.id, principal.user_id)
    excess = [a.value for a in access if a not in own]
    if excess:
        raise PermissionDenied(
            "you can only share access you hold yourself; not held: " + ", ".join(excess)
        )
