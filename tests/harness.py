"""The one test harness: the instant tests start at, settings, a migrated database, the manual clock, a
whole Shouwang runtime (``api.runtime.Runtime``, never a hand-made copy) and HTTP clients signed in as a
role, plus the observations tests record.

conftest.py turns these into fixtures (``db_url``, ``engine``, ``clock``, ``make_site``, ``make_*`` rows);
test files use either.

    def test_x(make_site):
        site = make_site(community=COMMUNITY)       # SQLite and PostgreSQL, the clock at T0
        site.record(H, obs("pir-1"))                # a motion seen at T0 + 1 h
        site.at(14 * H)                             # the tick and the chain at T0 + 14 h
        site.client("operator").get("/api/alarms")  # the API as the operator (in-process)
"""

from __future__ import annotations

import itertools
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx2 as httpx
import uvicorn
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from alerts import service
from alerts.clock import ManualClock
from alerts.db import make_engine, upgrade
from alerts.models import Alarm, AlarmKind, Attempt, Resident
from alerts.observations import Observation, Quarantined
from alerts.recording import BatchResult, IngestPolicy, record_batch
from alerts.registry.community import load_community
from alerts.service import WatchPolicy
from api import accounts
from api.runtime import Runtime, ingest_policy, watch_policy
from config.settings import Settings, load_settings
from tests.helpers import free_port, wait_for

T0 = datetime(2026, 11, 23, 8, 0, tzinfo=UTC)
H = timedelta(hours=1)
M = timedelta(minutes=1)
TOKEN_TTL = timedelta(days=30)
CENTRE_ROLES = ("admin", "operator")


# -- settings, database, clock -------------------------------------------------------------------------------
def app_settings(db_url: str, *, start: datetime = T0, **groups: Any) -> Settings:
    """Settings of a Shouwang run in-process by a test: the test's database, the manual clock at ``start``
    (T0), and maintenance alarms for silent devices only where a test asks for them. ``groups`` add to or
    override a settings group, e.g. ``notify={...}``, or set a top-level setting, e.g. ``timezone="..."``."""
    data: dict[str, Any] = {
        "database": {"url": db_url},
        "clock": {"mode": "manual", "start": start.isoformat()},
        "rules": {"device_offline_after": "30d"},
    }
    for name, values in groups.items():
        if isinstance(values, dict):
            data.setdefault(name, {}).update(values)
        else:
            data[name] = values
    return load_settings(**data)


def sqlite_database(folder: Path, name: str = "shouwang.db") -> str:
    """A fresh SQLite file in ``folder``, migrated to the head."""
    url = f"sqlite:///{folder / name}"
    upgrade(url)
    return url


def manual_clock(engine: Engine, at: datetime = T0) -> ManualClock:
    """The manual clock of a database (every process on it reads the same instant), set to ``at``."""
    clock = ManualClock(engine)
    clock.set(at)
    return clock


def prepared_database(url: str, community: dict[str, Any], settings: Settings | None = None
                      ) -> tuple[Engine, ManualClock]:
    """An engine on a migrated database holding ``community``, and its manual clock at T0: what a test of
    whole ``serve`` processes prepares before starting them. The window is the one of ``settings``
    (the defaults unless given)."""
    policy = watch_policy(settings or load_settings(database={"url": url}))
    engine = make_engine(url)
    clock = manual_clock(engine)
    with Session(engine) as session, session.begin():
        load_community(session, community, T0, policy.limits, offline_after=policy.device_limits.offline_after)
    return engine, clock


# -- observations ----------------------------------------------------------------------------------------------
_delivery_keys = itertools.count()


def obs(device: str, kind: str = "motion", **fields: Any) -> Observation:
    """One observation of ``device``, as a format would hand it to ingest, with a delivery key of its own."""
    fields.setdefault("topic", f"t/{device}")
    return Observation(device=device, kind=kind, delivery_key=f"k{next(_delivery_keys)}", **fields)


# -- a database with a community on it, driven at chosen instants ------------------------------------------
def instant(when: datetime | timedelta) -> datetime:
    """An instant, given as itself or as its distance from T0."""
    return when if isinstance(when, datetime) else T0 + when


