"""the early-warning notice: when the tick next looks whether a resident entered the early-warning stage

Revision ID: 0014
Revises: 0009
Create Date: 2026-12-01 05:00:00.000000

Existing residents are looked at by the first tick (their creation instant is in the past); the step plans
each one from there.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import alerts.db

revision: str = '0014'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('residents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('early_warning_due_at', alerts.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_residents_early_warning_due_at', ['early_warning_due_at'], unique=False,
                              postgresql_where=sa.text('early_warning_due_at IS NOT NULL'),
                              sqlite_where=sa.text('early_warning_due_at IS NOT NULL'))
    op.execute("UPDATE residents SET early_warning_due_at = created_at")


def downgrade() -> None:
    with op.batch_alter_table('residents', schema=None) as batch_op:
        batch_op.drop_index('ix_residents_early_warning_due_at')
        batch_op.drop_column('early_warning_due_at')
