"""earlier detection: time-window rules, learned rhythms, signs of life from outside the home

Revision ID: 0012
Revises: 0006
Create Date: 2026-12-01 02:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import alerts.db

revision: str = '0012'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('grids', schema=None) as batch_op:
        batch_op.add_column(sa.Column('routine_window', sa.String(length=11), nullable=True))
    with op.batch_alter_table('residents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('routine_window', sa.String(length=11), nullable=True))
        batch_op.add_column(sa.Column('routine_due_at', alerts.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('rhythm', sa.JSON(none_as_null=True), nullable=True))
        batch_op.add_column(sa.Column('rhythm_due_at', alerts.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_residents_routine_due_at', ['routine_due_at'], unique=False,
                              postgresql_where=sa.text('routine_due_at IS NOT NULL'),
                              sqlite_where=sa.text('routine_due_at IS NOT NULL'))
        batch_op.create_index('ix_residents_rhythm_due_at', ['rhythm_due_at'], unique=False,
                              postgresql_where=sa.text('rhythm_due_at IS NOT NULL'),
                              sqlite_where=sa.text('rhythm_due_at IS NOT NULL'))
    op.create_table('signs_of_life',
                    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True,
                              nullable=False),
                    sa.Column('resident_id', sa.Integer(), nullable=False),
                    sa.Column('at', alerts.db.UTCDateTime(timezone=True), nullable=False),
                    sa.Column('source', sa.String(length=20), nullable=False),
                    sa.Column('note', sa.Text(), nullable=True),
                    sa.Column('recorded_at', alerts.db.UTCDateTime(timezone=True), nullable=False),
                    sa.Column('recorded_by', sa.String(length=200), nullable=False),
                    sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], ondelete='CASCADE'),
                    sa.PrimaryKeyConstraint('id'))
    with op.batch_alter_table('signs_of_life', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_signs_of_life_resident_id'), ['resident_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('signs_of_life', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_signs_of_life_resident_id'))
    op.drop_table('signs_of_life')
    with op.batch_alter_table('residents', schema=None) as batch_op:
        batch_op.drop_index('ix_residents_rhythm_due_at')
        batch_op.drop_index('ix_residents_routine_due_at')
        batch_op.drop_column('rhythm_due_at')
        batch_op.drop_column('rhythm')
        batch_op.drop_column('routine_due_at')
        batch_op.drop_column('routine_window')
    with op.batch_alter_table('grids', schema=None) as batch_op:
        batch_op.drop_column('routine_window')
