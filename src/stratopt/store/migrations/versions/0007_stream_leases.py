"""stream leases: the per-user stream cap across server processes and replicas

Revision ID: 0007_stream_leases
Revises: 0006_user_types
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import stratopt.store.models

revision: str = "0007_stream_leases"
down_revision: str | None = "0006_user_types"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = stratopt.store.models.UTCDateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "stream_leases",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("user_id", sa.String(length=32), nullable=False),
        sa.Column("holder", sa.String(length=64), nullable=False),
        sa.Column("heartbeat_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_stream_leases_user", "stream_leases", ["user_id", "heartbeat_at"])
    op.create_index("ix_stream_leases_holder", "stream_leases", ["holder"])


def downgrade() -> None:
    op.drop_index("ix_stream_leases_holder", table_name="stream_leases")
    op.drop_index("ix_stream_leases_user", table_name="stream_leases")
    op.drop_table("stream_leases")
