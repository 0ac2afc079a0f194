"""change generations: a counter SQLite triggers raise with each strategy or share change

Revision ID: 0008_change_generations
Revises: 0007_stream_leases
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_change_generations"
down_revision: str | None = "0007_stream_leases"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

GROUPS = {"strategies": ("strategies", "strategy_shares")}
"""Each generation and the tables whose changes raise it (store/read_cache.py)."""
OPERATIONS = ("INSERT", "UPDATE", "DELETE")


def _trigger(table: str, operation: str) -> str:
    return f"{table}_{operation.lower()}_generation"


def upgrade() -> None:
    table = op.create_table(
        "change_generations",
        sa.Column("name", sa.String(length=32), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_change_generations")),
    )
    op.bulk_insert(table, [{"name": name, "generation": 0} for name in GROUPS])
    if op.get_bind().dialect.name != "sqlite":
        return
    for name, tables in GROUPS.items():
        for watched in tables:
            for operation in OPERATIONS:
                op.execute(
                    f"CREATE TRIGGER {_trigger(watched, operation)} AFTER {operation} "
                    f"ON {watched} BEGIN UPDATE change_generations "
                    f"SET generation = generation + 1 WHERE name = '{name}'; END"
                )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for tables in GROUPS.values():
            for watched in tables:
                for operation in OPERATIONS:
                    op.execute(f"DROP TRIGGER IF EXISTS {_trigger(watched, operation)}")
    op.drop_table("change_generations")
