"""Issue #2 schema: accounts, users, locations, devices, lines, call records, audit.

Revision ID: 0001
Revises:
Create Date: 2026-11-30

Databases created by #2 (`create_all`, no alembic_version table) are stamped
at this revision by `provisioning.migrate.upgrade` and then upgraded.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

import provisioning.db

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('account',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', AutoString(length=200), nullable=False),
    sa.Column('plan', AutoString(length=40), nullable=False),
    sa.Column('region', AutoString(length=8), nullable=False),
    sa.Column('status', AutoString(length=16), nullable=False),
    sa.Column('created_at', provisioning.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('audit_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', provisioning.db.UTCDateTime(), nullable=False),
    sa.Column('actor', AutoString(length=120), nullable=False),
    sa.Column('action', AutoString(length=64), nullable=False),
    sa.Column('entity', AutoString(length=32), nullable=False),
    sa.Column('entity_id', sa.Integer(), nullable=True),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_event_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_event_at'), ['at'], unique=False)

    op.create_table('cdr',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('call_id', AutoString(length=255), nullable=False),
    sa.Column('caller', AutoString(length=255), nullable=False),
    sa.Column('callee', AutoString(length=255), nullable=False),
    sa.Column('caller_user', sa.Integer(), nullable=True),
    sa.Column('callee_user', sa.Integer(), nullable=True),
    sa.Column('start', provisioning.db.UTCDateTime(), nullable=False),
    sa.Column('answer', provisioning.db.UTCDateTime(), nullable=True),
    sa.Column('end', provisioning.db.UTCDateTime(), nullable=True),
    sa.Column('duration_s', sa.Float(), nullable=False),
    sa.Column('disposition', AutoString(length=16), nullable=False),
    sa.Column('sip_code', sa.Integer(), nullable=True),
    sa.Column('reason', AutoString(length=255), nullable=True),
    sa.Column('rule_id', AutoString(length=8), nullable=True),
    sa.Column('gateway_node', AutoString(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('cdr', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cdr_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cdr_call_id'), ['call_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cdr_start'), ['start'], unique=False)

    op.create_table('location',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('name', AutoString(length=200), nullable=True),
    sa.Column('country', AutoString(length=2), nullable=False),
    sa.Column('a1', AutoString(), nullable=True),
    sa.Column('a2', AutoString(), nullable=True),
    sa.Column('a3', AutoString(), nullable=True),
    sa.Column('a4', AutoString(), nullable=True),
    sa.Column('a5', AutoString(), nullable=True),
    sa.Column('a6', AutoString(), nullable=True),
    sa.Column('prm', AutoString(), nullable=True),
    sa.Column('prd', AutoString(), nullable=True),
    sa.Column('rd', AutoString(), nullable=True),
    sa.Column('sts', AutoString(), nullable=True),
    sa.Column('pod', AutoString(), nullable=True),
    sa.Column('pom', AutoString(), nullable=True),
    sa.Column('rdsec', AutoString(), nullable=True),
    sa.Column('rdbr', AutoString(), nullable=True),
    sa.Column('rdsubbr', AutoString(), nullable=True),
    sa.Column('hno', AutoString(), nullable=True),
    sa.Column('hns', AutoString(), nullable=True),
    sa.Column('lmk', AutoString(), nullable=True),
    sa.Column('loc', AutoString(), nullable=True),
    sa.Column('flr', AutoString(), nullable=True),
    sa.Column('nam', AutoString(), nullable=True),
    sa.Column('pc', AutoString(), nullable=True),
    sa.Column('bld', AutoString(), nullable=True),
    sa.Column('unit', AutoString(), nullable=True),
    sa.Column('room', AutoString(), nullable=True),
    sa.Column('seat', AutoString(), nullable=True),
    sa.Column('plc', AutoString(), nullable=True),
    sa.Column('pcn', AutoString(), nullable=True),
    sa.Column('pobox', AutoString(), nullable=True),
    sa.Column('addcode', AutoString(), nullable=True),
    sa.Column('callback_number', AutoString(length=32), nullable=False),
    sa.Column('created_at', provisioning.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('location', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_location_account_id'), ['account_id'], unique=False)

    op.create_table('user',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('named_user_id', AutoString(length=254), nullable=False),
    sa.Column('display_name', AutoString(length=200), nullable=False),
    sa.Column('extension', AutoString(length=16), nullable=False),
    sa.Column('created_at', provisioning.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('account_id', 'extension', name='uq_user_account_extension'),
    sa.UniqueConstraint('named_user_id')
    )
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_user_account_id'), ['account_id'], unique=False)

    op.create_table('device',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('hardware_profile', AutoString(length=64), nullable=False),
    sa.Column('name', AutoString(length=200), nullable=False),
    sa.Column('mac', AutoString(length=12), nullable=True),
    sa.Column('kind', AutoString(length=16), nullable=False),
    sa.Column('state', AutoString(length=16), nullable=False),
    sa.Column('location_id', sa.Integer(), nullable=True),
    sa.Column('created_at', provisioning.db.UTCDateTime(), nullable=False),
    sa.Column('located_at', provisioning.db.UTCDateTime(), nullable=True),
    sa.Column('activated_at', provisioning.db.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
    sa.ForeignKeyConstraint(['location_id'], ['location.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('mac')
    )
    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_device_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_device_location_id'), ['location_id'], unique=False)

    op.create_table('line',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('index', sa.Integer(), nullable=False),
    sa.Column('sip_username', AutoString(length=64), nullable=False),
    sa.Column('realm', AutoString(length=255), nullable=False),
    sa.Column('ha1_md5', AutoString(length=32), nullable=False),
    sa.Column('ha1_sha256', AutoString(length=64), nullable=False),
    sa.Column('created_at', provisioning.db.UTCDateTime(), nullable=False),
    sa.Column('password_set_at', provisioning.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['device.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('device_id', 'index', name='uq_line_device_index'),
    sa.UniqueConstraint('sip_username')
    )
    with op.batch_alter_table('line', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_line_device_id'), ['device_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_line_user_id'), ['user_id'], unique=False)

    # ### end Alembic commands ###


def downgrade() -> None:
    with op.batch_alter_table('line', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_line_user_id'))
        batch_op.drop_index(batch_op.f('ix_line_device_id'))

    op.drop_table('line')
    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_device_location_id'))
        batch_op.drop_index(batch_op.f('ix_device_account_id'))

    op.drop_table('device')
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_user_account_id'))

    op.drop_table('user')
    with op.batch_alter_table('location', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_location_account_id'))

    op.drop_table('location')
    with op.batch_alter_table('cdr', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cdr_start'))
        batch_op.drop_index(batch_op.f('ix_cdr_call_id'))
        batch_op.drop_index(batch_op.f('ix_cdr_account_id'))

    op.drop_table('cdr')
    with op.batch_alter_table('audit_event', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_event_at'))
        batch_op.drop_index(batch_op.f('ix_audit_event_account_id'))

    op.drop_table('audit_event')
    op.drop_table('account')
    # ### end Alembic commands ###
