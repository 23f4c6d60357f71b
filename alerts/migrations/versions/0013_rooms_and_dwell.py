"""rooms of devices and dwell limits (bathroom occupied, bathroom door closed with motion inside)

Revision ID: 0013
Revises: 0009
Create Date: 2026-12-01 04:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import alerts.db

revision: str = '0013'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('room', sa.String(length=20), nullable=True))
    with op.batch_alter_table('grids', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bathroom_dwell_s', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('bathroom_door_dwell_s', sa.Integer(), nullable=True))
    with op.batch_alter_table('residents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('bathroom_dwell_s', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('bathroom_door_dwell_s', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('dwell_due_at', alerts.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_residents_dwell_due_at', ['dwell_due_at'], unique=False,
                              postgresql_where=sa.text('dwell_due_at IS NOT NULL'),
                              sqlite_where=sa.text('dwell_due_at IS NOT NULL'))


def downgrade() -> None:
    with op.batch_alter_table('residents', schema=None) as batch_op:
        batch_op.drop_index('ix_residents_dwell_due_at')
        batch_op.drop_column('dwell_due_at')
        batch_op.drop_column('bathroom_door_dwell_s')
        batch_op.drop_column('bathroom_dwell_s')
    with op.batch_alter_table('grids', schema=None) as batch_op:
        batch_op.drop_column('bathroom_door_dwell_s')
        batch_op.drop_column('bathroom_dwell_s')
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_column('room')
