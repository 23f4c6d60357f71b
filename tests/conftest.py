"""Fixtures: real SQLite and PostgreSQL (one fixture parameterised over both), real Mosquitto."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from alerts import rules
from alerts.db import make_engine, upgrade
from alerts.models import Base
from alerts.recording import IngestPolicy
from alerts.service import WatchPolicy
from config.settings import Settings, load_settings

PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)

_pg_ready = False


def _reset_postgres() -> None:
    global _pg_ready
    engine = make_engine(PG_URL, pool=False)
    with engine.begin() as conn:
        if not _pg_ready:
            conn.execute(text("DROP SCHEMA public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
        else:
            names = ", ".join(t.name for t in Base.metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()
    if not _pg_ready:
        upgrade(PG_URL)
        _pg_ready = True


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: a fresh SQLite file, or the PostgreSQL test database emptied."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'shouwang.db'}"
        upgrade(url)
        return url
    _reset_postgres()
    return PG_URL


@pytest.fixture
def pg_url() -> str:
    _reset_postgres()
    return PG_URL


@pytest.fixture
def engine(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def limits() -> rules.Limits:
    return rules.Limits(window=timedelta(hours=14), early_warning=timedelta(hours=10))


@pytest.fixture
def watch_policy(limits: rules.Limits) -> WatchPolicy:
    return WatchPolicy(
        limits=limits,
        device_limits=rules.DeviceLimits(offline_after=timedelta(hours=2), offline_grace=timedelta(minutes=10),
                                         low_battery_percent=15),
        broker_down_after=timedelta(seconds=60), event_retention=timedelta(days=90),
        zone=Settings().tz,
    )


@pytest.fixture
def ingest_policy(watch_policy: WatchPolicy) -> IngestPolicy:
    return IngestPolicy(limits=watch_policy.limits, device_limits=watch_policy.device_limits,
                        clock_skew=timedelta(minutes=5), redelivery_window=timedelta(days=1))


@pytest.fixture
def topic_base() -> str:
    """A topic prefix of this test's own, so tests sharing the machine's broker never see each other."""
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def service_settings(db_url: str, topic_base: str) -> Settings:
    """Settings for a whole service on the machine's Mosquitto (127.0.0.1:1883) and the test's database,
    on the manual clock, listening only to this test's topics."""
    return load_settings(
        database={"url": db_url},
        mqtt={"url": "mqtt://127.0.0.1:1883", "protocol": "5", "client_id": f"{topic_base}-svc",
              "share_group": "", "session_expiry": "120s", "batch_wait": "10ms",
              "routes": [{"topic": f"{topic_base}/events/#", "format": "native"},
                         {"topic": f"{topic_base}/z2m/#", "format": "zigbee2mqtt"}]},
        clock={"mode": "manual", "start": T0.isoformat()},
        rules={"tick": "0.1s"},
    )
