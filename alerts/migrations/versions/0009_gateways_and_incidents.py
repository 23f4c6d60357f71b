"""gateways and infrastructure incidents: a gateways table, devices.gateway_id, and on alarms the incident's
scope, the "possibly infrastructure" mark, the covering incident and the family hold

Revision ID: 0009
Revises: 0010
Create Date: 2026-11-24 10:00:00.000000

SQLite cannot add a foreign key to an existing table in place, so ``devices.gateway_id`` goes through a
batch (table copy) there, with a naming convention that names the constraint; the copy drops the table's
triggers (the screen change log of 0010), so they are read before and created again after.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from alerts.db import UTCDateTime

revision: str = '0009'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def _triggers_on(table: str) -> list[str]:
    return [sql for (sql,) in op.get_bind().execute(sa.text(
        "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = :table"), {"table": table})]


def upgrade() -> None:
    op.create_table(
        'gateways',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('external_id', sa.String(length=200), nullable=False),
        sa.Column('kind', sa.String(length=20), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('community_id', sa.Integer(), nullable=True),
        sa.Column('online', sa.Boolean(), nullable=False),
        sa.Column('availability', sa.String(length=10), nullable=True),
        sa.Column('availability_at', UTCDateTime(), nullable=True),
        sa.Column('last_seen_at', UTCDateTime(), nullable=True),
        sa.Column('created_at', UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['community_id'], ['communities.id'], ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('external_id'),
    )
    if op.get_bind().dialect.name == "sqlite":
        triggers = _triggers_on("devices")  # a batch copies the table, which drops its triggers (0010's)
        with op.batch_alter_table('devices', schema=None, naming_convention=SQLITE_NAMES) as batch_op:
            batch_op.add_column(sa.Column('gateway_id', sa.Integer(), nullable=True))
            batch_op.create_foreign_key('fk_devices_gateway_id_gateways', 'gateways', ['gateway_id'], ['id'],
                                        ondelete='SET NULL')
        for statement in triggers:
            op.execute(statement)
    else:
        op.add_column('devices', sa.Column('gateway_id', sa.Integer(), nullable=True))
        op.create_foreign_key('fk_devices_gateway_id_gateways', 'devices', 'gateways', ['gateway_id'], ['id'],
                              ondelete='SET NULL')
    op.create_index('ix_devices_gateway_id', 'devices', ['gateway_id'], unique=False)
    op.add_column('alarms', sa.Column('scope', sa.JSON(none_as_null=True), nullable=True))
    op.add_column('alarms', sa.Column('possibly_infrastructure', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
    op.add_column('alarms', sa.Column('incident_id', sa.Integer(), nullable=True))
    op.add_column('alarms', sa.Column('hold_until', UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('alarms', schema=None) as batch_op:
        batch_op.drop_column('hold_until')
        batch_op.drop_column('incident_id')
        batch_op.drop_column('possibly_infrastructure')
        batch_op.drop_column('scope')
    op.drop_index('ix_devices_gateway_id', table_name='devices')
    if op.get_bind().dialect.name == "sqlite":
        triggers = _triggers_on("devices")
        with op.batch_alter_table('devices', schema=None, naming_convention=SQLITE_NAMES) as batch_op:
            batch_op.drop_constraint('fk_devices_gateway_id_gateways', type_='foreignkey')
            batch_op.drop_column('gateway_id')
        for statement in triggers:
            op.execute(statement)
    else:
        op.drop_constraint('fk_devices_gateway_id_gateways', 'devices', type_='foreignkey')
        op.drop_column('devices', 'gateway_id')
    op.drop_table('gateways')
