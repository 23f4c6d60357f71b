"""deadline queue: residents' inactivity deadlines kept by triggers in a narrow indexed table

Revision ID: 0015
Revises: 0009
Create Date: 2026-12-01 05:00:00.000000

``residents.due_at`` stays the column every writer sets (ingest, the registry, the tick, signs of life,
transitions); it loses its index, so an update of a resident's row (every activity) can stay a HOT
update (PostgreSQL: the table's fillfactor leaves room on each page for it).

``deadlines`` holds a row per resident whose ``due_at`` is set, at that instant or earlier, indexed by
``(due_at, resident_id)``: the tick finds and claims due residents there. The triggers write it only when
a deadline appears, disappears or moves earlier; a deadline that moves later (every activity) leaves the
queue row alone, and the tick, which decides from the resident's own row, moves that row on when it
comes due (:mod:`alerts.inactivity`). So ingest's writes never touch the queue.

PostgreSQL: statement-level triggers with transition tables (one statement each for a whole UPDATE,
also ingest's batch ``UPDATE ... FROM``). SQLite: row triggers on ``UPDATE OF due_at``.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from alerts.db import UTCDateTime

revision: str = '0015'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PG_FUNCTIONS = """
CREATE FUNCTION shouwang_deadlines_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO deadlines (resident_id, due_at) SELECT id, due_at FROM new_rows WHERE due_at IS NOT NULL;
  RETURN NULL;
END $$;

CREATE FUNCTION shouwang_deadlines_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  DELETE FROM deadlines d USING new_rows n JOIN old_rows o ON o.id = n.id
   WHERE d.resident_id = n.id AND n.due_at IS NULL AND o.due_at IS NOT NULL;
  INSERT INTO deadlines (resident_id, due_at)
    SELECT n.id, n.due_at FROM new_rows n JOIN old_rows o ON o.id = n.id
     WHERE n.due_at IS NOT NULL AND (o.due_at IS NULL OR n.due_at < o.due_at)
  ON CONFLICT (resident_id) DO UPDATE SET due_at = EXCLUDED.due_at WHERE deadlines.due_at > EXCLUDED.due_at;
  RETURN NULL;
END $$;
"""

PG_TRIGGERS = [
    ("insert", "INSERT", "REFERENCING NEW TABLE AS new_rows", "shouwang_deadlines_inserted"),
    ("update", "UPDATE", "REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows", "shouwang_deadlines_updated"),
]

SQLITE_TRIGGERS = {
    "insert": "AFTER INSERT ON residents WHEN NEW.due_at IS NOT NULL "
              "BEGIN INSERT INTO deadlines (resident_id, due_at) VALUES (NEW.id, NEW.due_at); END",
    "set": "AFTER UPDATE OF due_at ON residents "
           "WHEN NEW.due_at IS NOT NULL AND (OLD.due_at IS NULL OR NEW.due_at < OLD.due_at) "
           "BEGIN INSERT OR REPLACE INTO deadlines (resident_id, due_at) SELECT NEW.id, NEW.due_at "
           "WHERE NOT EXISTS (SELECT 1 FROM deadlines WHERE resident_id = NEW.id AND due_at <= NEW.due_at); END",
    "clear": "AFTER UPDATE OF due_at ON residents WHEN NEW.due_at IS NULL "
             "BEGIN DELETE FROM deadlines WHERE resident_id = NEW.id; END",
}


def upgrade() -> None:
    op.create_table(
        'deadlines',
        sa.Column('resident_id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('due_at', UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['resident_id'], ['residents.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('resident_id'),
    )
    op.create_index('ix_deadlines_due_at', 'deadlines', ['due_at', 'resident_id'], unique=False)
    op.execute("INSERT INTO deadlines (resident_id, due_at) SELECT id, due_at FROM residents WHERE due_at IS NOT NULL")
    op.drop_index('ix_residents_due_at', table_name='residents')  # no batch: a rebuilt table loses its triggers
    if op.get_bind().dialect.name == "postgresql":
        # room on each page for the new version of a row updated in place (a HOT update: no index entry)
        op.execute("ALTER TABLE residents SET (fillfactor = 80)")
        # a queue: its head is rewritten all day; vacuumed often (cheap, it is narrow), so a scan from the
        # head does not wade through dead index entries
        op.execute("ALTER TABLE deadlines SET (autovacuum_vacuum_scale_factor = 0.01, "
                   "autovacuum_analyze_scale_factor = 0.02)")
        op.execute(PG_FUNCTIONS)
        for name, event, referencing, function in PG_TRIGGERS:
            op.execute(f"CREATE TRIGGER shouwang_deadlines_{name} AFTER {event} ON residents {referencing} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()")
    else:
        for name, body in SQLITE_TRIGGERS.items():
            op.execute(f"CREATE TRIGGER shouwang_deadlines_{name} {body}")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, _, _, _ in PG_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS shouwang_deadlines_{name} ON residents")
        for function in ("shouwang_deadlines_inserted()", "shouwang_deadlines_updated()"):
            op.execute(f"DROP FUNCTION IF EXISTS {function}")
        op.execute("ALTER TABLE residents RESET (fillfactor)")
    else:
        for name in SQLITE_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS shouwang_deadlines_{name}")
    op.create_index('ix_residents_due_at', 'residents', ['due_at'], unique=False,
                    postgresql_where=sa.text('due_at IS NOT NULL'), sqlite_where=sa.text('due_at IS NOT NULL'))
    op.drop_index('ix_deadlines_due_at', table_name='deadlines')
    op.drop_table('deadlines')
