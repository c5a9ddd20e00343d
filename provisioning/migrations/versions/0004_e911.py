"""Issue #4 (E911): validated locations (status, problems, site needs), account
stale-location policy and Kari's Law notification URL, and the E911 tables:
device fingerprints and stale flags (R13), customer notices (R15), location
prompts (R13), simulated site outages (R11), emergency calls with the exact
PIDF-LO sent, PSAP simulator verdicts, and Kari's Law notifications.

Locations stored before this revision read as `unchecked`: they are validated
again when a device binds them.

Revision ID: 0004_e911
Revises: 0003_cdr_rating
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

import provisioning.db

revision = "0004_e911"
down_revision = "0003_cdr_rating"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('stale_policy', AutoString(length=16), server_default='use_last',
                                      nullable=False))
        batch_op.add_column(sa.Column('notification_url', AutoString(length=500), nullable=True))

    with op.batch_alter_table('location', schema=None) as batch_op:
        batch_op.add_column(sa.Column('validation_status', AutoString(length=16), server_default='unchecked',
                                      nullable=False))
        batch_op.add_column(sa.Column('validation_problems', sa.JSON(), server_default=sa.text("'[]'"),
                                      nullable=False))
        batch_op.add_column(sa.Column('validated_at', provisioning.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('site_needs', sa.JSON(), server_default=sa.text("'{}'"), nullable=False))
        batch_op.add_column(sa.Column('updated_at', provisioning.db.UTCDateTime(), nullable=True))

    op.create_table('device_e911',
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('last_fingerprint', sa.JSON(), nullable=True),
    sa.Column('fingerprint_at', provisioning.db.UTCDateTime(), nullable=True),
    sa.Column('location_stale', sa.Boolean(), server_default=sa.false(), nullable=False),
    sa.Column('stale_reason', AutoString(length=500), nullable=True),
    sa.Column('stale_since', provisioning.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
    sa.ForeignKeyConstraint(['device_id'], ['device.id'], ),
    sa.PrimaryKeyConstraint('device_id')
    )
    with op.batch_alter_table('device_e911', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_device_e911_account_id'), ['account_id'], unique=False)

    op.create_table('e911_notice',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('kind', AutoString(length=16), nullable=False),
    sa.Column('text', AutoString(), nullable=False),
    sa.Column('sent_at', provisioning.db.UTCDateTime(), nullable=False),
    sa.Column('acknowledged_at', provisioning.db.UTCDateTime(), nullable=True),
    sa.Column('acknowledged_by', AutoString(length=200), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
    sa.ForeignKeyConstraint(['device_id'], ['device.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('e911_notice', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_e911_notice_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_e911_notice_device_id'), ['device_id'], unique=False)

    op.create_table('location_prompt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('created_at', provisioning.db.UTCDateTime(), nullable=False),
    sa.Column('reason', AutoString(length=500), nullable=False),
    sa.Column('location_id', sa.Integer(), nullable=True),
    sa.Column('fingerprint', sa.JSON(), nullable=True),
    sa.Column('previous_fingerprint', sa.JSON(), nullable=True),
    sa.Column('status', AutoString(length=16), nullable=False),
    sa.Column('resolved_at', provisioning.db.UTCDateTime(), nullable=True),
    sa.Column('resolved_by', AutoString(length=120), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
    sa.ForeignKeyConstraint(['device_id'], ['device.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('location_prompt', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_location_prompt_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_location_prompt_device_id'), ['device_id'], unique=False)

    op.create_table('site_outage',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('location_id', sa.Integer(), nullable=False),
    sa.Column('kind', AutoString(length=16), nullable=False),
    sa.Column('note', AutoString(length=500), nullable=True),
    sa.Column('started_at', provisioning.db.UTCDateTime(), nullable=False),
    sa.Column('ended_at', provisioning.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
    sa.ForeignKeyConstraint(['location_id'], ['location.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('site_outage', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_site_outage_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_site_outage_location_id'), ['location_id'], unique=False)

    op.create_table('emergency_call',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('call_id', AutoString(length=255), nullable=False),
    sa.Column('psap_call_id', AutoString(length=255), nullable=True),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('device_id', sa.Integer(), nullable=True),
    sa.Column('location_id', sa.Integer(), nullable=True),
    sa.Column('caller', AutoString(length=255), nullable=False),
    sa.Column('dialled', AutoString(length=255), nullable=False),
    sa.Column('service_urn', AutoString(length=64), nullable=True),
    sa.Column('is_test', sa.Boolean(), nullable=False),
    sa.Column('route_kind', AutoString(length=16), nullable=False),
    sa.Column('code', AutoString(length=64), nullable=False),
    sa.Column('rule_id', AutoString(length=8), nullable=True),
    sa.Column('reason', AutoString(length=500), nullable=False),
    sa.Column('sip_status', sa.Integer(), nullable=True),
    sa.Column('with_location', sa.Boolean(), nullable=False),
    sa.Column('callback', AutoString(length=32), nullable=True),
    sa.Column('pidf', AutoString(), nullable=True),
    sa.Column('content_id', AutoString(length=255), nullable=True),
    sa.Column('warnings', sa.JSON(), nullable=False),
    sa.Column('started_at', provisioning.db.UTCDateTime(), nullable=False),
    sa.Column('answered_at', provisioning.db.UTCDateTime(), nullable=True),
    sa.Column('ended_at', provisioning.db.UTCDateTime(), nullable=True),
    sa.Column('gateway_node', AutoString(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('call_id')
    )
    with op.batch_alter_table('emergency_call', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_emergency_call_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_emergency_call_device_id'), ['device_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_emergency_call_psap_call_id'), ['psap_call_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_emergency_call_started_at'), ['started_at'], unique=False)

    op.create_table('psap_call',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('call_id', AutoString(length=255), nullable=False),
    sa.Column('role', AutoString(length=24), nullable=False),
    sa.Column('verdict', AutoString(length=8), nullable=False),
    sa.Column('state', AutoString(length=16), nullable=False),
    sa.Column('status', sa.Integer(), nullable=True),
    sa.Column('device_id', AutoString(length=255), nullable=True),
    sa.Column('received_at', provisioning.db.UTCDateTime(), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('call_id')
    )
    with op.batch_alter_table('psap_call', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_psap_call_device_id'), ['device_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_psap_call_received_at'), ['received_at'], unique=False)

    op.create_table('emergency_notification',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('call_id', AutoString(length=255), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('channel', AutoString(length=16), nullable=False),
    sa.Column('url', AutoString(length=500), nullable=True),
    sa.Column('status', AutoString(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_status_code', sa.Integer(), nullable=True),
    sa.Column('last_error', AutoString(length=500), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('created_at', provisioning.db.UTCDateTime(), nullable=False),
    sa.Column('sent_at', provisioning.db.UTCDateTime(), nullable=True),
    sa.Column('updated_at', provisioning.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('emergency_notification', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_emergency_notification_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_emergency_notification_call_id'), ['call_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_emergency_notification_created_at'), ['created_at'], unique=False)


def downgrade() -> None:
    for table, indexes in (
        ('emergency_notification', ('account_id', 'call_id', 'created_at')),
        ('psap_call', ('device_id', 'received_at')),
        ('emergency_call', ('account_id', 'device_id', 'psap_call_id', 'started_at')),
        ('site_outage', ('account_id', 'location_id')),
        ('location_prompt', ('account_id', 'device_id')),
        ('e911_notice', ('account_id', 'device_id')),
        ('device_e911', ('account_id',)),
    ):
        with op.batch_alter_table(table, schema=None) as batch_op:
            for column in indexes:
                batch_op.drop_index(batch_op.f(f'ix_{table}_{column}'))
        op.drop_table(table)

    with op.batch_alter_table('location', schema=None) as batch_op:
        batch_op.drop_column('updated_at')
        batch_op.drop_column('site_needs')
        batch_op.drop_column('validated_at')
        batch_op.drop_column('validation_problems')
        batch_op.drop_column('validation_status')

    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.drop_column('notification_url')
        batch_op.drop_column('stale_policy')
