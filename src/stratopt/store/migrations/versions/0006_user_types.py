"""user strategy types and indicators in the rule language, and their shares

Revision ID: 0006_user_types
Revises: 0005_export_expiry
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import stratopt.store.models

revision: str = "0006_user_types"
down_revision: str | None = "0005_export_expiry"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = stratopt.store.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "user_definitions",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("owner_id", sa.String(length=32), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("indicators", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.Column("updated_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["users.id"],
            name=op.f("fk_user_definitions_owner_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_definitions")),
        sa.UniqueConstraint("owner_id", "kind", "name", name="uq_user_definitions_owner_kind_name"),
    )
    op.create_index(
        "ix_user_definitions_owner_created", "user_definitions", ["owner_id", "created_at", "id"]
    )
    op.create_table(
        "user_definition_shares",
        sa.Column("definition_id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(
            ["definition_id"],
            ["user_definitions.id"],
            name=op.f("fk_user_definition_shares_definition_id_user_definitions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_user_definition_shares_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("definition_id", "user_id", name=op.f("pk_user_definition_shares")),
    )
    op.create_index(
        op.f("ix_user_definition_shares_user_id"), "user_definition_shares", ["user_id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_user_definition_shares_user_id"), table_name="user_definition_shares")
    op.drop_table("user_definition_shares")
    op.drop_index("ix_user_definitions_owner_created", table_name="user_definitions")
    op.drop_table("user_definitions")
