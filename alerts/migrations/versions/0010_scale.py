"""screen changes: a change log written by triggers, read by each process's screen model

Revision ID: 0010
Revises: 0007
Create Date: 2026-11-24 10:00:00.000000

PostgreSQL: statement-level triggers with transition tables (one INSERT ... SELECT per statement, also
for ingest's batch UPDATE ... FROM), and ``pg_notify('shouwang_screen', '')`` once per transaction.
SQLite: row triggers; the screen model polls the cursor.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# the resident columns a screen shows or derives a marker from
RESIDENT_COLUMNS = ("name", "latitude", "longitude", "micro_grid_id", "last_activity_at", "watch_from",
                    "away_until", "away_until_activity", "inactivity_window_s", "early_warning_s")

PG_FUNCTIONS = f"""
CREATE FUNCTION shouwang_screen_notify(inserted bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF inserted > 0 THEN PERFORM pg_notify('shouwang_screen', ''); END IF;
END $$;

CREATE FUNCTION shouwang_screen_residents() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO screen_changes (resident_id) SELECT id FROM new_rows;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO screen_changes (resident_id) SELECT id FROM old_rows;
  ELSE
    INSERT INTO screen_changes (resident_id) SELECT n.id FROM new_rows n JOIN old_rows o ON o.id = n.id
     WHERE ({', '.join('n.' + c for c in RESIDENT_COLUMNS)}) IS DISTINCT FROM
           ({', '.join('o.' + c for c in RESIDENT_COLUMNS)});
  END IF;
  GET DIAGNOSTICS n = ROW_COUNT;
  PERFORM shouwang_screen_notify(n);
  RETURN NULL;
END $$;

CREATE FUNCTION shouwang_screen_devices() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO screen_changes (resident_id) SELECT DISTINCT resident_id FROM new_rows WHERE resident_id IS NOT NULL;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO screen_changes (resident_id) SELECT DISTINCT resident_id FROM old_rows WHERE resident_id IS NOT NULL;
  ELSE
    INSERT INTO screen_changes (resident_id)
      SELECT DISTINCT r FROM new_rows n JOIN old_rows o ON o.id = n.id,
             LATERAL (VALUES (n.resident_id), (o.resident_id)) AS v(r)
      WHERE r IS NOT NULL AND (n.online, n.resident_id) IS DISTINCT FROM (o.online, o.resident_id);
  END IF;
  GET DIAGNOSTICS n = ROW_COUNT;
  PERFORM shouwang_screen_notify(n);
  RETURN NULL;
END $$;

CREATE FUNCTION shouwang_screen_transitions() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE n bigint;
BEGIN
  INSERT INTO screen_changes (resident_id, alarm_id)
    SELECT a.resident_id, a.id FROM alarms a WHERE a.id IN (SELECT alarm_id FROM new_rows);
  GET DIAGNOSTICS n = ROW_COUNT;
  PERFORM shouwang_screen_notify(n);
  RETURN NULL;
END $$;
"""

PG_TRIGGERS = [
    ("residents", "INSERT", "REFERENCING NEW TABLE AS new_rows", "shouwang_screen_residents"),
    ("residents", "UPDATE", "REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows", "shouwang_screen_residents"),
    ("residents", "DELETE", "REFERENCING OLD TABLE AS old_rows", "shouwang_screen_residents"),
    ("devices", "INSERT", "REFERENCING NEW TABLE AS new_rows", "shouwang_screen_devices"),
    ("devices", "UPDATE", "REFERENCING NEW TABLE AS new_rows OLD TABLE AS old_rows", "shouwang_screen_devices"),
    ("devices", "DELETE", "REFERENCING OLD TABLE AS old_rows", "shouwang_screen_devices"),
    ("alarm_transitions", "INSERT", "REFERENCING NEW TABLE AS new_rows", "shouwang_screen_transitions"),
]

SQLITE_TRIGGERS = [
    "CREATE TRIGGER shouwang_screen_residents_insert AFTER INSERT ON residents "
    "BEGIN INSERT INTO screen_changes (resident_id) VALUES (NEW.id); END",
    f"CREATE TRIGGER shouwang_screen_residents_update AFTER UPDATE OF {', '.join(RESIDENT_COLUMNS)} ON residents "
    "BEGIN INSERT INTO screen_changes (resident_id) VALUES (NEW.id); END",
    "CREATE TRIGGER shouwang_screen_residents_delete AFTER DELETE ON residents "
    "BEGIN INSERT INTO screen_changes (resident_id) VALUES (OLD.id); END",
    "CREATE TRIGGER shouwang_screen_devices_insert AFTER INSERT ON devices WHEN NEW.resident_id IS NOT NULL "
    "BEGIN INSERT INTO screen_changes (resident_id) VALUES (NEW.resident_id); END",
    "CREATE TRIGGER shouwang_screen_devices_update AFTER UPDATE OF online, resident_id ON devices "
    "BEGIN INSERT INTO screen_changes (resident_id) SELECT NEW.resident_id WHERE NEW.resident_id IS NOT NULL; "
    "INSERT INTO screen_changes (resident_id) SELECT OLD.resident_id "
    "WHERE OLD.resident_id IS NOT NULL AND OLD.resident_id IS NOT NEW.resident_id; END",
    "CREATE TRIGGER shouwang_screen_devices_delete AFTER DELETE ON devices WHEN OLD.resident_id IS NOT NULL "
    "BEGIN INSERT INTO screen_changes (resident_id) VALUES (OLD.resident_id); END",
    "CREATE TRIGGER shouwang_screen_transitions_insert AFTER INSERT ON alarm_transitions "
    "BEGIN INSERT INTO screen_changes (resident_id, alarm_id) "
    "SELECT resident_id, id FROM alarms WHERE id = NEW.alarm_id; END",
]
SQLITE_NAMES = ["residents_insert", "residents_update", "residents_delete", "devices_insert", "devices_update",
                "devices_delete", "transitions_insert"]


def upgrade() -> None:
    op.create_table(
        'screen_changes',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
        sa.Column('resident_id', sa.Integer(), nullable=True),
        sa.Column('alarm_id', sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_FUNCTIONS)
        for table, event, referencing, function in PG_TRIGGERS:
            op.execute(f"CREATE TRIGGER shouwang_screen_{table}_{event.lower()} AFTER {event} ON {table} "
                       f"{referencing} FOR EACH STATEMENT EXECUTE FUNCTION {function}()")
    else:
        for statement in SQLITE_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table, event, _, _ in PG_TRIGGERS:
            op.execute(f"DROP TRIGGER IF EXISTS shouwang_screen_{table}_{event.lower()} ON {table}")
        for function in ("shouwang_screen_residents()", "shouwang_screen_devices()", "shouwang_screen_transitions()",
                         "shouwang_screen_notify(bigint)"):
            op.execute(f"DROP FUNCTION IF EXISTS {function}")
    else:
        for name in SQLITE_NAMES:
            op.execute(f"DROP TRIGGER IF EXISTS shouwang_screen_{name}")
    op.drop_table('screen_changes')
