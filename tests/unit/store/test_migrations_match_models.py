"""The migrations build exactly the schema the models describe, so no change ships unmigrated."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection

from stratopt.store import migrate
from stratopt.store.db import Database
from stratopt.store.models import Base


async def test_head_schema_equals_the_models(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'schema.db'}")
    await migrate.upgrade(db)

    def diff(conn: Connection) -> list[object]:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        return list(compare_metadata(context, Base.metadata))

    async with db.engine.connect() as conn:
        problems = await conn.run_sync(diff)
    await db.dispose()
    assert problems == [], problems
