"""alarm reason codes: the reason of an alarm as a code and parameters, worded in the reader's language

Revision ID: 0007
Revises: 0008
Create Date: 2026-12-01 01:30:00.000000

``reason`` stays: the text in the configured language when the alarm opened (the SMS and the spoken
call read it; alarms from before this revision have only it).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('alarms', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reason_code', sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column('reason_params', sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('alarms', schema=None) as batch_op:
        batch_op.drop_column('reason_params')
        batch_op.drop_column('reason_code')
