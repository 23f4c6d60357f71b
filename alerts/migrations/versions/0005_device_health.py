"""device health: clock skew counted per device; the quarantine's overflow counted per hour and source

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 02:00:00.000000

``devices.clock_skew_count`` / ``last_clock_skew_at``: reports whose device time was too far ahead (SPEC
section 2). ``quarantine_overflow``: what the capped quarantine only counted. The new alarm kind
``clock_skew`` is a value of a string column: no DDL.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import alerts.db

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.add_column(sa.Column('clock_skew_count', sa.Integer(), server_default=sa.text('0'), nullable=False))
        batch_op.add_column(sa.Column('last_clock_skew_at', alerts.db.UTCDateTime(timezone=True), nullable=True))
    op.create_table(
        'quarantine_overflow',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('hour', alerts.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('source', sa.String(length=300), nullable=False),
        sa.Column('reason', sa.String(length=40), nullable=False),
        sa.Column('dropped', sa.BigInteger(), nullable=False),
        sa.Column('dropped_bytes', sa.BigInteger(), nullable=False),
        sa.Column('last_at', alerts.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('hour', 'source', 'reason', name='uq_quarantine_overflow_hour_source'),
    )
    with op.batch_alter_table('quarantine_overflow', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_quarantine_overflow_hour'), ['hour'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('quarantine_overflow', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_quarantine_overflow_hour'))
    op.drop_table('quarantine_overflow')
    with op.batch_alter_table('devices', schema=None) as batch_op:
        batch_op.drop_column('last_clock_skew_at')
        batch_op.drop_column('clock_skew_count')
