"""User strategy types and indicators: validate, create, read, list, update, delete, share.

A definition is rule-language text (docs/rules.md) owned by its creator. Access follows
strategies (services/access.py): the owner or an admin changes, deletes and shares it;
a user it is shared with may read it and use it (call the indicator, run the type).
Callers who may not see a definition get NOT_FOUND, never a hint that it exists.

A strategy definition becomes the type `user_<id>` (strategies/user_types.py). When it is
saved, the source of every user indicator it calls (the owner's own, or shared with the
owner; the owner's win on a name clash) is pinned into the row, so the type compiles from
its row alone: a job or live run started from it is reproducible, and editing an indicator
changes a type only when that type is saved again.

Malformed text is INVALID_ARGUMENT whose field violations say "line:column: problem", for
every problem at once; the dry `validate` returns the same problems as data instead.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from stratopt.errors import (
    Aborted,
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    NotFound,
    PermissionDenied,
)
from stratopt.rules import LIMITS, RuleError, RuleErrors, check, check_indicator
from stratopt.rules.checker import RULES
from stratopt.rules.functions import BUILTINS, SPECIAL
from stratopt.rules.ir import PRICES
from stratopt.security.principal import Principal
from stratopt.services.access import owns
from stratopt.services.users import grantee_by_name, usernames
from stratopt.store import models
from stratopt.store.db import Database
from stratopt.store.models import utcnow
from stratopt.store.paging import keyset_page, query_hash
from stratopt.store.read_cache import GenerationWatch
from stratopt.strategies.params import Constraint, ParamSpec
from stratopt.strategies.user_types import TypeSource, definition_id, type_name

Space = tuple[tuple[ParamSpec, ...], tuple[Constraint, ...]]
KINDS = ("strategy", "indicator")
UPDATABLE = ("name", "description", "source")
DESCRIPTION_MAX = 4000
MAX_INDICATORS_VISIBLE = 500
"""Indicators considered when a definition is checked; more would only slow every save."""
MAX_TYPES_LISTED = 500
"""User types in one ListStrategyTypes answer (it has no pages); ListUserDefinitions pages."""
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
_NAME_MAX = min(LIMITS.max_name, 64)
_TAKEN = frozenset({*BUILTINS, *SPECIAL, *PRICES, *RULES, "position", "true", "false", "na"})
"""Names an indicator cannot take: calls and names resolve to these first (rules/checker)."""


@dataclass(frozen=True)
class Problem:
    line: int
    column: int
    message: str

    @property
    def text(self) -> str:
        return f"{self.line}:{self.column}: {self.message}"


@dataclass(frozen=True)
class Validation:
    """What the dry check reports: problems, or the compiled parameter space."""

    problems: tuple[Problem, ...]
    params: tuple[ParamSpec, ...] = ()
    indicators: tuple[str, ...] = ()
    constraints: tuple[Constraint, ...] = ()

    @property
    def valid(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class DefinitionView:
    id: str
    kind: str
    name: str
    description: str
    source: str
    owner_id: str
    owner_username: str
    shared_with: tuple[str, ...]
    indicators: tuple[str, ...]
    params: tuple[ParamSpec, ...]
    constraints: tuple[Constraint, ...]
    version: int
    created_at: datetime
    updated_at: datetime

    @property
    def etag(self) -> str:
        return f"v{self.version}"

    @property
    def strategy_type(self) -> str:
        return type_name(self.id) if self.kind == "strategy" else ""


@dataclass(frozen=True)
class DefinitionFields:
    kind: str = ""
    name: str = ""
    description: str = ""
    source: str = ""
    etag: str = ""


def problems_of(err: RuleError) -> tuple[Problem, ...]:
    """Every problem, positioned; one about the whole text (too long, no rules) is at 1:1."""
    errors = err.errors if isinstance(err, RuleErrors) else [err]
    return tuple(Problem(e.line or 1, e.column or 1, e.message) for e in errors)


def source_of(row: models.UserDefinition) -> TypeSource:
    """What compiles the stored strategy definition `row` (see strategies/user_types.py)."""
    return TypeSource(
        name=type_name(row.id),
        source=row.source,
        indicators={str(k): str(v) for k, v in row.indicators.items()},
        display_name=row.name,
        description=row.description,
    )


def _checked(
    kind: str, source: str, visible: Mapping[str, str], own_name: str = ""
) -> tuple[Space, dict[str, str]]:
    """(parameter space, pinned indicators) of a valid definition; RuleError otherwise."""
    if kind == "indicator":
        others = {n: t for n, t in visible.items() if n != own_name}
        check_indicator(source, indicators=others)
        return ((), ()), {}
    checked = check(source, indicators=visible)
    space = (checked.params, checked.constraints)
    return space, {n: visible[n] for n in checked.indicators if n in visible}


def _field_problems(f: DefinitionFields, paths: Sequence[str]) -> list[FieldViolation]:
    v: list[FieldViolation] = []
    if "kind" in paths and f.kind not in KINDS:
        v.append(FieldViolation("definition.kind", "STRATEGY or INDICATOR"))
    if "name" in paths:
        if not f.name:
            v.append(FieldViolation("definition.name", "required"))
        elif len(f.name) > _NAME_MAX or not _NAME.match(f.name):
            v.append(
                FieldViolation(
                    "definition.name",
                    f"snake_case: a lower-case letter, then letters, digits or _ "
                    f"(at most {_NAME_MAX} characters)",
                )
            )
    if "name" in paths and f.kind == "indicator" and f.name in _TAKEN:
        v.append(
            FieldViolation(
                "definition.name", f"{f.name!r} is a built-in name; an indicator needs its own"
            )
        )
    if "description" in paths and len(f.description) > DESCRIPTION_MAX:
        v.append(FieldViolation("definition.description", f"at most {DESCRIPTION_MAX} characters"))
    if "source" in paths and not f.source.strip():
        v.append(FieldViolation("definition.source", "required"))
    return v


GENERATION_GROUP = "user_definitions"
"""The generation SQLite raises with every change of a definition or its shares (migration
0009), which tells the type library when another process changed one."""


class TypeLibraryCache:
    """Each caller's user strategy types, as ListStrategyTypes lists them.

    ListStrategyTypes is among the most frequent calls and otherwise reads no database; one
    ORM read through aiosqlite would triple its CPU cost (docs/operations.md). Every change
    of a definition made through this process clears the cache when its transaction ends,
    so this process's answers are never stale. Changes by another process or replica:
    - on a SQLite file, `watch` (store/read_cache.py) sees the definitions' generation move
      (migration 0009's triggers) and the cache empties before its next answer, so answers
      are exact and kept for as long as nothing changes;
    - elsewhere (PostgreSQL), or while the watch cannot tell, an answer is kept for `ttl_s`.
    Nothing else reads it: using a type by name always asks the store.
    """

    def __init__(
        self,
        ttl_s: float = 1.0,
        size: int = 1024,
        clock: Callable[[], float] = time.monotonic,
        watch: GenerationWatch | None = None,
    ) -> None:
        self.ttl_s = ttl_s
        self.size = size
        self.clock = clock
        self.watch = watch
        self._entries: OrderedDict[str, tuple[float, tuple[DefinitionView, ...]]] = OrderedDict()
        self._generation = 0
        self._stored: int | None = None
        """The watched generation the entries were read under (None: not watched)."""

    @property
    def generation(self) -> int:
        """Changes whenever the cache is cleared: a read started before a clear must not
        store what it read (it may predate the change)."""
        return self._generation

    def get(self, user_id: str) -> tuple[DefinitionView, ...] | None:
        exact = self._exact()
        hit = self._entries.get(user_id)
        if hit is None or (not exact and self.clock() - hit[0] >= self.ttl_s):
            return None
        self._entries.move_to_end(user_id)
        return hit[1]

    def put(
        self, user_id: str, views: Sequence[DefinitionView], generation: int, read_at: float
    ) -> None:
        if generation != self._generation:
            return
        self._entries[user_id] = (read_at, tuple(views))
        self._entries.move_to_end(user_id)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def clear(self) -> None:
        self._entries.clear()
        self._generation += 1

    def _exact(self) -> bool:
        """Empties the cache if the watched generation moved; True if the entries are known
        to be current (so no time-to-live applies)."""
        if self.watch is None:
            return False
        current = self.watch.current()
        if current != self._stored:
            self.clear()
            self._stored = current
        return current is not None


_LIBRARIES: WeakKeyDictionary[Database, TypeLibraryCache] = WeakKeyDictionary()


def library_of(db: Database) -> TypeLibraryCache:
    """The one cache of a database in this process: the servicers each build their own
    UserDefinitions, and a write through one must clear what another lists."""
    found = _LIBRARIES.get(db)
    if found is None:
        found = _LIBRARIES[db] = TypeLibraryCache(watch=GenerationWatch(db, GENERATION_GROUP))
    return found


class UserDefinitions:
    def __init__(self, db: Database, library: TypeLibraryCache | None = None) -> None:
        self.db = db
        self.library = library or library_of(db)

    @asynccontextmanager
    async def _writing(self) -> AsyncIterator[AsyncSession]:
        """A write transaction; the type library cache is cleared once it has ended."""
        try:
            async with self.db.transaction() as s:
                yield s
        finally:
            self.library.clear()

    # -- dry check ---------------------------------------------------------------------

    async def validate(
        self, principal: Principal, kind: str, source: str, name: str = ""
    ) -> Validation:
        if kind not in KINDS:
            raise InvalidArgument.field("kind", "STRATEGY or INDICATOR")
        async with self.db.session() as s:
            visible = await visible_indicators(s, principal.user_id)
        try:
            (params, constraints), pinned = _checked(kind, source, visible, name)
        except RuleError as e:
            return Validation(problems_of(e))
        return Validation((), params, tuple(sorted(pinned)), constraints)

    # -- CRUD --------------------------------------------------------------------------

    async def create(self, principal: Principal, f: DefinitionFields) -> DefinitionView:
        f = DefinitionFields(f.kind, f.name.strip(), f.description, f.source)
        violations = _field_problems(f, ("kind", *UPDATABLE))
        if violations:
            raise InvalidArgument.of(violations)
        async with self._writing() as s:
            visible = await visible_indicators(s, principal.user_id)
            pinned = _compile_or_raise(f.kind, f.source, visible, f.name)
            now = utcnow()
            row = models.UserDefinition(
                owner_id=principal.user_id,
                kind=f.kind,
                name=f.name,
                description=f.description,
                source=f.source,
                indicators=pinned,
                version=1,
                created_at=now,
                updated_at=now,
            )
            s.add(row)
            await _flush_unique(s, f)
            return await _view(s, principal, row)

    async def get(self, principal: Principal, definition_id: str) -> DefinitionView:
        async with self.db.session() as s:
            row = await load_definition(s, principal, definition_id)
            return await _view(s, principal, row)

    async def strategy_type(self, principal: Principal, name: str) -> DefinitionView:
        """The definition behind the user type `name`, for GetStrategyType; NOT_FOUND (as
        "strategy type") for one the caller may not read."""
        found = definition_id(name)
        async with self.db.session() as s:
            row = await s.get(models.UserDefinition, found) if found else None
            if (
                row is None
                or row.kind != "strategy"
                or not await may_read(s, row, principal.user_id, principal.is_admin)
            ):
                raise NotFound("strategy type", name)
            return await _view(s, principal, row)

    async def strategy_types(self, principal: Principal) -> list[DefinitionView]:
        """The user strategy types the caller may use, for the type library
        (ListStrategyTypes): their own and those shared with them, by name, at most
        MAX_TYPES_LISTED. Admins get the same (everyone's would bury the built-ins; they
        reach any type by name). `shared_with` is not loaded: the library does not show it.
        Answers are reused for a moment (TypeLibraryCache).
        """
        cached = self.library.get(principal.user_id)
        if cached is not None:
            return list(cached)
        generation, read_at = self.library.generation, self.library.clock()
        D = models.UserDefinition
        stmt = (
            visible_definitions(select(D), principal.user_id, False)
            .where(D.kind == "strategy")
            .order_by(D.name, D.created_at, D.id)
            .limit(MAX_TYPES_LISTED)
        )
        async with self.db.session() as s:
            rows = list((await s.execute(stmt)).scalars())
            names = await usernames(s, {r.owner_id for r in rows})
        views = [_built_view(r, names.get(r.owner_id, ""), ()) for r in rows]
        self.library.put(principal.user_id, views, generation, read_at)
        return views

    async def list_page(
        self, principal: Principal, kind: str, requested_size: int, token: str
    ) -> tuple[list[DefinitionView], str]:
        D = models.UserDefinition
        stmt = visible_definitions(select(D), principal.user_id, principal.is_admin)
        if kind:
            stmt = stmt.where(D.kind == kind)
        async with self.db.session() as s:
            rows, next_token = await keyset_page(
                s,
                stmt,
                D.created_at,
                D.id,
                requested=requested_size,
                token=token,
                qhash=query_hash(user=principal.user_id, kind=kind, what="user_definitions"),
                desc=True,
            )
            return [await _view(s, principal, r) for r in rows], next_token

    async def update(
        self, principal: Principal, definition_id: str, f: DefinitionFields, paths: Sequence[str]
    ) -> DefinitionView:
        paths = list(paths) or list(UPDATABLE)
        bad = [p for p in paths if p not in UPDATABLE]
        if bad:
            raise InvalidArgument.of(
                FieldViolation(
                    "update_mask",
                    "kind is fixed at creation"
                    if p == "kind"
                    else f"{p!r} cannot be updated; updatable: {', '.join(UPDATABLE)}",
                )
                for p in bad
            )
        f = DefinitionFields(f.kind, f.name.strip(), f.description, f.source, f.etag)
        violations = _field_problems(f, paths)
        if violations:
            raise InvalidArgument.of(violations)
        async with self._writing() as s:
            row = await load_definition(s, principal, definition_id, write=True)
            if f.etag and f.etag != f"v{row.version}":
                raise Aborted(
                    "the definition changed since you read it (etag mismatch); re-read it"
                )
            renamed = _field_problems(
                replace(f, kind=row.kind), ["name"] if "name" in paths else []
            )
            if renamed:
                raise InvalidArgument.of(renamed)
            for p in paths:
                setattr(row, p, getattr(f, p))
            visible = await visible_indicators(s, row.owner_id)
            row.indicators = _compile_or_raise(row.kind, row.source, visible, row.name)
            row.version += 1
            row.updated_at = utcnow()
            await _flush_unique(s, f)
            return await _view(s, principal, row)

    async def delete(self, principal: Principal, definition_id: str) -> None:
        async with self._writing() as s:
            row = await load_definition(s, principal, definition_id, write=True)
            if row.kind == "strategy":
                S = models.Strategy
                used = (
                    await s.execute(
                        select(func.count()).where(S.strategy_type == type_name(row.id))
                    )
                ).scalar_one()
                if used:
                    raise FailedPrecondition(
                        f"{used} stored strateg{'y uses' if used == 1 else 'ies use'} this "
                        "type; delete them or create them from another type first"
                    )
            await s.delete(row)

    # -- sharing -----------------------------------------------------------------------

    async def share(
        self, principal: Principal, definition_id: str, username: str
    ) -> DefinitionView:
        async with self._writing() as s:
            row = await load_definition(s, principal, definition_id, write=True)
            grantee = await grantee_by_name(s, username)
            if grantee.id == row.owner_id:
                raise InvalidArgument.field("username", "the owner already has every access")
            if await s.get(models.UserDefinitionShare, (row.id, grantee.id)) is None:
                s.add(
                    models.UserDefinitionShare(
                        definition_id=row.id, user_id=grantee.id, created_at=utcnow()
                    )
                )
                await s.flush()
            return await _view(s, principal, row)

    async def unshare(self, principal: Principal, definition_id: str, username: str) -> None:
        async with self._writing() as s:
            row = await load_definition(s, principal, definition_id)
            grantee = await grantee_by_name(s, username)
            leaving = grantee.id == principal.user_id
            if not leaving and not owns(principal, row.owner_id):
                raise NotFound("user definition", definition_id)
            share = await s.get(models.UserDefinitionShare, (row.id, grantee.id))
            if share is None:
                raise NotFound("share", f"{definition_id}/{grantee.username}")
            await s.delete(share)


# -- access --------------------------------------------------------------------------------


def visible_definitions(stmt: Any, user_id: str, is_admin: bool) -> Any:
    """`stmt` narrowed to definitions `user_id` may read: own, shared, or all for admins."""
    if is_admin:
        return stmt
    D = models.UserDefinition
    shared = select(models.UserDefinitionShare.definition_id).where(
        models.UserDefinitionShare.user_id == user_id
    )
    return stmt.where(or_(D.owner_id == user_id, D.id.in_(shared)))


async def may_read(s: AsyncSession, row: models.UserDefinition, user_id: str, admin: bool) -> bool:
    if admin or row.owner_id == user_id:
        return True
    return await s.get(models.UserDefinitionShare, (row.id, user_id)) is not None


async def load_definition(
    s: AsyncSession, principal: Principal, definition_id: str, *, write: bool = False
) -> models.UserDefinition:
    """The definition if the caller may read it (or change it, with `write`): NOT_FOUND for
    one they cannot see; PERMISSION_DENIED for a grantee (who can see it) asking to change it.
    """
    row = await s.get(models.UserDefinition, definition_id) if definition_id else None
    if row is None or not await may_read(s, row, principal.user_id, principal.is_admin):
        raise NotFound("user definition", definition_id)
    if write and not owns(principal, row.owner_id):
        raise PermissionDenied("this definition is shared with you to read and use, not to change")
    return row


async def visible_indicators(s: AsyncSession, user_id: str) -> dict[str, str]:
    """{name: source} of the indicators `user_id` owns or has been shared; own names win."""
    D = models.UserDefinition
    stmt = visible_definitions(select(D.name, D.source, D.owner_id), user_id, False)
    rows = (
        await s.execute(
            stmt.where(D.kind == "indicator").order_by(D.created_at).limit(MAX_INDICATORS_VISIBLE)
        )
    ).all()
    out: dict[str, str] = {}
    for name, source, _owner in sorted(rows, key=lambda r: r[2] == user_id):
        out[name] = source  # the caller's own come last and so win a name clash
    return out


# -- helpers -------------------------------------------------------------------------------


def _compile_or_raise(
    kind: str, source: str, visible: Mapping[str, str], name: str
) -> dict[str, str]:
    try:
        return _checked(kind, source, visible, name)[1]
    except RuleError as e:
        raise InvalidArgument.of(
            FieldViolation("definition.source", p.text) for p in problems_of(e)
        ) from None


async def _flush_unique(s: AsyncSession, f: DefinitionFields) -> None:
    try:
        await s.flush()
    except IntegrityError:
        raise AlreadyExists(
            f"you already have a {f.kind or 'definition'} named {f.name!r}"
        ) from None


async def _view(
    s: AsyncSession, principal: Principal, row: models.UserDefinition
) -> DefinitionView:
    names = await usernames(s, [row.owner_id])
    shared: tuple[str, ...] = ()
    if owns(principal, row.owner_id):
        shared = tuple(
            (
                await s.execute(
                    select(models.User.username)
                    .join(
                        models.UserDefinitionShare,
                        models.UserDefinitionShare.user_id == models.User.id,
                    )
                    .where(models.UserDefinitionShare.definition_id == row.id)
                    .order_by(models.User.username)
                )
            ).scalars()
        )
    return _built_view(row, names.get(row.owner_id, ""), shared)


def _built_view(
    row: models.UserDefinition, owner_username: str, shared: tuple[str, ...]
) -> DefinitionView:
    params, constraints = (
        _space(row.source, tuple(sorted(row.indicators.items())))
        if row.kind == "strategy"
        else ((), ())
    )
    return DefinitionView(
        id=row.id,
        kind=row.kind,
        name=row.name,
        description=row.description,
        source=row.source,
        owner_id=row.owner_id,
        owner_username=owner_username,
        shared_with=shared,
        indicators=tuple(sorted(row.indicators)),
        params=params,
        constraints=constraints,
        version=row.version,
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


@lru_cache(maxsize=512)
def _space(source: str, indicators: tuple[tuple[str, str], ...]) -> Space:
    """A stored strategy definition's parameter space (checked once per text per process).

    Empty if it no longer checks (saved under an older language version); Update shows why.
    """
    try:
        checked = check(source, indicators=dict(indicators))
    except RuleError:
        return (), ()
    return checked.params, checked.constraints
