"""User strategies: create, read, list, update, delete, with history recorded in the same
transaction as every change (so history can never disagree with the row)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, String, cast, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stratopt.engine.options import ExecutionOptions
from stratopt.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
)
from stratopt.security.principal import Principal
from stratopt.services import templates
from stratopt.services.access import (
    Access,
    load_strategy,
    owns,
    read_strategy,
    visible_strategies,
)
from stratopt.services.type_resolution import resolve_in
from stratopt.services.user_definitions import MAX_TYPES_LISTED, visible_definitions
from stratopt.services.users import read_usernames, usernames
from stratopt.services.validation import (
    ENSEMBLE_TYPE,
    MAX_TAGS,
    TAG_MAX,
    UPDATABLE,
    StrategyFields,
    normalize,
    validate,
)
from stratopt.store import models
from stratopt.store.db import Database
from stratopt.store.models import utcnow
from stratopt.store.paging import Keyset, keyset_page, query_hash
from stratopt.store.read_cache import GenerationCache
from stratopt.strategies import registry
from stratopt.strategies.base import CATEGORIES, StrategyType
from stratopt.strategies.user_types import CATEGORY as USER_CATEGORY
from stratopt.strategies.user_types import is_user_type

ORDER_FIELDS = {"create_time": "created_at", "update_time": "updated_at", "name": "name_key"}
STRATEGY_CATEGORIES: tuple[str, ...] = (*CATEGORIES, "ensemble")
"""Every category a strategy can have: the built-in types' and the ensembles'."""


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

    def normalized(self) -> StrategyQuery:
        """Tags lower-cased, unique and sorted, text trimmed: equal filters page alike."""
        return StrategyQuery(
            category=self.category,
            status=self.status,
            risk_level=self.risk_level,
            tags=tuple(sorted({t.strip().lower() for t in self.tags if t.strip()})),
            query=self.query.strip(),
            strategy_type=self.strategy_type.strip(),
            order_by=self.order_by,
            owner_id=self.owner_id,
        )


@dataclass(frozen=True)
class StrategyView:
    """A stored strategy as callers see it, with its owner's username."""

    id: str
    owner_id: str
    owner_username: str
    name: str
    description: str
    strategy_type: str
    category: str
    risk_level: str
    parameters: dict[str, Any]
    symbols: list[str]
    timeframe: str
    tags: list[str]
    status: str
    execution: dict[str, Any]
    ensemble_members: list[dict[str, Any]]
    ensemble_method: str
    alert_rules: list[dict[str, Any]]
    run_state: str
    version: int
    created_at: datetime
    updated_at: datetime

    @property
    def etag(self) -> str:
        return f"v{self.version}"

    @classmethod
    def of(cls, row: models.Strategy | Row[Any], owner_username: str) -> StrategyView:
        """From an ORM row or a Core row of the strategies table (`read_strategy`)."""
        return cls(
            id=row.id,
            owner_id=row.owner_id,
            owner_username=owner_username,
            name=row.name,
            description=row.description,
            strategy_type=row.strategy_type,
            category=row.category,
            risk_level=row.risk_level,
            parameters=dict(row.parameters),
            symbols=list(row.symbols),
            timeframe=row.timeframe,
            tags=list(row.tags),
            status=row.status,
            execution=dict(row.execution),
            ensemble_members=[dict(m) for m in row.ensemble_members],
            ensemble_method=row.ensemble_method,
            alert_rules=[dict(r) for r in row.alert_rules],
            run_state=row.run_state,
            version=row.version,
            created_at=row.created_at,
            updated_at=row.updated_at,
        )


@dataclass(frozen=True)
class HistoryEvent:
    """One change of a strategy; `snapshot` is the strategy right after it (see `snapshot`)."""

    id: str
    strategy_id: str
    action: str
    time: datetime
    actor_id: str
    actor_username: str
    version: int
    changed_fields: list[str]
    snapshot: dict[str, Any]

    @classmethod
    def of(cls, row: models.StrategyHistory) -> HistoryEvent:
        return cls(
            id=row.id,
            strategy_id=row.strategy_id,
            action=row.action,
            time=row.time,
            actor_id=row.actor_id,
            actor_username=row.actor_username,
            version=row.version,
            changed_fields=list(row.changed_fields),
            snapshot=dict(row.snapshot),
        )


@dataclass(frozen=True)
class CategorySummary:
    category: str
    strategy_type_count: int
    strategy_count: int


@dataclass
class Page:
    rows: list[StrategyView]
    next_page_token: str
    total_size: int


