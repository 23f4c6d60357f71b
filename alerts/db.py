"""The database edge: engine, the UTC column type, migrations, and every dialect difference.

SQLite (embedded, the default) and PostgreSQL (production, several processes) differ in locking and in
``INSERT ... ON CONFLICT``; this module is the only place that knows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVarTuple, cast

import orjson
from alembic import command
from alembic.config import Config
from sqlalchemy import (
    BigInteger,
    Boolean,
    ColumnElement,
    DateTime,
    Engine,
    Integer,
    LargeBinary,
    Select,
    String,
    Table,
    any_,
    bindparam,
    column,
    create_engine,
    event,
    insert,
    table,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import CursorResult, Dialect
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.dml import Delete, Insert, Update
from sqlalchemy.types import TypeDecorator, TypeEngine

MIGRATIONS = Path(__file__).parent / "migrations"

Ts = TypeVarTuple("Ts")
log = logging.getLogger(__name__)


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
    """An engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys on every connection.

    ``hide_parameters``: an error (and its log line) shows the statement, never its parameters, which hold
    personal data (names, phone numbers, addresses)."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, hide_parameters=True,
                               connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin_immediate)
        return engine
    # a database that does not answer is known within seconds, not after the kernel's TCP timeout
    options: dict[str, Any] = {"pool_pre_ping": True, "hide_parameters": True, "connect_args": {"connect_timeout": 3}}
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


def insert_for(dialect: Dialect) -> Callable[[Any], Any]:
    """The dialect's own ``insert`` (PostgreSQL or SQLite), the one with ``ON CONFLICT`` clauses."""
    return postgresql.insert if dialect.name == "postgresql" else sqlite.insert


