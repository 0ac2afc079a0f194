"""export files expire: expires_at on export_files (existing files get created_at + 24 h)

Revision ID: 0005_export_expiry
Revises: 0004
"""

from collections.abc import Sequence
from datetime import timedelta

import sqlalchemy as sa
from alembic import op

import stratopt.store.models

revision: str = "0005_export_expiry"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UTC = stratopt.store.models.UTCDateTime(timezone=True)
# The default TTL of new exports (Settings.export_ttl_hours) at the time of this migration.
EXISTING_TTL = timedelta(hours=24)


def upgrade() -> None:
    with op.batch_alter_table("export_files") as batch:
        batch.add_column(sa.Column("expires_at", UTC, nullable=True))
    # Date arithmetic differs between SQLite and PostgreSQL; export rows are few, so the
    # backfill runs row by row in Python and stays portable.
    files = sa.table(
        "export_files",
        sa.column("id", sa.String(32)),
        sa.column("created_at", UTC),
        sa.column("expires_at", UTC),
    )
    bind = op.get_bind()
    for row_id, created in bind.execute(sa.select(files.c.id, files.c.created_at)).all():
        bind.execute(
            files.update().where(files.c.id == row_id).values(expires_at=created + EXISTING_TTL)
        )
    with op.batch_alter_table("export_files") as batch:
        batch.alter_column("expires_at", existing_type=UTC, nullable=False)
        batch.create_index("ix_export_files_expires", ["expires_at"])


def downgrade() -> None:
    with op.batch_alter_table("export_files") as batch:
        batch.drop_index("ix_export_files_expires")
        batch.drop_column("expires_at")