class Store:
    """A migrated database driven at chosen instants, with a process's policies but no process: recording
    observations as ingest does, running the rule tick, reading rows back."""

    def __init__(self, engine: Engine, watch: WatchPolicy, ingest: IngestPolicy) -> None:
        self.engine, self.policy, self.ingest = engine, watch, ingest

    def load(self, community: dict[str, Any], at: datetime | timedelta = T0) -> dict[str, int]:
        """``shouwang load`` of ``community`` at ``at``, with these limits."""
        with Session(self.engine) as session, session.begin():
            return load_community(session, community, instant(at), self.policy.limits,
                                  offline_after=self.policy.device_limits.offline_after)

    def record(self, at: datetime | timedelta, *items: Observation | Quarantined) -> BatchResult:
        """Record observations (and quarantined messages) received at ``at``, as the consumer's writer does."""
        observations = [i for i in items if isinstance(i, Observation)]
        quarantined = [i for i in items if isinstance(i, Quarantined)]
        with Session(self.engine) as session, session.begin():
            return record_batch(session, observations, quarantined, instant(at), self.ingest)

    def activity(self, at: datetime | timedelta, *devices: str) -> BatchResult:
        """A motion from each of ``devices`` at ``at``."""
        return self.record(at, *(obs(device) for device in devices))

    def tick(self, at: datetime | timedelta) -> service.TickResult:
        """The rule tick at ``at`` (the clock is not moved)."""
        return service.tick(self.engine, instant(at), self.policy)

    def resident(self, ref: str) -> Resident:
        with Session(self.engine) as session:
            return session.scalars(select(Resident).where(Resident.external_ref == ref)).one()

    def resident_ids(self) -> dict[str, int]:
        with Session(self.engine) as session:
            return {ref: rid for ref, rid in session.execute(select(Resident.external_ref, Resident.id)).tuples()
                    if ref is not None}

    def alarms(self, kind: str | None = None, state: str | None = None, resident: str | None = None) -> list[Alarm]:
        """Alarms oldest first, of a kind, in a state, of a resident (by ref), as asked."""
        query = select(Alarm).order_by(Alarm.id)
        if kind:
            query = query.where(Alarm.kind == kind)
        if state:
            query = query.where(Alarm.state == state)
        if resident is not None:
            query = query.join(Resident, Resident.id == Alarm.resident_id).where(Resident.external_ref == resident)
        with Session(self.engine) as session:
            return list(session.scalars(query))

    def alarm(self, kind: str = AlarmKind.INACTIVITY, resident: str | None = None) -> Alarm:
        """The newest alarm of ``kind`` (of ``resident``, by ref)."""
        found = self.alarms(kind, resident=resident)
        assert found, f"no {kind} alarm"
        return found[-1]

    def attempts(self) -> list[Attempt]:
        with Session(self.engine) as session:
            return list(session.scalars(select(Attempt).order_by(Attempt.id)))

    def count(self, model: type[Any], *where: Any) -> int:
        with Session(self.engine) as session:
            return session.scalar(select(func.count()).select_from(model).where(*where)) or 0


