"""A whole Shouwang process in-process, on the machine's real Mosquitto and a real database
(SQLite and PostgreSQL), on the manual clock: messages in over MQTT, alarms out through the API."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.clock import ManualClock
from alerts.models import Event, QuarantinedMessage, Resident
from alerts.registry.community import load_community
from api import accounts
from api.runtime import Runtime
from config.settings import Settings
from sensors.formats import native
from tests.conftest import T0
from tests.helpers import TestPublisher, wait_for

H = timedelta(hours=1)


def community(base: str) -> dict[str, object]:
    return {
        "community": {"name": f"社区 {base}"},
        "grids": [{"name": "G1", "micro_grids": [{"name": "B1"}]}],
        "residents": [
            {"ref": "r1", "name": "王秀英", "micro_grid": "G1/B1",
             "devices": [{"id": f"{base}-pir", "kind": "motion"}, {"id": f"{base}-btn", "kind": "button"}]},
            {"ref": "r2", "name": "李桂兰", "micro_grid": "G1/B1",
             "devices": [{"id": f"{base}-zpir", "kind": "motion"}]},
        ],
    }


class Service:
    def __init__(self, settings: Settings, base: str) -> None:
        self.base = base
        self.runtime = Runtime(settings, process="test")
        self.clock = self.runtime.clock
        assert isinstance(self.clock, ManualClock)
        self.clock.set(T0)
        with Session(self.runtime.engine) as session, session.begin():
            load_community(session, community(base), T0, self.runtime.policy.limits)
        self.runtime.start()
        assert self.runtime.consumer is not None
        self.consumer = self.runtime.consumer
        wait_for(lambda: self.consumer.status()["caught_up"], message="consumer connected and caught up")
        with Session(self.runtime.engine) as session, session.begin():
            token = accounts.token_for(session, T0, "operator", ttl=timedelta(days=30))
        self.api = TestClient(self.runtime.app, headers={"Authorization": f"Bearer {token}"})
        self.publisher = TestPublisher(client_id=f"{base}-pub")

    def native(self, kind: str, **fields: object) -> None:
        topic, payload = native.render(f"{self.base}-pir" if kind != "button" else f"{self.base}-btn", kind,
                                       base=f"{self.base}/events", **fields)  # type: ignore[arg-type]
        self.publisher.publish(topic, payload)

    def raw(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        self.publisher.publish(f"{self.base}/{topic}", payload, retain=retain)

    def processed(self) -> int:
        """Events stored plus messages quarantined: what the consumer has committed."""
        with Session(self.runtime.engine) as session:
            events = session.scalar(select(func.count()).select_from(Event)) or 0
            held = session.scalar(select(func.count()).select_from(QuarantinedMessage)) or 0
        return events + held

    def wait_processed(self, count: int) -> None:
        wait_for(lambda: self.processed() >= count and self.consumer.status()["queue"] == 0,
                 message=f"{count} messages committed")

    def resident(self, ref: str) -> Resident:
        with Session(self.runtime.engine) as session:
            return session.scalars(select(Resident).where(Resident.external_ref == ref)).one()

    def tick_at(self, delta: timedelta) -> None:
        """Move the shared clock and wait until the scheduler has ticked at the new instant."""
        target = self.clock.set(T0 + delta)
        wait_for(lambda: self.runtime.watch.last_tick_at is not None and self.runtime.watch.last_tick_at >= target,
                 message="a tick at the new instant")

    def close(self) -> None:
        self.publisher.close()
        self.runtime.stop()


@pytest.fixture
def svc(service_settings: Settings, topic_base: str) -> Iterator[Service]:
    service = Service(service_settings, topic_base)
    yield service
    service.close()


def alarms(svc: Service, kind: str | None = None) -> list[dict[str, object]]:
    rows = svc.api.get("/api/alarms", params={"state": "all"}).json()
    return [a for a in rows if kind is None or a["kind"] == kind]


def test_an_event_published_to_the_broker_moves_last_activity_and_deadline(svc: Service) -> None:
    svc.clock.set(T0 + H)
    svc.native("motion")
    svc.wait_processed(1)
    resident = svc.resident("r1")
    assert resident.last_activity_at == T0 + H and resident.due_at == T0 + 15 * H
    body = svc.api.get(f"/api/residents/{resident.id}").json()
    assert body["status"] == "ok" and body["last_activity_at"].startswith("2026-11-23T09:00")


def test_health_and_retained_messages_do_not_move_last_activity(service_settings: Settings, topic_base: str) -> None:
    # retained before the service subscribes: the broker replays it to the new subscription with the retain
    # flag (a live message is delivered without it, and a new sensor's first "occupied" counts)
    retained = f"{topic_base}/z2m/{topic_base}-zpir"
    early = TestPublisher(client_id=f"{topic_base}-early")
    early.publish(retained, '{"occupancy":true}', retain=True)
    early.close()
    svc = Service(service_settings, topic_base)
    try:
        svc.native("battery", battery=70)
        svc.native("heartbeat")
        svc.raw(f"z2m/{svc.base}-zpir/availability", '{"state":"online"}')
        svc.wait_processed(3)
        assert svc.resident("r1").last_activity_at is None
        assert svc.resident("r2").last_activity_at is None
        assert svc.runtime.metrics.skipped.labels("retained")._value.get() == 1
    finally:
        svc.publisher.publish(retained, b"", retain=True)  # clear the retained message
        svc.close()


def test_an_alarm_is_raised_at_the_window_acknowledged_and_resolved_through_the_api(svc: Service) -> None:
    svc.native("motion")
    svc.raw(f"z2m/{svc.base}-zpir", '{"occupancy":false}')
    svc.wait_processed(2)
    svc.tick_at(10 * H)
    assert alarms(svc, "inactivity") == []
    rid = svc.resident("r1").id
    assert svc.api.get(f"/api/residents/{rid}").json()["status"] == "warning"
    svc.tick_at(14 * H)
    inactivity = wait_for(lambda: [a for a in alarms(svc, "inactivity") if a["resident_id"] == rid])
    assert len(inactivity) == 1
    alarm_id = inactivity[0]["id"]
    acked = svc.api.post(f"/api/alarms/{alarm_id}/acknowledge", json={"by": "网格员 李娜"})
    assert acked.status_code == 200 and acked.json()["state"] == "acknowledged"
    bad = svc.api.post(f"/api/alarms/{alarm_id}/resolve", json={"by": "x", "outcome": "activity_resumed"})
    assert bad.status_code == 422
    done = svc.api.post(f"/api/alarms/{alarm_id}/resolve",
                        json={"by": "网格员 李娜", "outcome": "resident_fine", "note": "在女儿家"})
    assert done.json()["state"] == "resolved"
    assert svc.api.post(f"/api/alarms/{alarm_id}/acknowledge", json={"by": "x"}).status_code == 409
    history = svc.api.get(f"/api/alarms/{alarm_id}").json()["transitions"]
    main = [t["action"] for t in history if t["action"] in ("opened", "acknowledged", "resolved")]
    assert main == ["opened", "acknowledged", "resolved"]
    svc.tick_at(15 * H)
    assert len([a for a in alarms(svc, "inactivity") if a["resident_id"] == rid]) == 1


def test_a_panic_press_over_mqtt_is_an_immediate_alarm(svc: Service) -> None:
    svc.native("button")
    svc.wait_processed(1)
    [panic] = wait_for(lambda: alarms(svc, "panic"))
    assert panic["severity"] == "critical" and panic["state"] == "open"


BAD_PAYLOADS: list[tuple[str, bytes, str]] = [
    ("events/{d}", b"{", "malformed_json"),
    ("events/{d}", b'{"type": 5}', "invalid_field"),
    ("events/{d}", b'{"type":"motion","battery":"lots"}', "invalid_field"),
    ("events/{d}", b"x" * 100_000, "oversized"),
    ("events/{d}", bytes(range(256)), "binary"),
    ("events/nobody-knows-me", b'{"type":"motion"}', "unknown_device"),
    ("events/{d}", b'{"type":"motion","ts":"the day after tomorrow"}', "bad_timestamp"),
    ("events/{d}", b"[]", "not_an_object"),
    ("events/{d}/extra", b'{"type":"motion"}', "unknown_topic"),
    ("z2m/{d}", b'{"occupancy": "maybe"}', "invalid_field"),
    ("z2m/{d}", b"\xff\xd8\xff\xe0 a jpeg", "binary"),
    ("z2m/{d}/availability", b"sort of", "malformed_json"),
]


def test_bad_payloads_are_quarantined_with_a_reason_and_the_consumer_keeps_running(
        svc: Service, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="sensors.consumer")
    for topic, payload, _reason in BAD_PAYLOADS:
        svc.raw(topic.format(d=f"{svc.base}-pir"), payload)
    svc.native("motion", ts=T0 + timedelta(days=1))  # a device clock a day ahead
    svc.wait_processed(len(BAD_PAYLOADS) + 1)
    held = svc.api.get("/api/quarantine").json()
    assert sorted(q["reason"] for q in held) == sorted(r for _, _, r in BAD_PAYLOADS)
    assert all(q["detail"] for q in held)
    logged = {getattr(r, "reason", None) for r in caplog.records if r.getMessage() == "message quarantined"}
    assert logged == {r for _, _, r in BAD_PAYLOADS}  # each one logged with its reason
    with Session(svc.runtime.engine) as session:
        event = session.scalars(select(Event)).one()
        assert event.clock_skew and event.occurred_at == T0
    assert svc.consumer.status()["connected"]
    svc.native("motion")
    svc.wait_processed(len(BAD_PAYLOADS) + 2)
    metrics = svc.api.get("/metrics").text
    assert 'shouwang_quarantined_total{reason="malformed_json"} 2.0' in metrics
    assert "shouwang_batch_commit_seconds_count" in metrics


def test_health_reports_broker_lag_and_tick(svc: Service) -> None:
    svc.tick_at(timedelta(minutes=1))
    health = svc.api.get("/healthz")
    assert health.status_code == 200
    body = health.json()
    assert body["broker"]["connected"] and body["broker"]["lag_seconds"] >= 0
    assert body["last_tick_age_seconds"] is not None and body["database_ok"]


def test_openapi_documents_the_routes(svc: Service) -> None:
    paths = svc.api.get("/openapi.json").json()["paths"]
    for path in ("/healthz", "/metrics", "/api/residents", "/api/residents/{resident_id}", "/api/alarms",
                 "/api/alarms/{alarm_id}/acknowledge", "/api/alarms/{alarm_id}/resolve", "/api/quarantine"):
        assert path in paths


