"""Who may see and act on what: the one place ownership and sharing are decided.

- `owns`: admins act on anything, everyone else on what they own. Backtests, exports and
  optimization jobs follow this rule alone (`require_owner`, `owner_scope` for listings).
- Datasets add public samples, owned by nobody (`PUBLIC_OWNER`): anyone may read them, only
  admins may delete them (`sees_dataset`, `dataset_owner_scope`).
- Strategies add shares: a grantee acts with the `Access` the share grants (`load_strategy`,
  `visible_strategies`).
- Accounts (users, API keys): the user themself or whoever holds MANAGE_USERS
  (`manages_account`).

Callers who may not even read a resource get NOT_FOUND, never PERMISSION_DENIED, so ids of
other users' resources cannot be probed. PERMISSION_DENIED is only for callers who can see
the resource but not do this to it (a share without the access, a sample dataset).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Protocol, TypeVar

from sqlalchemy import Connection, Row, and_, bindparam, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from stratopt.errors import NotFound, PermissionDenied
from stratopt.security.principal import Principal
from stratopt.security.roles import Permission
from stratopt.store import models

PUBLIC_OWNER = ""
"""The owner id of the sample datasets every user may read."""


class Access(StrEnum):
    READ = "read"
    WRITE = "write"
    EXECUTE = "execute"
    DELETE = "delete"
    SHARE = "share"


# -- owner or admin --------------------------------------------------------------------------


def owns(principal: Principal, owner_id: str) -> bool:
    """May the caller act on a resource owned by `owner_id` as its owner? Admins may."""
    return principal.is_admin or owner_id == principal.user_id


class Owned(Protocol):
    @property
    def owner_id(self) -> str: ...


OwnedT = TypeVar("OwnedT", bound=Owned)


def require_owner(
    principal: Principal, row: OwnedT | None, resource: str, resource_id: str
) -> OwnedT:
    """The row, if it exists and the caller owns it; NOT_FOUND otherwise."""
    if row is None or not owns(principal, row.owner_id):
        raise NotFound(resource, resource_id)
    return row


def owner_scope(principal: Principal) -> str | None:
    """The owner a listing is restricted to: the caller, or None (everyone) for admins."""
    return None if principal.is_admin else principal.user_id


# -- datasets: owned, or public samples ------------------------------------------------------


def sees_dataset(principal: Principal, owner_id: str) -> bool:
    return owner_id == PUBLIC_OWNER or owns(principal, owner_id)


def dataset_owner_scope(principal: Principal) -> tuple[str, ...] | None:
    """The owners whose datasets a listing shows: the caller's and the public samples, or
    None (everyone's) for admins."""
    return None if principal.is_admin else (principal.user_id, PUBLIC_OWNER)


# -- accounts --------------------------------------------------------------------------------


def manages_account(principal: Principal, user_id: str) -> bool:
    """May the caller manage this user's account (read it, its API keys)?"""
    return user_id == principal.user_id or principal.can(Permission.MANAGE_USERS)


# -- strategies: owner, admin, or a grantee through a share ----------------------------------


async def load_strategy(
    s: AsyncSession, principal: Principal, strategy_id: str, need: Access, *, lock: bool = False
) -> models.Strategy:
    stmt = select(models.Strategy).where(models.Strategy.id == strategy_id)
    if lock and s.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = (await s.execute(stmt)).scalar_one_or_none()
    if row is None or owns(principal, row.owner_id):
        return _allowed(row, True, None, strategy_id, need)
    share = await s.get(models.StrategyShare, (strategy_id, principal.user_id))
    return _allowed(row, False, share, strategy_id, need)


def read_strategy(c: Connection, principal: Principal, strategy_id: str, need: Access) -> Row[Any]:
    """`load_strategy` for a read running as one step (`Database.read`): the same decision,
    from one Core query of the strategy and the caller's share of it. The ORM (identity
    map, instances, two queries) was half of a GetStrategy's CPU. The row has the
    strategies table's columns, plus `share_access`."""
    row = c.execute(_WITH_SHARE, {"id": strategy_id, "user_id": principal.user_id}).one_or_none()
    if row is None:
        raise NotFound("strategy", strategy_id)
    if owns(principal, row.owner_id):
        return row
    return _shared(row, row.share_access, strategy_id, need)


_WITH_SHARE = (
    select(
        models.Strategy.__table__,
        models.StrategyShare.access.label("share_access"),
    )
    .outerjoin(
        models.StrategyShare,
        and_(
            models.StrategyShare.strategy_id == models.Strategy.id,
            models.StrategyShare.user_id == bindparam("user_id"),
        ),
    )
    .where(models.Strategy.id == bindparam("id"))
)
"""Built once: building the statement was a tenth of a GetStrategy's database work."""


def _allowed(
    row: models.Strategy | None,
    owner: bool,
    share: models.StrategyShare | None,
    strategy_id: str,
    need: Access,
) -> models.Strategy:
    """The row if the caller may `need` it: as its owner (or an admin), or through their
    share of it. NOT_FOUND for callers who may not even read it."""
    if row is None:
        raise NotFound("strategy", strategy_id)
    if owner:
        return row
    return _shared(row, None if share is None else share.access, strategy_id, need)


R = TypeVar("R")


def _shared(row: R, access: list[Any] | None, strategy_id: str, need: Access) -> R:
    """The row if the caller's share of it (`access`, None without one) grants `need`."""
    if access is None:
        raise NotFound("strategy", strategy_id)
    if need not in _access_set(access):
        raise PermissionDenied(f"this strategy is shared with you without {need.value} access")
    return row


async def granted_access(s: AsyncSession, strategy_id: str, user_id: str) -> set[Access]:
    share = await s.get(models.StrategyShare, (strategy_id, user_id))
    return _access_set(share.access) if share is not None else set()


def _access_set(access: list[Any]) -> set[Access]:
    # Any grant implies read: a strategy you may run or edit is one you may look at.
    return {Access(a) for a in access} | {Access.READ}


def visible_strategies(stmt: Any, principal: Principal) -> Any:
    """`stmt` over strategies, narrowed to those the caller may read: admins see every
    strategy, others their own and those shared with them."""
    if principal.is_admin:
        return stmt
    S = models.Strategy
    shared = select(models.StrategyShare.strategy_id).where(
        models.StrategyShare.user_id == principal.user_id
    )
    return stmt.where(or_(S.owner_id == principal.user_id, S.id.in_(shared)))