def strategy_types(category: str = "", risk_level: str = "") -> list[StrategyType]:
    """The built-in strategy types, optionally of one category and risk level."""
    return [
        t
        for t in registry.all()
        if (not category or t.category == category)
        and (not risk_level or t.risk_level == risk_level)
    ]


def strategy_type(name: str) -> StrategyType:
    try:
        return registry.get(name)
    except KeyError:
        raise NotFound("strategy type", name) from None


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
        # Views GetStrategy answered, by strategy and caller, while no strategy or share
        # changes (store/read_cache.py).
        self._views: GenerationCache[tuple[str, str, bool], StrategyView] = GenerationCache(
            db, "strategies"
        )

    async def create(
        self, principal: Principal, f: StrategyFields, template_id: str = ""
    ) -> StrategyView:
        """A new strategy owned by the caller; `template_id` fills in what `f` leaves out."""
        if template_id:
            f = templates.apply(template_id, f)
        f = normalize(f)
        async with self.db.session() as s:
            types = await _user_types(s, f.strategy_type, principal.user_id, principal.is_admin)
        violations = validate(f, types)
        if violations:
            raise InvalidArgument.of(violations)
        category, risk = self._classify(f, types)
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
                parameters=self._resolved_parameters(f, types),
                symbols=f.symbols,
                timeframe=f.timeframe,
                tags=f.tags,
                status=f.status,
                execution=f.execution.to_dict(),
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
        return StrategyView.of(row, principal.username)

    async def get(self, principal: Principal, strategy_id: str) -> StrategyView:
        def read(c: Connection) -> StrategyView:
            row = read_strategy(c, principal, strategy_id, Access.READ)
            return StrategyView.of(row, read_usernames(c, [row.owner_id]).get(row.owner_id, ""))

        # The hottest read of the API: from memory while nothing it read has changed, else
        # one step (store/db.py), not an await per cursor call. The view depends on the
        # caller only through who they are and whether they are an admin.
        key = (strategy_id, principal.user_id, principal.is_admin)
        return await self._views.get(key, read)

    async def list_page(
        self, principal: Principal, q: StrategyQuery, requested_size: int, token: str
    ) -> Page:
        _check_query(q)
        q = q.normalized()
        sort_field, desc = parse_order_by(q.order_by)
        S = models.Strategy
        base = visible_strategies(select(S.__table__), principal)
        if q.owner_id:
            base = base.where(S.owner_id == q.owner_id)
        base = _apply_filters(base, q)
        qhash = query_hash(user=principal.user_id, **q.__dict__)

        def read(c: Connection) -> Page:
            sort_col = getattr(S, ORDER_FIELDS[sort_field])
            page = Keyset(sort_col, S.id, requested_size, token, qhash, desc)
            rows, next_token = page.read(c, base)
            count = select(func.count()).select_from(base.subquery())
            total = int(c.execute(count).scalar_one())
            names = read_usernames(c, [r.owner_id for r in rows])
            views = [StrategyView.of(r, names.get(r.owner_id, "")) for r in rows]
            return Page(views, next_token, total)

        # Up to 200 rows and a count: one hand-off to a read thread, not the event loop.
        return await self.db.scan(read)

    async def update(
        self,
        principal: Principal,
        strategy_id: str,
        f: StrategyFields,
        paths: Sequence[str],
        etag: str = "",
    ) -> StrategyView:
        """Changes the fields named in `paths` (every updatable field when empty)."""
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
            merged.rejected = {p: f.rejected[p] for p in paths if p in f.rejected}
            merged = normalize(merged)
            types = await _user_types(s, merged.strategy_type, row.owner_id, False)
            violations = validate(merged, types)
            if violations:
                raise InvalidArgument.of(violations)
            if "ensemble_members" in paths and merged.strategy_type == ENSEMBLE_TYPE:
                await self._check_members(s, principal, merged.ensemble_members, exclude=row.id)
            if "parameters" in paths:
                merged.parameters = self._resolved_parameters(merged, types)
            changed = [p for p in paths if getattr(merged, p) != getattr(before, p)]
            if not changed:
                return (await _views(s, [row]))[0]
            if "name" in changed and merged.name.lower() != row.name_key:
                await self._check_unique_name(s, row.owner_id, merged.name)
            for p in changed:
                value = getattr(merged, p)
                setattr(row, p, value.to_dict() if p == "execution" else value)
            row.name_key = row.name.lower()
            row.version += 1
            row.updated_at = utcnow()
            await self._flush_unique(s, row.name)
            record(s, row, principal, "updated", changed)
        async with self.db.session() as s:
            return (await _views(s, [row]))[0]

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
    ) -> tuple[list[HistoryEvent], str]:
        H = models.StrategyHistory
        async with self.db.session() as s:
            try:
                await load_strategy(s, principal, strategy_id, Access.READ)
            except NotFound:
                # A deleted strategy's history stays readable by its owner and admins.
                owner = (
                    await s.execute(select(H.owner_id).where(H.strategy_id == strategy_id).limit(1))
                ).scalar_one_or_none()
                if owner is None or not owns(principal, owner):
                    raise
            rows, next_token = await keyset_page(
                s,
                select(H).where(H.strategy_id == strategy_id),
                H.time,
                H.id,
                requested=requested_size,
                token=token,
                qhash=query_hash(history=strategy_id),
            )
        return [HistoryEvent.of(h) for h in rows], next_token

    async def categories(self, principal: Principal) -> list[CategorySummary]:
        """Every category, with how many types and visible strategies it has. The types are
        the built-ins plus the user types ListStrategyTypes lists for the caller (own and
        shared, all filed under user_types.CATEGORY), so the two calls agree."""
        S = models.Strategy
        D = models.UserDefinition
        stmt = visible_strategies(select(S.category, func.count()).group_by(S.category), principal)
        own_types = visible_definitions(
            select(func.count()).select_from(D), principal.user_id, False
        ).where(D.kind == "strategy")
        async with self.db.session() as s:
            counts = {c: int(n) for c, n in (await s.execute(stmt)).all()}
            user_types = int((await s.execute(own_types)).scalar_one())
        type_counts: dict[str, int] = {USER_CATEGORY: min(user_types, MAX_TYPES_LISTED)}
        for t in registry.all():
            type_counts[t.category] = type_counts.get(t.category, 0) + 1
        return [
            CategorySummary(name, type_counts.get(name, 0), counts.get(name, 0))
            for name in STRATEGY_CATEGORIES
        ]

    # -- helpers -------------------------------------------------------------------------

    @staticmethod
    def _classify(f: StrategyFields, types: Mapping[str, StrategyType]) -> tuple[str, str]:
        if f.strategy_type == ENSEMBLE_TYPE:
            return "ensemble", "medium"
        t = types.get(f.strategy_type) or registry.get(f.strategy_type)
        return t.category, t.risk_level

    @staticmethod
    def _resolved_parameters(
        f: StrategyFields, types: Mapping[str, StrategyType]
    ) -> dict[str, Any]:
        if f.strategy_type == ENSEMBLE_TYPE:
            return {}
        t = types.get(f.strategy_type) or registry.get(f.strategy_type)
        return dict(t.resolve(f.parameters))

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


