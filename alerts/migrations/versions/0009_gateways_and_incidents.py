"""gateways and infrastructure incidents: a gateways table, devices.gateway_id, and on alarms the incident's
scope, the "possibly infrastructure" mark, the covering incident and the family hold

Revision ID: 0009
Revises: 0007
Create Date: 2026-11-24 10:00:00.000000

SQLite cannot add a foreign key to an existing table in place, so ``devices.gateway_id`` goes through a
batch (table copy) there, with a naming convention that names the constraint.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from alerts.db import UTCDateTime

revision: str = '0009'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


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
    with op.batch_alter_table('devices', schema=None, naming_convention=SQLITE_NAMES) as batch_op:
        batch_op.add_column(sa.Column('gateway_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_devices_gateway_id'), ['gateway_id'], unique=False)
        batch_op.create_foreign_key('fk_devices_gateway_id_gateways', 'gateways', ['gateway_id'], ['id'],
                                    ondelete='SET NULL')
    with op.batch_alter_table('alarms', schema=None) as batch_op:
        batch_op.add_column(sa.Column('scope', sa.JSON(none_as_null=True), nullable=True))
        batch_op.add_column(sa.Column('possibly_infrastructure', sa.Boolean(), server_default=sa.false(),
                                      nullable=False))
        batch_op.add_column(sa.Column('incident_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('hold_until', UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('alarms', schema=None) as batch_op:
        batch_op.drop_column('hold_until')
        batch_op.drop_column('incident_id')
        batch_op.drop_column('possibly_infrastructure')
        batch_op.drop_column('scope')
    with op.batch_alter_table('devices', schema=None, naming_convention=SQLITE_NAMES) as batch_op:
        batch_op.drop_constraint('fk_devices_gateway_id_gateways', type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_devices_gateway_id'))
        batch_op.drop_column('gateway_id')
    op.drop_table('gateways')
