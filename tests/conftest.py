"""Fixtures of the one test harness (tests/harness.py): real SQLite and PostgreSQL (``db_url`` is parameterised
over both), the manual clock, the policies a process derives from its settings (through ``api.runtime``), a
whole in-process Shouwang (``make_site``), rows built to measure (``make_*``), real Mosquitto topics."""

from __future__ import annotations

import dataclasses
import itertools
import os
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from alerts import rules
from alerts.alarms import open_alarm
from alerts.clock import ManualClock
from alerts.db import make_engine, upgrade
from alerts.limits import refresh_due
from alerts.models import Alarm, AlarmKind, Base, Community, Contact, Device, Grid, MicroGrid, Resident, Worker
from alerts.recording import IngestPolicy
from alerts.service import WatchPolicy
from api import accounts
from api import runtime as api_runtime
from config.settings import Settings, load_settings
from tests.fake_twilio import FakeTwilio
from tests.harness import T0, Site, Store, app_settings, manual_clock, sqlite_database
from tests.pages import CHROMIUM, CHROMIUM_ARGS, screen_site

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Playwright

__all__ = ["T0"]  # tests import T0 from here as well as from tests.harness

PG_URL = os.environ.get("TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")

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


# -- the database and the clock ----------------------------------------------------------------------------
@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty database: a fresh SQLite file, or the PostgreSQL test database emptied."""
    if request.param == "sqlite":
        return sqlite_database(tmp_path)
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
def clock(engine: Engine) -> ManualClock:
    """The database's manual clock, at T0."""
    return manual_clock(engine)


# -- the policies, as a process derives them from its settings ---------------------------------------------
@pytest.fixture
def default_settings() -> Settings:
    """The shipped defaults (a 14 h window, a 10 h early warning, devices silent 2 h are offline, ...)."""
    return Settings()


@pytest.fixture
def limits(default_settings: Settings) -> rules.Limits:
    return api_runtime.watch_policy(default_settings).limits


@pytest.fixture
def watch_policy(default_settings: Settings, limits: rules.Limits) -> WatchPolicy:
    return dataclasses.replace(api_runtime.watch_policy(default_settings), limits=limits)


@pytest.fixture
def ingest_policy(default_settings: Settings, watch_policy: WatchPolicy) -> IngestPolicy:
    return dataclasses.replace(api_runtime.ingest_policy(default_settings), limits=watch_policy.limits,
                               device_limits=watch_policy.device_limits)


@pytest.fixture
def store(engine: Engine, watch_policy: WatchPolicy, ingest_policy: IngestPolicy) -> Store:
    """The test's database driven at chosen instants with these policies, without a process."""
    return Store(engine, watch_policy, ingest_policy)


# -- a whole Shouwang in-process ---------------------------------------------------------------------------
@pytest.fixture
def make_site(db_url: str) -> Iterator[Callable[..., Site]]:
    """``make_site(settings=None, *, community=None, ingest=False, process="main", start=T0, script=None,
    robot_clock=None, pace_clock=None, provider=None, **groups)``: a Shouwang runtime on the test's database,
    its manual clock at ``start`` (``groups`` override settings groups, see ``harness.app_settings``;
    ``script``, ``robot_clock``, ``pace_clock`` and ``provider`` go to ``api.runtime.Runtime``); every site
    made is closed at the end of the test."""
    made: list[Site] = []

    def make(settings: Settings | None = None, *, community: dict[str, Any] | None = None, ingest: bool = False,
             process: str = "main", start: datetime = T0, script: Any = None,
             robot_clock: Callable[[], float] | None = None, pace_clock: Callable[[], float] | None = None,
             provider: Any = None, **groups: Any) -> Site:
        runtime_args = {name: value for name, value in (("script", script), ("robot_clock", robot_clock),
                                                        ("pace_clock", pace_clock), ("provider", provider))
                        if value is not None}
        site = Site(settings or app_settings(db_url, start=start, **groups), community=community, ingest=ingest,
                    process=process, start=start, **runtime_args)
        made.append(site)
        return site

    yield make
    for site in reversed(made):
        site.close()


@pytest.fixture
def fake() -> Iterator[FakeTwilio]:
    """Twilio's REST API played locally (tests/fake_twilio.py): the people answer as ``fake.behaviour`` says."""
    twilio = FakeTwilio().start()
    yield twilio
    twilio.stop()


# -- rows built to measure: each factory takes the columns a test cares about, fills in the rest ----------
_serial = itertools.count(1)


R = TypeVar("R")


def _add(engine: Engine, row: R) -> R:
    with Session(engine, expire_on_commit=False) as session, session.begin():
        session.add(row)
    return row


def _named(engine: Engine, model: Callable[..., R], name: str, **fields: Any) -> R:
    """A row of ``model`` named ``name`` and a serial number unless ``fields`` name it."""
    fields.setdefault("name", name.format(next(_serial)))
    return _add(engine, model(**fields))


@pytest.fixture
def make_community(engine: Engine) -> Callable[..., Community]:
    return lambda **fields: _named(engine, Community, "社区{}", **fields)


@pytest.fixture
def make_grid(engine: Engine, make_community: Callable[..., Community]) -> Callable[..., Grid]:
    """A grid of ``community`` (a new one unless given)."""
    def make(community: Community | None = None, **fields: Any) -> Grid:
        return _named(engine, Grid, "网格{}", community_id=(community or make_community()).id, **fields)
    return make