def insert_ignoring_conflicts(table: Table, dialect: Dialect, index_elements: list[str] | None = None,
                              index_where: Any = None) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` for the dialect at hand."""
    statement: Insert = insert_for(dialect)(table).on_conflict_do_nothing(
        index_elements=index_elements, index_where=index_where)
    return statement


def one_of(col: Any, values: Sequence[Any] | set[Any], dialect: Dialect, name: str) -> ColumnElement[bool]:
    """``col IN (...)``. PostgreSQL: ``col = ANY(:name)`` with one array parameter, so a statement over
    a thousand values is compiled once and sent as one parameter."""
    if dialect.name == "postgresql":
        return col == any_(bindparam(name, list(values), type_=postgresql.ARRAY(col.type)))
    return col.in_(values)


# -- batch writes ---------------------------------------------------------------------------------------
# PostgreSQL writes a batch of rows with COPY (into the table, or into a temporary staging table of the
# connection followed by one INSERT ... SELECT or UPDATE ... FROM); SQLite keeps one executemany
# statement per batch (one writer at a time, in-process).


def _sql(session: Session, statement: str) -> Any:
    """Run driver SQL in the session's transaction, errors wrapped as for any SQLAlchemy statement."""
    return session.connection().exec_driver_sql(statement)


def _binary_type(type_: TypeEngine[Any]) -> str:
    """The PostgreSQL type whose binary form COPY sends for a column of ``type_``."""
    if isinstance(type_, TypeDecorator):
        type_ = type_.impl_instance
    if isinstance(type_, BigInteger):
        return "int8"
    if isinstance(type_, Integer):
        return "int4"
    if isinstance(type_, Boolean):
        return "bool"
    if isinstance(type_, DateTime):
        return "timestamptz" if type_.timezone else "timestamp"
    if isinstance(type_, LargeBinary):
        return "bytea"
    if isinstance(type_, String):
        return "varchar"
    raise TypeError(f"no binary COPY type for {type_!r}")


def _copy(session: Session, table: str, columns: Mapping[str, TypeEngine[Any]],
          rows: Sequence[Sequence[Any]]) -> None:
    """``COPY table (columns) FROM STDIN (FORMAT BINARY)`` on the session's psycopg connection, inside its
    transaction. Binary: psycopg's C dumpers write each value (text COPY formats every value in Python).

    A driver error is raised as the matching SQLAlchemy exception (``OperationalError`` for a lost
    connection or a deadlock, ...), as any other statement's, so callers' retries see it.
    """
    dialect = session.get_bind().dialect
    statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
    driver = session.connection().connection.driver_connection
    assert driver is not None, "COPY needs a live driver connection"
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            copy.set_types([_binary_type(type_) for type_ in columns.values()])
            for row in rows:
                copy.write_row(row)
    except dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(statement, None, exc, dialect.loaded_dbapi.Error, dialect=dialect) from exc


def json_rows(types: Mapping[str, TypeEngine[Any]], rows: Sequence[Sequence[Any]], name: str) -> tuple[str, str]:
    """PostgreSQL: ``rows`` (tuples in the order of ``types``' columns) as one parameter, ``name``, and the
    SELECT that reads them back as rows with those column names. The rows travel as one JSON array of arrays
    (orjson writes it in C, PostgreSQL reads it as ``jsonb``): the cheapest way found to send a thousand
    rows inside a statement (psycopg builds array parameters value by value in Python, and a COPY into a
    staging table costs round trips of its own). The values are cast to the unbounded types, so a value too
    long for its column fails as an INSERT of it would. A naive date and time is refused, as
    :class:`UTCDateTime` refuses it."""
    _check_aware(rows, list(types.values()))
    columns = ", ".join(f"(e->>{index})::{_binary_type(type_)} AS {column}"
                        for index, (column, type_) in enumerate(types.items()))
    return orjson.dumps(rows).decode(), f"SELECT {columns} FROM jsonb_array_elements(%({name})s::jsonb) AS e"


def driver_rows(session: Session, statement: str, params: Mapping[str, Any] | Sequence[Any] = ()) -> list[Any]:
    """PostgreSQL: run ``statement`` (psycopg placeholders) on the session's driver connection, inside its
    transaction, and return its rows as plain tuples: none of SQLAlchemy's per-statement and per-row work,
    for the ingest's hot statements (psycopg prepares a statement it sees repeatedly). A driver error is
    raised as the matching SQLAlchemy exception, as for any other statement."""
    dialect = session.get_bind().dialect
    driver = session.connection().connection.driver_connection
    assert driver is not None, "a statement needs a live driver connection"
    try:
        with driver.cursor() as cursor:
            cursor.execute(statement, params)
            return cursor.fetchall() if cursor.description is not None else []
    except dialect.loaded_dbapi.Error as exc:
        raise DBAPIError.instance(statement, None, exc, dialect.loaded_dbapi.Error, dialect=dialect) from exc


def _check_aware(rows: Sequence[Sequence[Any]], types: Sequence[TypeEngine[Any]]) -> None:
    """What UTCDateTime refuses on the way in, COPY refuses too: a naive datetime in a column of ``types``
    that is a date and time (the other columns are not looked at)."""
    for index, type_ in enumerate(types):
        if isinstance(type_, TypeDecorator):
            type_ = type_.impl_instance
        if not isinstance(type_, DateTime):
            continue
        for row in rows:
            value = row[index]
            if value is not None and value.tzinfo is None:
                raise ValueError(f"naive datetime {value!r} given to the database; use an aware UTC instant")


def insert_rows(session: Session, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Insert ``rows`` (tuples in the order of ``columns``). PostgreSQL: one COPY."""
    if not rows:
        return
    if session.get_bind().dialect.name == "postgresql":
        types = {name: table.c[name].type for name in columns}
        _check_aware(rows, list(types.values()))
        _copy(session, table.name, types, rows)
        return
    session.execute(insert(table), [dict(zip(columns, row, strict=True)) for row in rows])


def insert_rows_ignoring_conflicts(session: Session, table: Table, columns: Sequence[str],
                                   rows: Sequence[Sequence[Any]], index_elements: list[str], index_where: Any,
                                   returning: Sequence[str]) -> list[tuple[Any, ...]]:
    """``INSERT ... ON CONFLICT DO NOTHING RETURNING``: returns ``returning`` of the rows inserted.

    PostgreSQL: the rows are COPied into a temporary staging table (emptied at commit, and by the
    statement itself), then moved with one ``INSERT ... SELECT ... ON CONFLICT DO NOTHING``.
    """
    if not rows:
        return []
    dialect = session.get_bind().dialect
    if dialect.name != "postgresql":
        statement = insert_ignoring_conflicts(table, dialect, index_elements, index_where).returning(
            *(table.c[name] for name in returning))
        params = [dict(zip(columns, row, strict=True)) for row in rows]
        return [tuple(r) for r in session.execute(statement, params).all()]
    types = {name: table.c[name].type for name in columns}
    _check_aware(rows, list(types.values()))
    stage = f"shouwang_stage_{table.name}"
    where = index_where.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
    names = ", ".join(columns)
    _stage(session, stage, {name: type_.compile(dialect=dialect) for name, type_ in types.items()})
    _copy(session, stage, types, rows)
    result = _sql(session,
        f"WITH staged AS (DELETE FROM {stage} RETURNING {names}) "
        f"INSERT INTO {table.name} ({names}) SELECT {names} FROM staged "
        f"ON CONFLICT ({', '.join(index_elements)}) WHERE {where} DO NOTHING "
        f"RETURNING {', '.join(returning)}"
    )
    return [tuple(r) for r in result.all()]


def _stage(session: Session, name: str, columns: Mapping[str, str]) -> None:
    """A temporary table of this connection (created on first use), emptied at every commit."""
    types = ", ".join(f"{key} {type_}" for key, type_ in columns.items())
    _sql(session, f"CREATE TEMPORARY TABLE IF NOT EXISTS {name} ({types}) ON COMMIT DELETE ROWS")


class BatchParameters:
    """The parameters of one batch statement: ``ref(name)`` stands for a value of the current row.

    SQLite: bind parameters, the statement runs once per row (executemany). PostgreSQL: the rows are
    COPied into a temporary staging table, ``ref(name)`` is its column and the statement runs once
    (``UPDATE ... FROM`` the staging table).
    """

    def __init__(self, dialect: Dialect, name: str, columns: Mapping[str, TypeEngine[Any]]) -> None:
        self.dialect = dialect
        self.bulk = dialect.name == "postgresql"
        self.columns = dict(columns)
        self.stage_name = f"shouwang_stage_{name}"
        self.stage = table(self.stage_name, *(column(key, type_) for key, type_ in self.columns.items()))

    def ref(self, name: str) -> Any:
        if self.bulk:
            return self.stage.c[name]
        return bindparam(name, type_=self.columns[name])

    def execute(self, session: Session, statement: Update, rows: Sequence[Sequence[Any]], target: Table,
                key: str, locked: bool = False) -> None:
        """Run ``statement`` for ``rows`` (tuples in the order of the columns). PostgreSQL first locks the
        target rows (``target``'s primary key equals the ``key`` parameter) in key order, so two
        processes updating overlapping sets of rows never deadlock. The lock is ``FOR NO KEY UPDATE``,
        the one an UPDATE of non-key columns takes: it does not conflict with the ``KEY SHARE`` locks
        that foreign-key checks (an event inserted for a device) take, in whatever order, on the same
        rows. ``locked``: the caller's transaction already holds that lock on every row (taken in key
        order), so it is not taken again."""
        if not rows:
            return
        names = list(self.columns)
        if not self.bulk:
            session.connection().execute(statement, [dict(zip(names, row, strict=True)) for row in rows])
            return
        _check_aware(rows, list(self.columns.values()))
        pk = next(iter(target.primary_key.columns)).name
        _stage(session, self.stage_name, {n: t.compile(dialect=self.dialect) for n, t in self.columns.items()})
        _copy(session, self.stage_name, self.columns, rows)
        if not locked:
            _sql(session, f"SELECT count(*) FROM (SELECT 1 FROM {target.name} WHERE {pk} IN "
                          f"(SELECT {key} FROM {self.stage_name}) ORDER BY {pk} FOR NO KEY UPDATE) AS locked")
        session.connection().execute(statement)
        _sql(session, f"DELETE FROM {self.stage_name}")


def guarded(session: Session, what: str, row_id: int, step: Callable[[], Any],
            push_back: Callable[[], Any] | None = None) -> None:
    """Run one row's rule step under its own savepoint (healthchecks' ``handle_going_down``): a row that
    raises is rolled back alone, logged with its id and pushed back a little; the other rows go on."""
    try:
        with session.begin_nested():
            step()
    except Exception:
        log.exception("rule step failed for one row; the others go on", extra={"row": what, "id": row_id})
        if push_back is not None:
            push_back()


def changed(session: Session, statement: Update | Delete | Insert) -> int:
    """Execute an UPDATE, DELETE or INSERT ... ON CONFLICT DO NOTHING; how many rows it changed (the
    conditional-UPDATE claim's answer, or whether the insert won)."""
    return cast(CursorResult[Any], session.execute(statement)).rowcount


def claim(query: Select[*Ts], dialect: Dialect, of: Any = None) -> Select[*Ts]:
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
