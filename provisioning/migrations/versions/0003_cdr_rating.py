"""Issue #5: rated call records — call type, destination, billable seconds, rate,
charge, currency, overage flag and plan on every CDR, plus an (account_id, start)
index for the monthly usage summary.

Every new column has a server default (or is nullable) so records written
before this revision stay valid: they read as unrated on-net calls.

Revision ID: 0003_cdr_rating
Revises: 0002
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

revision = "0003_cdr_rating"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cdr', schema=None) as batch_op:
        batch_op.add_column(sa.Column('call_type', AutoString(length=16), server_default='on-net',
                                      nullable=False))
        batch_op.add_column(sa.Column('destination', AutoString(length=255), nullable=True))
        batch_op.add_column(sa.Column('billable_s', sa.Integer(), server_default=sa.text('0'),
                                      nullable=False))
        batch_op.add_column(sa.Column('rate_per_min', sa.Numeric(precision=12, scale=4), nullable=True))
        batch_op.add_column(sa.Column('charge', sa.Numeric(precision=12, scale=4), server_default=sa.text('0'),
                                      nullable=False))
        batch_op.add_column(sa.Column('currency', AutoString(length=3), server_default='USD', nullable=False))
        batch_op.add_column(sa.Column('overage', sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column('plan', AutoString(length=40), nullable=True))
        batch_op.create_index(batch_op.f('ix_cdr_call_type'), ['call_type'], unique=False)
        batch_op.create_index('ix_cdr_account_start', ['account_id', 'start'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('cdr', schema=None) as batch_op:
        batch_op.drop_index('ix_cdr_account_start')
        batch_op.drop_index(batch_op.f('ix_cdr_call_type'))
        batch_op.drop_column('plan')
        batch_op.drop_column('overage')
        batch_op.drop_column('currency')
        batch_op.drop_column('charge')
        batch_op.drop_column('rate_per_min')
        batch_op.drop_column('billable_s')
        batch_op.drop_column('destination')
        batch_op.drop_column('call_type')
