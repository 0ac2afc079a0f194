"""A real SQLite file for the LiveManager tests: user "u" owning strategies "a" and "b"."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from stratopt.store import migrate, models
from stratopt.store.db import Database


@pytest.fixture()
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'live.db'}")
    await migrate.upgrade(database)
    async with database.transaction() as s:
        s.add(models.User(id="u", username="u", role="trader", password_hash="x"))
        await s.flush()
        for sid in ("a", "b"):
            s.add(
                models.Strategy(
                    id=sid, owner_id="u", name=sid, name_key=sid, strategy_type="sma_crossover",
                    category="trend_following", risk_level="medium", status="active",
                )
            )  # fmt: skip
    yield database
    await database.dispose()
