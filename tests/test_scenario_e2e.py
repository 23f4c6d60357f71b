"""The shipped ``incidents`` scenario run end to end: the simulator publishes over the machine's real
Mosquitto in every device format, a whole Shouwang process (SQLite and PostgreSQL) reads it on the manual
clock. The test steps the simulator's timeline and the service's clock to the same instants and waits
until the service has processed each step, so nothing races the machine's speed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.models import Device, QuarantinedMessage, Resident
from config.settings import FormatRoute, Settings
from simulator.publisher import Publisher
from simulator.scenario import Simulation, load_scenario
from tests.harness import T0, Site
from tests.helpers import wait_for

H = timedelta(hours=1)
M = timedelta(minutes=1)
END = T0 + 15 * H


class Run:
    """The service and the simulator of one test, moved together step by step."""

    def __init__(self, make_site: Callable[..., Site], settings: Settings, base: str) -> None:
        self.sim: Simulation = load_scenario("incidents").build(T0, settings.tz, prefix=f"{base}/")
        routes = [FormatRoute(**r) for r in self.sim.routes()]
        settings = settings.model_copy(update={"mqtt": settings.mqtt.model_copy(update={"routes": routes})})
        data = self.sim.community.as_data()
        self.site = make_site(settings, community=data, ingest=True, process="test")
        with Session(self.site.engine) as session, session.begin():
            _tell_away(session, data)
        self.site.start()
        self.runtime, self.clock = self.site.runtime, self.site.clock
        assert self.runtime.consumer is not None
        self.consumer = self.runtime.consumer
        self.api = self.site.client("operator")
        self.publisher = Publisher("127.0.0.1", 1883, client_id=f"{base}-sim")
        self.publisher.connect()
        self.timeline = self.sim.timeline()
        self.published = 0

    def step(self, instant: datetime) -> None:
        """Set the clock, publish the timeline up to the same instant, wait until every message is committed
        and a whole tick has run after that."""
        self.clock.set(instant)
        self.published += self.publisher.publish_until(self.timeline, instant)
        wait_for(lambda: self._received() >= self.published and self.consumer.status()["queue"] == 0,
                 message=f"{self.published} messages processed")
        for _ in range(2):  # the second tick surely started after the commit
            self._wait_for_a_tick()
        assert self.runtime.watch.last_tick_at is not None and self.runtime.watch.last_tick_at >= instant
        for _ in range(2):  # escalation is a job of its own: the second run surely saw the tick's alarms
            mark = time.monotonic()
            wait_for(lambda mark=mark: (self.runtime.watch.last_escalation_real or 0) > mark,
                     message="an escalation run")

    def _wait_for_a_tick(self) -> None:
        mark = time.monotonic()
        wait_for(lambda: (self.runtime.watch.last_tick_real or 0) > mark, message="a tick")

    def _received(self) -> float:
        return self.runtime.metrics.registry.get_sample_value("shouwang_mqtt_messages_total") or 0

    def alarms(self, kind: str) -> list[dict[str, Any]]:
        return [a for a in self.api.get("/api/alarms", params={"state": "all"}).json() if a["kind"] == kind]

    def alarm(self, alarm_id: object) -> dict[str, Any]:
        return self.api.get(f"/api/alarms/{alarm_id}").json()  # type: ignore[no-any-return]

    def resident_id(self, ref: str) -> int:
        return self.site.resident(ref).id

    def device_id(self, external_id: str) -> int:
        with Session(self.runtime.engine) as session:
            return session.scalars(select(Device.id).where(Device.external_id == external_id)).one()

    def close(self) -> None:
        self.site.close()
        self.publisher.close()  # after the service: clearing the retained message is no message for it


def _tell_away(session: Session, data: dict[str, object]) -> None:
    """The away marks of the community data, for a loader that does not read them (yet)."""
    for item in data["residents"]:  # type: ignore[attr-defined]
        if "away_until" not in item and "away_until_activity" not in item:
            continue
        resident = session.scalars(select(Resident).where(Resident.external_ref == item["ref"])).one()
        if resident.away_until is None and not resident.away_until_activity:
            resident.away_until = datetime.fromisoformat(item["away_until"]) if "away_until" in item else None
            resident.away_until_activity = bool(item.get("away_until_activity", False))


@pytest.fixture
def run(make_site: Callable[..., Site], service_settings: Settings, topic_base: str) -> Iterator[Run]:
    started = Run(make_site, service_settings, topic_base)
    yield started
    started.close()


def test_the_incidents_scenario_end_to_end(run: Run) -> None:
    sim = run.sim
    fall, visitor = sim.incident("fall"), sim.incident("visitor", 0)
    panic, dead = sim.incident("panic"), sim.incident("device_dies")
    assert fall.home == visitor.home == "r001" and dead.device == "door"
    # the fallen resident's last movement, as the timeline says: the window runs from there (native: exact)
    before = [m.at for m in sim.timeline(until=visitor.at - M) if m.home == "r001" and m.activity]
    assert all(at < fall.at + 2 * M for at in before)  # a door closing after the fall at most
    due = max([T0, *before]) + 14 * H
    assert T0 + 14 * H <= due <= T0 + 14 * H + 30 * M < visitor.at - 10 * M

    instants = {T0 + k * 30 * M for k in range(31)}
    instants |= {i.at for i in sim.incidents} | {due - M, due, due + 4 * M, dead.at + 11 * M}
    for instant in sorted(i for i in instants if T0 <= i <= END):
        run.step(instant)
        if instant == panic.at:
            [alarm] = run.alarms("panic")  # immediate, and one for the press delivered twice
            assert alarm["resident_id"] == run.resident_id("r003") and alarm["opened_at"].startswith(
                panic.at.isoformat()[:16])
        if instant == due - M:
            assert run.alarms("inactivity") == []
        if instant == due:
            [alarm] = run.alarms("inactivity")
            assert alarm["resident_id"] == run.resident_id("r001")
        if instant == due + 4 * M:
            [alarm] = run.alarms("inactivity")
            assert run.alarm(alarm["id"])["responders_called_at"] is not None
        if instant == dead.at + 11 * M:
            [offline] = run.alarms("device_offline")
            assert offline["device_id"] == run.device_id(sim.community.external_id(sim.community.home(2), "door"))

    # the fall: exactly one inactivity alarm in the whole community, at the window; the visitor's movement
    # after the responders were called is recorded on it, and it stays open for a person to close
    [alarm] = run.alarms("inactivity")
    detail = run.alarm(alarm["id"])
    assert detail["opened_at"].startswith(due.isoformat()[:16])
    assert detail["state"] != "resolved" and not detail["auto_resolved"]
    assert detail["activity_seen_at"] is not None and detail["activity_seen_at"] >= visitor.at.isoformat()[:16]
    # the dead door contact: a maintenance alarm, never a call, never the family
    [offline] = run.alarms("device_offline")
    attempts = run.alarm(offline["id"])["attempts"]
    assert attempts and all(a["channel"] == "sms" and a["target"] == "grid_worker" for a in attempts)
    # the panic: still one alarm; the away resident: none; the drained battery: a maintenance alarm
    assert len(run.alarms("panic")) == 1
    assert all(a["resident_id"] != run.resident_id("r004") for kind in ("inactivity", "panic")
               for a in run.alarms(kind))
    [battery] = run.alarms("low_battery")
    assert battery["device_id"] == run.device_id(sim.community.external_id(sim.community.home(5), "motion"))
    # the garbage: quarantined with its reasons, the consumer still running
    with Session(run.runtime.engine) as session:
        held = session.scalar(select(func.count()).select_from(QuarantinedMessage))
    assert held == sim.incident("garbage").count
    assert run.consumer.status()["connected"]
