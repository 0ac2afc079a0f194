"""definition generations: SQLite triggers raise a generation with each user definition or
definition share change, as 0008 does for strategies

Revision ID: 0009_definition_generations
Revises: 0008_change_generations
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009_definition_generations"
down_revision: str | None = "0008_change_generations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GROUP = "user_definitions"
"""The type library's generation (services/user_definitions.TypeLibraryCache)."""
TABLES = ("user_definitions", "user_definition_shares")
OPERATIONS = ("INSERT", "UPDATE", "DELETE")


def _trigger(table: str, operation: str) -> str:
    return f"{table}_{operation.lower()}_generation"


def upgrade() -> None:
    generations = sa.table(
        "change_generations", sa.column("name", sa.String), sa.column("generation", sa.BigInteger)
    )
    op.bulk_insert(generations, [{"name": GROUP, "generation": 0}])
    if op.get_bind().dialect.name != "sqlite":
        return
    for watched in TABLES:
        for operation in OPERATIONS:
            op.execute(
                f"CREATE TRIGGER {_trigger(watched, operation)} AFTER {operation} "
                f"ON {watched} BEGIN UPDATE change_generations "
                f"SET generation = generation + 1 WHERE name = '{GROUP}'; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for watched in TABLES:
            for operation in OPERATIONS:
                op.execute(f"DROP TRIGGER IF EXISTS {_trigger(watched, operation)}")
    op.execute(sa.text("DELETE FROM change_generations WHERE name = :name").bindparams(name=GROUP))
