"""auth hardening: sign-in failures per account and source, seen webhook ids, link-scoped sessions

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 01:40:00.000000

``sign_in_failures`` counts failed sign-ins per (account, client address) atomically, with a back-off
lock; ``webhook_receipts`` holds the provider ids already handled (an SMS's MessageSid, a call's CallSid
and digits) so a replayed webhook changes nothing; ``api_tokens.alarm_id`` limits a session opened by an
SMS link to that one alarm.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import alerts.db

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'sign_in_failures',
        sa.Column('account', sa.String(length=150), nullable=False),
        sa.Column('source', sa.String(length=64), nullable=False),
        sa.Column('failures', sa.Integer(), server_default='0', nullable=False),
        sa.Column('lockouts', sa.Integer(), server_default='0', nullable=False),
        sa.Column('locked_until', alerts.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('account', 'source'),
    )
    op.create_table(
        'webhook_receipts',
        sa.Column('key', sa.String(length=200), nullable=False),
        sa.Column('received_at', alerts.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('key'),
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.add_column(sa.Column('alarm_id', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_column('alarm_id')
    op.drop_table('webhook_receipts')
    op.drop_table('sign_in_failures')