@pytest.fixture
def make_micro_grid(engine: Engine, make_grid: Callable[..., Grid]) -> Callable[..., MicroGrid]:
    """A micro-grid (a building) of ``grid`` (a new one unless given)."""
    def make(grid: Grid | None = None, **fields: Any) -> MicroGrid:
        return _named(engine, MicroGrid, "{}号楼", grid_id=(grid or make_grid()).id, **fields)
    return make


@pytest.fixture
def make_resident(engine: Engine, limits: rules.Limits) -> Callable[..., Resident]:
    """A resident watched from T0 (``micro_grid=`` places them); the deadline follows from their limits
    (``alerts.limits``) unless ``due_at`` is given."""
    def make(micro_grid: MicroGrid | None = None, **fields: Any) -> Resident:
        n = next(_serial)
        fields.setdefault("name", f"居民{n}")
        fields.setdefault("external_ref", f"r{n}")
        fields.setdefault("created_at", T0)
        fields.setdefault("watch_from", T0)
        with Session(engine, expire_on_commit=False) as session, session.begin():
            resident = Resident(micro_grid_id=micro_grid.id if micro_grid else None, **fields)
            session.add(resident)
            session.flush()
            if "due_at" not in fields:
                refresh_due(session, resident, limits, T0)
        return resident
    return make


@pytest.fixture
def make_device(engine: Engine, watch_policy: WatchPolicy) -> Callable[..., Device]:
    """A motion sensor (``kind=`` otherwise), online, of ``resident`` if given."""
    def make(resident: Resident | None = None, **fields: Any) -> Device:
        fields.setdefault("external_id", f"dev-{next(_serial)}")
        fields.setdefault("kind", "motion")
        fields.setdefault("created_at", T0)
        fields.setdefault("offline_due_at", T0 + watch_policy.device_limits.offline_after)
        return _add(engine, Device(resident_id=resident.id if resident else None, **fields))
    return make


@pytest.fixture
def make_contact(engine: Engine) -> Callable[..., Contact]:
    def make(resident: Resident, **fields: Any) -> Contact:
        n = next(_serial)
        fields.setdefault("name", f"家属{n}")
        fields.setdefault("phone", f"+86139{n:08d}")
        return _add(engine, Contact(resident_id=resident.id, **fields))
    return make


@pytest.fixture
def make_worker(engine: Engine) -> Callable[..., Worker]:
    """A grid worker (``role=`` otherwise) of ``grid``/``micro_grid``; ``pin=`` lets them sign in."""
    def make(grid: Grid | None = None, micro_grid: MicroGrid | None = None, pin: str | None = None,
             **fields: Any) -> Worker:
        n = next(_serial)
        fields.setdefault("name", f"网格员{n}")
        fields.setdefault("phone", f"+86138{n:08d}")
        fields.setdefault("role", "grid_worker")
        grid_id = grid.id if grid else micro_grid.grid_id if micro_grid else None
        worker = _add(engine, Worker(grid_id=grid_id, micro_grid_id=micro_grid.id if micro_grid else None,
                                     **fields))
        if pin is not None:
            with Session(engine) as session, session.begin():
                accounts.set_pin(session, worker.phone, pin)
        return worker
    return make


@pytest.fixture
def make_alarm(engine: Engine) -> Callable[..., Alarm]:
    """An open alarm (inactivity unless ``kind=``), opened as the rules open one (``alerts.alarms.open_alarm``)
    at ``at`` (T0); further ``fields`` are then set on it."""
    def make(resident: Resident | None = None, kind: AlarmKind = AlarmKind.INACTIVITY, at: Any = T0,
             device: Device | None = None, reason: str = "made by a test", **fields: Any) -> Alarm:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            alarm_id = open_alarm(session, kind, at, reason=reason, resident_id=resident.id if resident else None,
                                  device_id=device.id if device else None,
                                  system_key=fields.pop("system_key", None) or (
                                      None if resident or device else f"test-{next(_serial)}"))
            assert alarm_id is not None, "an alarm with the same key is open"
            alarm = session.get(Alarm, alarm_id)
            assert alarm is not None
            for name, value in fields.items():
                setattr(alarm, name, value)
        return alarm
    return make


# -- pages in Debian's headless Chromium (tests/pages.py) ---------------------------------------------------
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture
def launch(playwright: Playwright) -> Iterator[Callable[..., Browser]]:
    """``launch(*args)``: Debian's Chromium with the arguments every page test uses and ``args``; closed at
    the end of the test."""
    launched: list[Browser] = []

    def start(*args: str) -> Browser:
        launched.append(playwright.chromium.launch(executable_path=CHROMIUM, args=[*CHROMIUM_ARGS, *args]))
        return launched[-1]

    yield start
    for browser in launched:
        browser.close()


@pytest.fixture
def browser(launch: Callable[..., Browser]) -> Browser:
    return launch()


@pytest.fixture
def make_screen_site(tmp_path: Path) -> Iterator[Callable[[int], Site]]:
    """``make_screen_site(homes)``: ``pages.screen_site``, a Shouwang served over HTTP with ``homes`` residents
    on the map; closed at the end of the test."""
    made: list[Site] = []

    def make(homes: int) -> Site:
        made.append(screen_site(tmp_path, homes))
        return made[-1]

    yield make
    for site in made:
        site.close()


# -- the machine's Mosquitto ---------------------------------------------------------------------------------
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
