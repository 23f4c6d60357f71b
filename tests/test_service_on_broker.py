"""A whole Shouwang process in-process, on the machine's real Mosquitto and a real database
(SQLite and PostgreSQL), on the manual clock: messages in over MQTT, alarms out through the API."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.models import Event, QuarantinedMessage
from config.settings import Settings
from sensors.formats import native
from tests.harness import T0, Site
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
    """A whole Shouwang started on the machine's broker (``Site``), its API as the operator, and a publisher
    on this test's topics."""

    def __init__(self, site: Site, base: str) -> None:
        self.site, self.base = site, base
        assert site.runtime.consumer is not None
        self.consumer = site.runtime.consumer
        self.api = site.client("operator")
        self.publisher = TestPublisher(client_id=f"{base}-pub")

    def native(self, kind: str, **fields: object) -> None:
        topic, payload = native.render(f"{self.base}-pir" if kind != "button" else f"{self.base}-btn", kind,
                                       base=f"{self.base}/events", **fields)  # type: ignore[arg-type]
        self.publisher.publish(topic, payload)

    def raw(self, topic: str, payload: bytes | str, retain: bool = False) -> None:
        self.publisher.publish(f"{self.base}/{topic}", payload, retain=retain)

    def processed(self) -> int:
        """Events stored plus messages quarantined: what the consumer has committed."""
        return self.site.count(Event) + self.site.count(QuarantinedMessage)

    def wait_processed(self, count: int) -> None:
        wait_for(lambda: self.processed() >= count and self.consumer.status()["queue"] == 0,
                 message=f"{count} messages committed")


def started(make_site: Callable[..., Site], settings: Settings, base: str) -> Service:
    site = make_site(settings, community=community(base), ingest=True, process="test").start()
    return Service(site, base)


@pytest.fixture
def svc(make_site: Callable[..., Site], service_settings: Settings, topic_base: str) -> Iterator[Service]:
    service = started(make_site, service_settings, topic_base)
    yield service
    service.publisher.close()


def alarms(svc: Service, kind: str | None = None) -> list[dict[str, object]]:
    rows = svc.api.get("/api/alarms", params={"state": "all"}).json()
    return [a for a in rows if kind is None or a["kind"] == kind]


def test_an_event_published_to_the_broker_moves_last_activity_and_deadline(svc: Service) -> None:
    svc.site.clock.set(T0 + H)
    svc.native("motion")
    svc.wait_processed(1)
    resident = svc.site.resident("r1")
    assert resident.last_activity_at == T0 + H and resident.due_at == T0 + 15 * H
    body = svc.api.get(f"/api/residents/{resident.id}").json()
    assert body["status"] == "ok" and body["last_activity_at"].startswith("2026-11-23T09:00")


def test_health_and_retained_messages_do_not_move_last_activity(
        make_site: Callable[..., Site], service_settings: Settings, topic_base: str) -> None:
    # retained before the service subscribes: the broker replays it to the new subscription with the retain
    # flag (a live message is delivered without it, and a new sensor's first "occupied" counts)
    retained = f"{topic_base}/z2m/{topic_base}-zpir"
    early = TestPublisher(client_id=f"{topic_base}-early")
    early.publish(retained, '{"occupancy":true}', retain=True)
    early.close()
    svc = started(make_site, service_settings, topic_base)
    try:
        svc.native("battery", battery=70)
        svc.native("heartbeat")
        svc.raw(f"z2m/{svc.base}-zpir/availability", '{"state":"online"}')
        svc.wait_processed(3)
        assert svc.site.resident("r1").last_activity_at is None
        assert svc.site.resident("r2").last_activity_at is None
        assert svc.site.runtime.metrics.skipped.labels("retained")._value.get() == 1
    finally:
        svc.publisher.publish(retained, b"", retain=True)  # clear the retained message
        svc.publisher.close()


def test_an_alarm_is_raised_at_the_window_acknowledged_and_resolved_through_the_api(svc: Service) -> None:
    svc.native("motion")
    svc.raw(f"z2m/{svc.base}-zpir", '{"occupancy":false}')
    svc.wait_processed(2)
    svc.site.scheduled_at(10 * H)
    assert alarms(svc, "inactivity") == []
    rid = svc.site.resident("r1").id
    assert svc.api.get(f"/api/residents/{rid}").json()["status"] == "warning"
    svc.site.scheduled_at(14 * H)
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
    svc.site.scheduled_at(15 * H)
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
    with Session(svc.site.engine) as session:
        event = session.scalars(select(Event)).one()
        assert event.clock_skew and event.occurred_at == T0
    assert svc.consumer.status()["connected"]
    svc.native("motion")
    svc.wait_processed(len(BAD_PAYLOADS) + 2)
    metrics = svc.api.get("/metrics").text
    assert 'shouwang_quarantined_total{reason="malformed_json"} 2.0' in metrics
    assert "shouwang_batch_commit_seconds_count" in metrics


def test_health_reports_broker_lag_and_tick(svc: Service) -> None:
    svc.site.scheduled_at(timedelta(minutes=1))
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


