"""TypeLibraryCache: reused for its time-to-live, never stored from a read older than a
clear, bounded, and one per database so every servicer's writes clear what the others list.
"""

from __future__ import annotations

from datetime import UTC, datetime

from stratopt.services.user_definitions import (
    DefinitionView,
    TypeLibraryCache,
    UserDefinitions,
    library_of,
)
from stratopt.store.db import Database


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def view(name: str) -> DefinitionView:
    t = datetime(2026, 1, 1, tzinfo=UTC)
    return DefinitionView(
        id=name, kind="strategy", name=name, description="", source="", owner_id="u",
        owner_username="u", shared_with=(), indicators=(), params=(), constraints=(),
        version=1, created_at=t, updated_at=t,
    )  # fmt: skip


def test_an_answer_is_reused_until_its_time_to_live_ends() -> None:
    clock = Clock()
    cache = TypeLibraryCache(ttl_s=1.0, clock=clock)
    assert cache.get("u") is None
    cache.put("u", [view("a")], cache.generation, clock())
    clock.now += 0.9
    assert cache.get("u") == (view("a"),)
    assert cache.get("other") is None
    clock.now += 0.1
    assert cache.get("u") is None


def test_a_read_that_started_before_a_clear_is_not_stored() -> None:
    clock = Clock()
    cache = TypeLibraryCache(clock=clock)
    generation, read_at = cache.generation, clock()
    cache.clear()  # a write ended while the read was waiting for the database
    cache.put("u", [view("old")], generation, read_at)
    assert cache.get("u") is None
    cache.put("u", [view("new")], cache.generation, clock())
    assert cache.get("u") == (view("new"),)
    cache.clear()
    assert cache.get("u") is None


def test_the_least_recently_used_callers_leave_first() -> None:
    clock = Clock()
    cache = TypeLibraryCache(size=2, clock=clock)
    for user in ("a", "b"):
        cache.put(user, [], cache.generation, clock())
    assert cache.get("a") == ()
    cache.put("c", [], cache.generation, clock())
    assert cache.get("b") is None and cache.get("a") == () and cache.get("c") == ()


def test_every_user_definitions_of_one_database_shares_one_cache() -> None:
    one, two = Database("sqlite+aiosqlite://"), Database("sqlite+aiosqlite://")
    assert UserDefinitions(one).library is UserDefinitions(one).library is library_of(one)
    assert library_of(two) is not library_of(one)
