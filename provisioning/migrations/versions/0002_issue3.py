"""Issue #3: plans on accounts (deposit, allow-list, flex), device profile checks and
provisioning fields, line ports/purpose/sealed passwords/credential generation,
licences, room kits and equipment orders, idempotency records, and the audit
log made append-only by triggers.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlmodel.sql.sqltypes import AutoString

import provisioning.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# Kept here (not imported) so this migration never changes after release;
# provisioning/db.py holds the same statements for databases made by create_all.
SQLITE_TRIGGERS = (
    "CREATE TRIGGER audit_event_no_update BEFORE UPDATE ON audit_event "
    "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END",
    "CREATE TRIGGER audit_event_no_delete BEFORE DELETE ON audit_event "
    "BEGIN SELECT RAISE(ABORT, 'audit_event is append-only'); END",
)
POSTGRES_TRIGGERS = (
    "CREATE FUNCTION audit_event_append_only() RETURNS trigger LANGUAGE plpgsql AS "
    "$$ BEGIN RAISE EXCEPTION 'audit_event is append-only'; END $$",
    "CREATE TRIGGER audit_event_append_only BEFORE UPDATE OR DELETE ON audit_event "
    "FOR EACH ROW EXECUTE FUNCTION audit_event_append_only()",
)


def upgrade() -> None:
    op.create_table('idempotency_record',
    sa.Column('key', AutoString(length=255), nullable=False),
    sa.Column('fingerprint', AutoString(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('body', AutoString(), nullable=False),
    sa.Column('created_at', provisioning.db.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('key')
    )
    op.create_table('licence',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('kind', AutoString(length=16), nullable=False),
    sa.Column('name', AutoString(length=200), nullable=False),
    sa.Column('created_at', provisioning.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('licence', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_licence_account_id'), ['account_id'], unique=False)

    op.create_table('licence_member',
    sa.Column('licence_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('since', provisioning.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['licence_id'], ['licence.id'], ),
    sa.ForeignKeyConstraint(['user_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('licence_id', 'user_id'),
    sa.UniqueConstraint('user_id')
    )
    op.create_table('room_kit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('room_user_id', sa.Integer(), nullable=False),
    sa.Column('name', AutoString(length=200), nullable=False),
    sa.Column('state', AutoString(length=16), nullable=False),
    sa.Column('created_at', provisioning.db.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
    sa.ForeignKeyConstraint(['room_user_id'], ['user.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('room_kit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_room_kit_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_room_kit_room_user_id'), ['room_user_id'], unique=False)

    op.create_table('equipment_order',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('room_kit_id', sa.Integer(), nullable=True),
    sa.Column('description', AutoString(length=200), nullable=False),
    sa.Column('amount_usd', sa.Integer(), nullable=False),
    sa.Column('state', AutoString(length=16), nullable=False),
    sa.Column('ordered_at', provisioning.db.UTCDateTime(), nullable=False),
    sa.Column('purchased_at', provisioning.db.UTCDateTime(), nullable=False),
    sa.Column('tracking_number', AutoString(length=64), nullable=True),
    sa.Column('shipped_at', provisioning.db.UTCDateTime(), nullable=True),
    sa.Column('delivered_at', provisioning.db.UTCDateTime(), nullable=True),
    sa.Column('completed_at', provisioning.db.UTCDateTime(), nullable=True),
    sa.Column('installed_at', provisioning.db.UTCDateTime(), nullable=True),
    sa.Column('activated_at', provisioning.db.UTCDateTime(), nullable=True),
    sa.Column('cancelled_at', provisioning.db.UTCDateTime(), nullable=True),
    sa.Column('restocking_fee_usd', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
    sa.ForeignKeyConstraint(['room_kit_id'], ['room_kit.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('equipment_order', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_equipment_order_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_equipment_order_room_kit_id'), ['room_kit_id'], unique=False)

    op.create_table('room_kit_component',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('room_kit_id', sa.Integer(), nullable=False),
    sa.Column('roles', sa.JSON(), nullable=False),
    sa.Column('model', AutoString(length=120), nullable=False),
    sa.Column('serial', AutoString(length=64), nullable=False),
    sa.Column('replaced_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['room_kit_id'], ['room_kit.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('room_kit_component', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_room_kit_component_room_kit_id'), ['room_kit_id'], unique=False)

    op.create_table('claim',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=False),
    sa.Column('kind', AutoString(length=16), nullable=False),
    sa.Column('at', provisioning.db.UTCDateTime(), nullable=False),
    sa.Column('component_ids', sa.JSON(), nullable=False),
    sa.Column('description', AutoString(length=500), nullable=False),
    sa.Column('outcome', AutoString(length=16), nullable=False),
    sa.Column('rule_id', AutoString(length=8), nullable=False),
    sa.ForeignKeyConstraint(['order_id'], ['equipment_order.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('claim', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_claim_order_id'), ['order_id'], unique=False)

    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.add_column(sa.Column('deposit_usd', sa.Integer(), server_default=sa.text('0'), nullable=False))
        batch_op.add_column(sa.Column('allowed_prefixes', sa.JSON(), server_default=sa.text("'[]'"), nullable=False))
        batch_op.add_column(sa.Column('flex_minimum', sa.Integer(), nullable=True))

    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.add_column(sa.Column('serial', AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('transport', AutoString(length=8), server_default='udp', nullable=False))
        batch_op.add_column(sa.Column('codecs', sa.JSON(), server_default=sa.text("'[]'"), nullable=False))
        batch_op.add_column(sa.Column('ua_policy', AutoString(length=8), server_default='flag', nullable=False))
        batch_op.add_column(sa.Column('prov_ha1', AutoString(length=32), nullable=True))
        batch_op.add_column(sa.Column('suspended_at', provisioning.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('retired_at', provisioning.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('retired_mac', AutoString(length=12), nullable=True))
        batch_op.add_column(sa.Column('last_fetch_at', provisioning.db.UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column('last_fetch_file', AutoString(length=120), nullable=True))
        batch_op.add_column(sa.Column('last_fetch_ua', AutoString(length=255), nullable=True))
        batch_op.add_column(sa.Column('last_fetch_ip', AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('last_fetch_firmware', AutoString(length=64), nullable=True))
        batch_op.add_column(sa.Column('ua_mismatch', AutoString(length=255), nullable=True))
        batch_op.alter_column('hardware_profile',
               existing_type=sa.VARCHAR(length=64),
               nullable=True)
        batch_op.alter_column('kind',
               existing_type=sa.VARCHAR(length=16),
               type_=AutoString(length=24),
               existing_nullable=False)

    with op.batch_alter_table('line', schema=None) as batch_op:
        batch_op.add_column(sa.Column('password_sealed', AutoString(length=512), nullable=True))
        batch_op.add_column(sa.Column('credential_generation', sa.Integer(), server_default=sa.text('1'), nullable=False))
        batch_op.add_column(sa.Column('port', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('purpose', AutoString(length=8), server_default='voice', nullable=False))

    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.add_column(sa.Column('kind', AutoString(length=16), server_default='person', nullable=False))

    # ### end Alembic commands ###

    # #2 called desk phones "desk"; the catalog now says "desk_phone".
    op.execute("UPDATE device SET kind = 'desk_phone' WHERE kind = 'desk'")
    dialect = op.get_bind().dialect.name
    for statement in SQLITE_TRIGGERS if dialect == "sqlite" else POSTGRES_TRIGGERS if dialect == "postgresql" else ():
        op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_update")
        op.execute("DROP TRIGGER IF EXISTS audit_event_no_delete")
    elif dialect == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS audit_event_append_only ON audit_event")
        op.execute("DROP FUNCTION IF EXISTS audit_event_append_only()")
    op.execute("UPDATE device SET kind = 'desk' WHERE kind = 'desk_phone'")
    with op.batch_alter_table('user', schema=None) as batch_op:
        batch_op.drop_column('kind')

    with op.batch_alter_table('line', schema=None) as batch_op:
        batch_op.drop_column('purpose')
        batch_op.drop_column('port')
        batch_op.drop_column('credential_generation')
        batch_op.drop_column('password_sealed')

    with op.batch_alter_table('device', schema=None) as batch_op:
        batch_op.alter_column('kind',
               existing_type=AutoString(length=24),
               type_=sa.VARCHAR(length=16),
               existing_nullable=False)
        batch_op.alter_column('hardware_profile',
               existing_type=sa.VARCHAR(length=64),
               nullable=False)
        batch_op.drop_column('ua_mismatch')
        batch_op.drop_column('last_fetch_firmware')
        batch_op.drop_column('last_fetch_ip')
        batch_op.drop_column('last_fetch_ua')
        batch_op.drop_column('last_fetch_file')
        batch_op.drop_column('last_fetch_at')
        batch_op.drop_column('retired_mac')
        batch_op.drop_column('retired_at')
        batch_op.drop_column('suspended_at')
        batch_op.drop_column('prov_ha1')
        batch_op.drop_column('ua_policy')
        batch_op.drop_column('codecs')
        batch_op.drop_column('transport')
        batch_op.drop_column('serial')

    with op.batch_alter_table('account', schema=None) as batch_op:
        batch_op.drop_column('flex_minimum')
        batch_op.drop_column('allowed_prefixes')
        batch_op.drop_column('deposit_usd')

    with op.batch_alter_table('claim', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_claim_order_id'))

    op.drop_table('claim')
    with op.batch_alter_table('room_kit_component', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_room_kit_component_room_kit_id'))

    op.drop_table('room_kit_component')
    with op.batch_alter_table('equipment_order', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_equipment_order_room_kit_id'))
        batch_op.drop_index(batch_op.f('ix_equipment_order_account_id'))

    op.drop_table('equipment_order')
    with op.batch_alter_table('room_kit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_room_kit_room_user_id'))
        batch_op.drop_index(batch_op.f('ix_room_kit_account_id'))

    op.drop_table('room_kit')
    op.drop_table('licence_member')
    with op.batch_alter_table('licence', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_licence_account_id'))

    op.drop_table('licence')
    op.drop_table('idempotency_record')
    # ### end Alembic commands ###
