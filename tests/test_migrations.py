"""Migrations upgrade an empty SQLite and PostgreSQL database to head, and match the models."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from alerts.db import make_engine
from alerts.models import Base


def test_migrations_reach_head_and_match_the_models(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as connection:
            tables = set(inspect(connection).get_table_names())
            assert set(Base.metadata.tables) <= tables
            context = MigrationContext.configure(connection)
            assert context.get_current_revision() is not None
            diff = compare_metadata(context, Base.metadata)
            assert diff == [], diff
    finally:
        engine.dispose()