# -- a whole Shouwang in-process ---------------------------------------------------------------------------
class Site(Store):
    """One Shouwang process in-process: ``api.runtime.Runtime`` from ``settings`` on the manual clock set at
    ``start`` (T0), the default escalation policies seeded, ``community`` loaded then. Without ``ingest``
    there is no MQTT consumer (the test records observations itself); ``start()`` runs the consumer and the
    scheduler. ``runtime_args`` go to ``Runtime`` as they are (``script=``, ``robot_clock=``, ``provider=``).
    ``client(role)`` is the API in-process, ``serve()`` puts it on a loopback port for real HTTP."""

    def __init__(self, settings: Settings, *, community: dict[str, Any] | None = None, ingest: bool = False,
                 process: str = "main", start: datetime = T0, **runtime_args: Any) -> None:
        self.settings = settings
        self.runtime = Runtime(settings, process=process, ingest=ingest, **runtime_args)
        super().__init__(self.runtime.engine, self.runtime.policy, ingest_policy(settings))
        clock = self.runtime.clock
        assert isinstance(clock, ManualClock), "a test site runs on the manual clock"
        self.clock: ManualClock = clock
        self.clock.set(start)
        self.runtime.seed()
        if community is not None:
            self.load(community, start)
        self._tokens: dict[str, str] = {}
        self._clients: dict[str | None, TestClient] = {}
        self.port: int | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._closed = False

    # the clock
    def tick_at(self, at: datetime | timedelta) -> service.TickResult:
        """Move the clock to ``at`` (an instant or its distance from T0) and run the rule tick there; what
        the tick did."""
        return self.tick(self.clock.set(instant(at)))

    def rules_at(self, delta: datetime | timedelta) -> datetime:
        """Move the clock to T0 + ``delta`` (or to the instant given) and run the rule tick there (not the
        chain)."""
        self.tick_at(delta)
        return instant(delta)

    def at(self, delta: datetime | timedelta) -> datetime:
        """Move the clock to T0 + ``delta`` (or to the instant given) and run the tick and the chain there, as
        the scheduler would."""
        now = self.rules_at(delta)
        self.runtime.escalate(now)
        return now

    def escalate(self) -> None:
        """Run the chain again at the clock's instant (after callbacks moved it)."""
        self.runtime.escalate(self.clock.now())

    def scheduled_at(self, delta: timedelta) -> datetime:
        """Move the clock of a started site and wait until its scheduler has ticked at the new instant."""
        target = self.clock.set(T0 + delta)
        watch = self.runtime.watch
        wait_for(lambda: watch.last_tick_at is not None and watch.last_tick_at >= target,
                 message="a tick at the new instant")
        return target

    # signing in
    def token(self, who: str) -> str:
        """A bearer token of ``who``: ``admin``, ``operator``, ``screen``, ``integration:NAME`` (an outside
        system that reports signs of life), a worker's phone number, or a user signed in by ``sign_in``."""
        if who not in self._tokens:
            now = self.clock.now()
            with Session(self.engine) as session, session.begin():
                if who in CENTRE_ROLES:
                    token = accounts.token_for(session, now, who, ttl=TOKEN_TTL)
                elif who == "screen":
                    token = accounts.screen_token(session, now, TOKEN_TTL)
                elif who.startswith("integration:"):
                    token = accounts.integration_token(session, now, who.removeprefix("integration:"), TOKEN_TTL)
                else:
                    token = accounts.worker_token(session, now, who, ttl=TOKEN_TTL)
            self._tokens[who] = token
        return self._tokens[who]

    def headers(self, who: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(who)}"}

    def sign_in(self, username: str, password: str) -> str:
        """Sign ``username`` in through ``POST /api/auth/login`` as a person does; the session token it gives
        is then ``token(username)``, and ``client(username)`` uses it."""
        anonymous = TestClient(self.runtime.app)
        try:
            response = anonymous.post("/api/auth/login", json={"username": username, "password": password})
        finally:
            anonymous.close()
        assert response.status_code == 200, response.text
        self._tokens[username] = response.json()["token"]
        return self._tokens[username]

    def set_pin(self, phone: str, pin: str) -> None:
        with Session(self.engine) as session, session.begin():
            assert accounts.set_pin(session, phone, pin), f"no worker with phone {phone}"

    def client(self, who: str | None = None) -> TestClient:
        """The API in-process, signed in as ``who`` (see ``token``), or anonymous; one per ``who``, closed with
        the site."""
        if who not in self._clients:
            self._clients[who] = TestClient(self.runtime.app, headers=self.headers(who) if who else None)
        return self._clients[who]

    # real HTTP
    @property
    def url(self) -> str:
        assert self.port is not None, "serve() first"
        return f"http://127.0.0.1:{self.port}"

    def serve(self, port: int | None = None) -> Site:
        """Serve the API on a loopback port (the same one again after ``stop_serving``)."""
        self.port = port or self.port or free_port()
        config = uvicorn.Config(self.runtime.app, host="127.0.0.1", port=self.port, log_level="warning",
                                lifespan="off", timeout_graceful_shutdown=1)
        server = self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=server.run, name="http", daemon=True)
        self._thread.start()
        wait_for(lambda: server.started, message="the HTTP server")
        return self

    def stop_serving(self) -> None:
        assert self._server is not None and self._thread is not None
        self._server.should_exit = self._server.force_exit = True
        self._thread.join(timeout=15)
        assert not self._thread.is_alive(), "the HTTP server did not stop"
        self._server = self._thread = None

    def http(self, who: str | None, method: str, path: str, **kw: Any) -> httpx.Response:
        """A real HTTP request to the served API, signed in as ``who`` (or anonymous)."""
        headers = {**(self.headers(who) if who else {}), **kw.pop("headers", {})}
        return httpx.request(method, self.url + path, headers=headers, timeout=kw.pop("timeout", 10), **kw)

    # the whole process
    def start(self) -> Site:
        """Start the MQTT consumer and the scheduler; return once the consumer has caught up with the broker."""
        self.runtime.start()
        consumer = self.runtime.consumer
        if consumer is not None:
            wait_for(lambda: consumer.status()["caught_up"], message="consumer connected and caught up")
        return self

    def close(self) -> None:
        """Stop everything the site runs; again is a no-op."""
        if self._closed:
            return
        self._closed = True
        for client in self._clients.values():
            client.close()
        if self._thread is not None and self._thread.is_alive():
            self.stop_serving()
        self.runtime.stop()

