"""provider events deduplicated per account; API key scopes; the request hash of an idempotency key

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-24 10:00:00.000000
"""
from __future__ import annotations

from alembic import op
import sqlalchemy as sa


revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('provider_events', schema=None) as batch_op:
        batch_op.drop_constraint('uq_provider_events_key', type_='unique')
        batch_op.create_unique_constraint('uq_provider_events_account_key', ['provider', 'account', 'event_key'])
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scopes', sa.JSON(), nullable=True))
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('request_hash', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('jobs', schema=None) as batch_op:
        batch_op.drop_column('request_hash')
    with op.batch_alter_table('api_keys', schema=None) as batch_op:
        batch_op.drop_column('scopes')
    with op.batch_alter_table('provider_events', schema=None) as batch_op:
        batch_op.drop_constraint('uq_provider_events_account_key', type_='unique')
        batch_op.create_unique_constraint('uq_provider_events_key', ['provider', 'event_key'])