async def _user_types(
    s: AsyncSession, name: str, user_id: str, is_admin: bool
) -> dict[str, StrategyType]:
    """{name: type} when `name` is a user type `user_id` may use; {} otherwise (validation
    then reports an unknown type, as for a misspelt built-in)."""
    if not is_user_type(name):
        return {}
    try:
        return {name: (await resolve_in(s, name, user_id=user_id, is_admin=is_admin)).stype}
    except KeyError:
        return {}


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


QUERY_MAX = 200
"""Longest search text: longer ones match nothing useful and only cost the database."""


def _check_query(q: StrategyQuery) -> None:
    """Filters a stored strategy could match: tags as long as a tag may be, a short search."""
    v: list[FieldViolation] = []
    if len(q.query) > QUERY_MAX:
        v.append(FieldViolation("query", f"at most {QUERY_MAX} characters"))
    if len(q.tags) > MAX_TAGS:
        v.append(FieldViolation("tags", f"at most {MAX_TAGS} tags"))
    else:
        v += [
            FieldViolation(f"tags[{i}]", f"at most {TAG_MAX} characters")
            for i, t in enumerate(q.tags)
            if len(t.strip()) > TAG_MAX
        ]
    for name in ("strategy_type", "order_by", "owner_id"):
        if len(getattr(q, name)) > QUERY_MAX:
            v.append(FieldViolation(name, f"at most {QUERY_MAX} characters"))
    if v:
        raise InvalidArgument.of(v)


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


async def _views(s: AsyncSession, rows: Sequence[models.Strategy]) -> list[StrategyView]:
    names = await usernames(s, [r.owner_id for r in rows])
    return [StrategyView.of(r, names.get(r.owner_id, "")) for r in rows]


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
        execution=ExecutionOptions.from_dict(row.execution),
        ensemble_members=[dict(m) for m in row.ensemble_members],
        ensemble_method=row.ensemble_method,
        alert_rules=[dict(r) for r in row.alert_rules],
    )
