"""The database edge: engine, the UTC column type, migrations, and every dialect difference.

SQLite (embedded, the default) and PostgreSQL (production, several processes) differ in locking and in
``INSERT ... ON CONFLICT``; this module is the only place that knows.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import DateTime, Engine, Select, Table, create_engine, event
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.dml import Insert
from sqlalchemy.types import TypeDecorator

MIGRATIONS = Path(__file__).parent / "migrations"


class UTCDateTime(TypeDecorator[datetime]):
    """Stores aware datetimes as UTC; returns aware UTC datetimes on both dialects.

    A naive datetime is refused: every instant in Shouwang carries its zone.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the database; use an aware UTC instant")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def make_engine(url: str, echo: bool = False, pool: bool = True) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys on every connection."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    options: dict[str, Any] = {"pool_pre_ping": True}
    if pool:
        options.update(pool_size=5, max_overflow=10)
    else:
        options["poolclass"] = NullPool
    return create_engine(url, echo=echo, **options)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy issue BEGIN itself (see _sqlite_begin_immediate) instead of pysqlite's own.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def _sqlite_begin_immediate(connection: Any) -> None:
    # One writer at a time, taken at BEGIN: two processes never both read-then-write the same rows.
    # A connection asked for AUTOCOMMIT (a plain read, such as the manual clock's) takes no lock.
    if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        return
    connection.exec_driver_sql("BEGIN IMMEDIATE")


def is_postgres(engine_or_dialect: Engine | Dialect) -> bool:
    dialect = engine_or_dialect.dialect if isinstance(engine_or_dialect, Engine) else engine_or_dialect
    return dialect.name == "postgresql"


def insert_ignoring_conflicts(table: Table, dialect: Dialect, index_elements: list[str] | None = None,
                              index_where: Any = None) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` for the dialect at hand."""
    if dialect.name == "postgresql":
        return postgresql.insert(table).on_conflict_do_nothing(
            index_elements=index_elements, index_where=index_where
        )
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=index_elements, index_where=index_where)


def claim(query: Select[Any], dialect: Dialect, of: Any = None) -> Select[Any]:
    """Lock the selected rows for this transaction, skipping rows another process holds.

    PostgreSQL: ``FOR UPDATE SKIP LOCKED``. SQLite has one writer at a time (BEGIN IMMEDIATE), so the
    plain SELECT inside the write transaction is already exclusive.
    """
    if dialect.name == "postgresql":
        return query.with_for_update(skip_locked=True, of=of)
    return query


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Apply the migrations up to ``revision`` (``shouwang db upgrade``)."""
    command.upgrade(alembic_config(url), revision)
