"""attempts: provider_ref (a second id of the call) and result_data (what the provider reported)

Revision ID: 0006
Revises: 0005
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('provider_ref', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('result_data', sa.JSON(), nullable=True))
        batch_op.create_index('ix_attempts_provider_ref', ['provider', 'provider_ref'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('attempts', schema=None) as batch_op:
        batch_op.drop_index('ix_attempts_provider_ref')
        batch_op.drop_column('result_data')
        batch_op.drop_column('provider_ref')
