"""ingest write path: no foreign key from events to devices; devices fillfactor 70 (PostgreSQL)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 16:20:00.000000

Autogenerate (against a SQLite database at 0003) found the dropped foreign key and rendered it without a
name; the name is given here. SQLite's was created unnamed, so its drop goes through a batch (table
copy) with a naming convention that names it. The fillfactor is a PostgreSQL storage parameter that
autogenerate does not compare (the model carries it as ``postgresql_with``); it only affects pages
written from now on, as PostgreSQL's ``ALTER TABLE ... SET (fillfactor)`` does.
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_NAMES = {"fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s"}


def _postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    if _postgres():
        op.drop_constraint('events_device_id_fkey', 'events', type_='foreignkey')
        op.execute("ALTER TABLE devices SET (fillfactor = 70)")
    else:
        with op.batch_alter_table('events', schema=None, naming_convention=SQLITE_NAMES) as batch_op:
            batch_op.drop_constraint('fk_events_device_id_devices', type_='foreignkey')


def downgrade() -> None:
    if _postgres():
        op.execute("ALTER TABLE devices RESET (fillfactor)")
        op.create_foreign_key('events_device_id_fkey', 'events', 'devices', ['device_id'], ['id'],
                              ondelete='CASCADE')
    else:
        with op.batch_alter_table('events', schema=None) as batch_op:
            batch_op.create_foreign_key('fk_events_device_id_devices', 'devices', ['device_id'], ['id'],
                                        ondelete='CASCADE')
