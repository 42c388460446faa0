"""imports: a heartbeat for running imports, and the scheduler's re-sends of lost import tasks

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 18:00:00.000000
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa

import outdial.models


revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("imports", schema=None) as batch_op:
        batch_op.add_column(sa.Column("progress_at", outdial.models.UTCDateTime(timezone=True), nullable=True))
        # The server default fills the rows already there; the model gives every new row its 0.
        batch_op.add_column(sa.Column("sends", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("sent_at", outdial.models.UTCDateTime(timezone=True), nullable=True))
    with op.batch_alter_table("imports", schema=None) as batch_op:
        batch_op.alter_column("sends", server_default=None)
        batch_op.create_index(
            "ix_imports_unended",
            ["state"],
            unique=False,
            postgresql_where=sa.text("state IN ('queued', 'running')"),
            sqlite_where=sa.text("state IN ('queued', 'running')"),
        )


def downgrade() -> None:
    with op.batch_alter_table("imports", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_imports_unended",
            postgresql_where=sa.text("state IN ('queued', 'running')"),
            sqlite_where=sa.text("state IN ('queued', 'running')"),
        )
        batch_op.drop_column("sent_at")
        batch_op.drop_column("sends")
        batch_op.drop_column("progress_at")
