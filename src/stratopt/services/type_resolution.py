"""One resolver for strategy type names: built-ins from the registry, user types from the store.

Every use case that takes a type name (strategies, backtests, optimization jobs, live runs,
exports) resolves it here, so a user type ("user_<id>", strategies/user_types.py) works
wherever a built-in does. A user type resolves for a user who may read its definition (own,
shared, or admin). For a stored strategy, that user is the strategy's owner, not the caller:
whoever may run a strategy may run the type its owner chose for it.

The result carries the `TypeSource` of a user type so that work done elsewhere (a job in a
worker process, a live run taken over by another replica) compiles the very same definition
without the database.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from stratopt.errors import FailedPrecondition, StratoptError, Unavailable
from stratopt.optimize.user_types import compile_type
from stratopt.rules import CompileError, RuleError
from stratopt.store import models
from stratopt.store.db import Database
from stratopt.strategies import registry
from stratopt.strategies.base import StrategyType
from stratopt.strategies.user_types import TypeSource, definition_id, is_user_type

COMPILE_RETRY_S = 5.0
"""The retry hint when a kernel's build did not finish: a crashed child is usually a
passing shortage (memory, processes), and a retry compiles from scratch."""


@dataclass(frozen=True)
class ResolvedType:
    stype: StrategyType
    source: TypeSource | None = None
    """The user type's definition; None for a built-in."""


async def resolve_in(
    s: AsyncSession, name: str, *, user_id: str, is_admin: bool = False
) -> ResolvedType:
    """The type called `name` as `user_id` sees it; KeyError if there is none for them (the
    caller words the error for its field); FAILED_PRECONDITION if a saved definition no
    longer compiles."""
    if not is_user_type(name):
        return ResolvedType(registry.get(name))
    from stratopt.services.user_definitions import may_read, source_of

    row = await s.get(models.UserDefinition, definition_id(name))
    if row is None or row.kind != "strategy" or not await may_read(s, row, user_id, is_admin):
        raise KeyError(f"unknown strategy type {name!r}")
    source = source_of(row)
    # Compiling a definition the process has not seen takes seconds: numba runs in a child
    # process (optimize/user_types.py), and this thread waits for it without the GIL, then
    # loads the kernel from numba's disk cache. Cached ones return at once.
    return ResolvedType(await asyncio.to_thread(compile_source, source), source)


async def resolve(db: Database, name: str, *, user_id: str, is_admin: bool = False) -> ResolvedType:
    async with db.session() as s:
        return await resolve_in(s, name, user_id=user_id, is_admin=is_admin)


def compile_source(source: TypeSource) -> StrategyType:
    """The compiled user type (cached by definition hash); FAILED_PRECONDITION if it no
    longer compiles (it did when saved); UNAVAILABLE, saying why, if building its kernel
    did not finish (the compiling process crashed or timed out); INTERNAL if numba
    refused the generated code."""
    name = source.display_name or source.name
    try:
        return compile_type(source)
    except RuleError as e:
        raise FailedPrecondition(
            f"user strategy type {name!r} no longer compiles ({e}); update its definition"
        ) from None
    except CompileError as e:
        message = f"user strategy type {name!r} could not be compiled: {e}"
        if e.transient:  # the build did not finish: worth retrying, so say when
            raise Unavailable(message, retry_after_seconds=COMPILE_RETRY_S) from None
        raise StratoptError(message) from None


def from_source(name: str, source: TypeSource | None) -> StrategyType:
    """Sync resolution for code holding a stored source (job specs, run specs)."""
    if source is not None and source.name == name:
        return compile_source(source)
    return registry.get(name)
