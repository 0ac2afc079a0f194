"""User strategies: create, read, list, update, delete, with history recorded in the same
transaction as every change (so history can never disagree with the row)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import String, cast, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stratopt.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
)
from stratopt.security.principal import Principal
from stratopt.services.access import Access, load_strategy
from stratopt.services.validation import (
    ENSEMBLE_TYPE,
    UPDATABLE,
    StrategyFields,
    normalize,
    validate,
)
from stratopt.store import models
from stratopt.store.db import Database
from stratopt.store.models import utcnow
from stratopt.store.paging import keyset_page, query_hash
from stratopt.strategies import registry

ORDER_FIELDS = {"create_time": "created_at", "update_time": "updated_at", "name": "name_key"}


@dataclass(frozen=True)
class StrategyQuery:
    category: str = ""
    status: str = ""
    risk_level: str = ""
    tags: tuple[str, ...] = ()
    query: str = ""
    strategy_type: str = ""
    order_by: str = ""
    owner_id: str = ""


@dataclass
class Page:
    rows: list[models.Strategy]
    next_page_token: str
    total_size: int


def etag_of(row: models.Strategy) -> str:
    return f"v{row.version}"


def snapshot(row: models.Strategy) -> dict[str, Any]:
    return {
        "id": row.id,
        "owner_id": row.owner_id,
        "name": row.name,
        "description": row.description,
        "strategy_type": row.strategy_type,
        "category": row.category,
        "risk_level": row.risk_level,
        "parameters": row.parameters,
        "symbols": row.symbols,
        "timeframe": row.timeframe,
        "tags": row.tags,
        "status": row.status,
        "execution": row.execution,
        "ensemble_members": row.ensemble_members,
        "ensemble_method": row.ensemble_method,
        "alert_rules": row.alert_rules,
        "run_state": row.run_state,
        "version": row.version,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def record(
    s: AsyncSession, row: models.Strategy, principal: Principal, action: str, changed: Sequence[str]
) -> None:
    s.add(
        models.StrategyHistory(
            strategy_id=row.id,
            owner_id=row.owner_id,
            action=action,
            time=utcnow(),
            actor_id=principal.user_id,
            actor_username=principal.username,
            version=row.version,
            changed_fields=list(changed),
            snapshot=snapshot(row),
        )
    )


class StrategyCatalog:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self, principal: Principal, f: StrategyFields) -> models.Strategy:
        f = normalize(f)
        violations = validate(f)
        if violations:
            raise InvalidArgument.of(violations)
        category, risk = self._classify(f)
        async with self.db.transaction() as s:
            if f.strategy_type == ENSEMBLE_TYPE:
                await self._check_members(s, principal, f.ensemble_members)
            await self._check_unique_name(s, principal.user_id, f.name)
            now = utcnow()
            row = models.Strategy(
                owner_id=principal.user_id,
                name=f.name,
                name_key=f.name.lower(),
                description=f.description,
                strategy_type=f.strategy_type,
                category=category,
                risk_level=risk,
                parameters=self._resolved_parameters(f),
                symbols=f.symbols,
                timeframe=f.timeframe,
                tags=f.tags,
                status=f.status,
                execution=f.execution,
                ensemble_members=f.ensemble_members,
                ensemble_method=f.ensemble_method,
                alert_rules=f.alert_rules,
                run_state="stopped",
                version=1,
                created_at=now,
                updated_at=now,
            )
            s.add(row)
            await self._flush_unique(s, f.name)
            record(s, row, principal, "created", [])
        return row

    async def get(self, principal: Principal, strategy_id: str) -> models.Strategy:
        async with self.db.session() as s:
            return await load_strategy(s, principal, strategy_id, Access.READ)

    async def list_page(
        self, principal: Principal, q: StrategyQuery, requested_size: int, token: str
    ) -> Page:
        sort_field, desc = parse_order_by(q.order_by)
        S = models.Strategy
        base = _visible_to(select(S), principal)
        if q.owner_id:
            base = base.where(S.owner_id == q.owner_id)
        base = _apply_filters(base, q)
        qhash = query_hash(user=principal.user_id, **q.__dict__)
        async with self.db.session() as s:
            rows, next_token = await keyset_page(
                s,
                base,
                getattr(S, ORDER_FIELDS[sort_field]),
                S.id,
                requested=requested_size,
                token=token,
                qhash=qhash,
                desc=desc,
            )
            count = select(func.count()).select_from(base.subquery())
            total = int((await s.execute(count)).scalar_one())
        return Page(rows, next_token, total)

    async def update(
        self,
        principal: Principal,
        strategy_id: str,
        f: StrategyFields,
        paths: Sequence[str],
        etag: str = "",
    ) -> models.Strategy:
        paths = list(paths) or list(UPDATABLE)
        bad = [p for p in paths if p not in UPDATABLE]
        if bad:
            raise InvalidArgument.of(
                FieldViolation(
                    "update_mask",
                    f"{p!r} cannot be updated; updatable: {', '.join(UPDATABLE)}"
                    if p != "strategy_type"
                    else "strategy_type is immutable; create a new strategy instead",
                )
                for p in bad
            )
        async with self.db.transaction() as s:
            row = await load_strategy(s, principal, strategy_id, Access.WRITE, lock=True)
            if etag and etag != etag_of(row):
                raise Aborted("the strategy changed since you read it (etag mismatch); re-read it")
            before = _fields_of(row)
            merged = _fields_of(row)
            for p in paths:
                setattr(merged, p, getattr(f, p))
            merged = normalize(merged)
            violations = validate(merged)
            if violations:
                raise InvalidArgument.of(violations)
            if "ensemble_members" in paths and merged.strategy_type == ENSEMBLE_TYPE:
                await self._check_members(s, principal, merged.ensemble_members, exclude=row.id)
            if "parameters" in paths:
                merged.parameters = self._resolved_parameters(merged)
            changed = [p for p in paths if getattr(merged, p) != getattr(before, p)]
            if not changed:
                return row
            if "name" in changed and merged.name.lower() != row.name_key:
                await self._check_unique_name(s, row.owner_id, merged.name)
            for p in changed:
                setattr(row, p, getattr(merged, p))
            row.name_key = row.name.lower()
            row.version += 1
            row.updated_at = utcnow()
            await self._flush_unique(s, row.name)
            record(s, row, principal, "updated", changed)
        return row

    async def delete(self, principal: Principal, strategy_id: str) -> None:
        async with self.db.transaction() as s:
            row = await load_strategy(s, principal, strategy_id, Access.DELETE, lock=True)
            if row.run_state == "running":
                raise FailedPrecondition("stop the strategy before deleting it")
            row.version += 1
            record(s, row, principal, "deleted", [])
            await s.delete(row)

    async def history(
        self, principal: Principal, strategy_id: str, requested_size: int, token: str
    ) -> tuple[list[models.StrategyHistory], str]:
        H = models.StrategyHistory
        async with self.db.session() as s:
            try:
                await load_strategy(s, principal, strategy_id, Access.READ)
            except NotFound:
                # A deleted strategy's history stays readable by its owner and admins.
                owner = (
                    await s.execute(select(H.owner_id).where(H.strategy_id == strategy_id).limit(1))
                ).scalar_one_or_none()
                if owner is None or not (principal.is_admin or owner == principal.user_id):
                    raise
            return await keyset_page(
                s,
                select(H).where(H.strategy_id == strategy_id),
                H.time,
                H.id,
                requested=requested_size,
                token=token,
                qhash=query_hash(history=strategy_id),
            )

    async def category_counts(self, principal: Principal) -> dict[str, int]:
        S = models.Strategy
        stmt = _visible_to(select(S.category, func.count()).group_by(S.category), principal)
        async with self.db.session() as s:
            return {c: int(n) for c, n in (await s.execute(stmt)).all()}

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def _classify(f: StrategyFields) -> tuple[str, str]:
        if f.strategy_type == ENSEMBLE_TYPE:
            return "ensemble", "medium"
        t = registry.get(f.strategy_type)
        return t.category, t.risk_level

    @staticmethod
    def _resolved_parameters(f: StrategyFields) -> dict[str, Any]:
        if f.strategy_type == ENSEMBLE_TYPE:
            return {}
        return dict(registry.get(f.strategy_type).resolve(f.parameters))

    @staticmethod
    async def _check_unique_name(s: AsyncSession, owner_id: str, name: str) -> None:
        S = models.Strategy
        hit = await s.execute(
            select(S.id).where(S.owner_id == owner_id, S.name_key == name.lower()).limit(1)
        )
        if hit.scalar_one_or_none() is not None:
            raise AlreadyExists(f"you already have a strategy named {name!r}")

    @staticmethod
    async def _flush_unique(s: AsyncSession, name: str) -> None:
        try:
            await s.flush()
        except IntegrityError:
            raise AlreadyExists(f"you already have a strategy named {name!r}") from None

    @staticmethod
    async def _check_members(
        s: AsyncSession,
        principal: Principal,
        members: Sequence[dict[str, Any]],
        exclude: str = "",
    ) -> None:
        bad: list[FieldViolation] = []
        for i, m in enumerate(members):
            sid = m.get("strategy_id", "")
            try:
                member = await load_strategy(s, principal, sid, Access.READ)
            except NotFound:
                bad.append(FieldViolation(f"ensemble_members[{i}].strategy_id", "not found"))
                continue
            if member.strategy_type == ENSEMBLE_TYPE or sid == exclude:
                bad.append(
                    FieldViolation(f"ensemble_members[{i}].strategy_id", "cannot nest ensembles")
                )
        if bad:
            raise InvalidArgument.of(bad)


def parse_order_by(order_by: str) -> tuple[str, bool]:
    text = " ".join(order_by.split()).lower()
    if not text:
        return "create_time", True
    parts = text.split(" ")
    fieldname, direction = parts[0], (parts[1] if len(parts) > 1 else "asc")
    if fieldname not in ORDER_FIELDS or direction not in ("asc", "desc") or len(parts) > 2:
        raise InvalidArgument.field(
            "order_by", "use create_time, update_time or name, optionally followed by desc"
        )
    return fieldname, direction == "desc"


def _visible_to(stmt: Any, principal: Principal) -> Any:
    """Admins see every strategy; others their own and those shared with them."""
    if principal.is_admin:
        return stmt
    S = models.Strategy
    shared = select(models.StrategyShare.strategy_id).where(
        models.StrategyShare.user_id == principal.user_id
    )
    return stmt.where(or_(S.owner_id == principal.user_id, S.id.in_(shared)))


def _apply_filters(stmt: Any, q: StrategyQuery) -> Any:
    S = models.Strategy
    if q.category:
        stmt = stmt.where(S.category == q.category)
    if q.status:
        stmt = stmt.where(S.status == q.status)
    if q.risk_level:
        stmt = stmt.where(S.risk_level == q.risk_level)
    if q.strategy_type:
        stmt = stmt.where(S.strategy_type == q.strategy_type)
    tags_text = cast(S.tags, String)
    for tag in q.tags:
        stmt = stmt.where(tags_text.like(f'%"{_escape_like(tag.lower())}"%', escape="\\"))
    if q.query:
        pat = f"%{_escape_like(q.query.lower())}%"
        stmt = stmt.where(
            or_(
                S.name_key.like(pat, escape="\\"),
                func.lower(S.description).like(pat, escape="\\"),
                func.lower(tags_text).like(pat, escape="\\"),
            )
        )
    return stmt


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _fields_of(row: models.Strategy) -> StrategyFields:
    return StrategyFields(
        name=row.name,
        description=row.description,
        strategy_type=row.strategy_type,
        parameters=dict(row.parameters),
        symbols=list(row.symbols),
        timeframe=row.timeframe,
        tags=list(row.tags),
        status=row.status,
        execution=dict(row.execution),
        ensemble_members=[dict(m) for m in row.ensemble_members],
        ensemble_method=row.ensemble_method,
        alert_rules=[dict(r) for r in row.alert_rules],
    )
