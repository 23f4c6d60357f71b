"""Devices and ingest (issue 14): a new sensor's first report, a node's status, clock skew per device, bad
Zigbee2MQTT timestamps, the capped quarantine, MQTT credentials and SQL logs without parameters.

Real parts: SQLite and PostgreSQL (``db_url``), the machine's Mosquitto, a private Mosquitto with passwords."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import paho.mqtt.client as mqtt
import pytest
from fastapi.testclient import TestClient
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from alerts import recording, rules
from alerts.clock import ManualClock
from alerts.db import make_engine, upgrade
from alerts.models import Alarm, AlarmKind, Device, Event, QuarantinedMessage, QuarantineOverflow, Resident
from alerts.observations import Observation, Quarantined
from alerts.recording import IngestPolicy, record_batch
from alerts.registry.community import load_community
from alerts.views import device_row
from api.runtime import Runtime
from config.settings import FormatRoute, Settings, load_settings
from sensors.ingest import RawMessage, Skipped, convert
from tests.conftest import T0
from tests.helpers import PrivateMosquitto, TestPublisher, wait_for

ZONE = ZoneInfo("Asia/Shanghai")
M = timedelta(minutes=1)
H = timedelta(hours=1)

ROUTES = [
    FormatRoute(topic="zigbee2mqtt/#", format="zigbee2mqtt"),
    FormatRoute(topic="tele/#", format="tasmota"),
    FormatRoute(topic="shellies/#", format="shelly_gen1"),
    FormatRoute(topic="esphome/#", format="esphome"),
]

# one resident per device, so each device's first report shows on its own resident
DEVICES = {"z-pir": "motion", "z-door": "door", "t-pir": "motion", "s-pir": "motion", "esphome/hall/pir": "motion",
           "esphome/hall/door": "door"}
COMMUNITY = {
    "community": {"name": "测试社区"},
    "grids": [{"name": "G1", "micro_grids": [{"name": "B1"}]}],
    "residents": [{"ref": f"r-{ext}", "name": f"老人{i}", "micro_grid": "G1/B1", "devices": [{"id": ext, "kind": kind}]}
                  for i, (ext, kind) in enumerate(DEVICES.items())],
}

_mids = iter(range(1, 10**6))


def message(topic: str, payload: str | bytes, retain: bool = False) -> Observation | Quarantined | Skipped:
    body = payload.encode() if isinstance(payload, str) else payload
    return convert(RawMessage(topic, body, retain=retain, mid=next(_mids)), ROUTES, ZONE, 16384)


class Home:
    def __init__(self, engine: Engine, policy: IngestPolicy) -> None:
        self.engine, self.policy = engine, policy
        with Session(engine) as session, session.begin():
            load_community(session, COMMUNITY, T0, policy.limits)

    def record(self, now: datetime, *items: Observation | Quarantined | Skipped) -> recording.BatchResult:
        with Session(self.engine) as session, session.begin():
            return record_batch(session, [i for i in items if isinstance(i, Observation)],
                                [i for i in items if isinstance(i, Quarantined)], now, self.policy)

    def last_activity(self, device: str) -> datetime | None:
        with Session(self.engine) as session:
            return session.scalar(select(Resident.last_activity_at).where(Resident.external_ref == f"r-{device}"))

    def device(self, external_id: str) -> Device:
        with Session(self.engine) as session:
            return session.scalars(select(Device).where(Device.external_id == external_id)).one()


@pytest.fixture
def home(engine: Engine, ingest_policy: IngestPolicy) -> Home:
    return Home(engine, ingest_policy)


# -- 1. the first report of a new sensor ------------------------------------------------------------------
FIRST_REPORTS = {
    "z-pir": ("zigbee2mqtt/z-pir", '{"occupancy": true, "battery": 90}'),  # cache_state on (the default)
    "z-door": ("zigbee2mqtt/z-door", '{"contact": false}'),
    "t-pir": ("tele/t-pir/SENSOR", '{"Time":"2026-11-23T16:01:00","Switch1":"ON"}'),  # local time: T0 + 1 min
    "s-pir": ("shellies/s-pir/sensor/motion", "true"),
    "esphome/hall/pir": ("esphome/hall/binary_sensor/pir/state", "ON"),
}


def test_the_first_report_of_a_newly_installed_sensor_counts_in_every_change_only_format(home: Home) -> None:
    for device, (topic, payload) in FIRST_REPORTS.items():
        converted = message(topic, payload)
        assert isinstance(converted, Observation) and converted.change_only, (device, converted)
        result = home.record(T0 + M, converted)
        assert result.activity == 1, device
        assert home.last_activity(device) == T0 + M, device
    # kept: a repeated "occupied" after a known one is not new; the bridge's own occupancy false is no sign of life
    for topic, payload in (FIRST_REPORTS["z-pir"], ("zigbee2mqtt/z-pir", '{"occupancy": false}'),
                           FIRST_REPORTS["t-pir"], FIRST_REPORTS["s-pir"], FIRST_REPORTS["esphome/hall/pir"]):
        converted = message(topic, payload)
        assert home.record(T0 + 2 * M, converted).activity == 0, topic  # type: ignore[arg-type]
    # a retained replay of a state is never an observation, first or not
    assert message("esphome/hall/binary_sensor/door/state", "OFF", retain=True) == Skipped("retained")


# -- 2. ESPHome's status belongs to the node --------------------------------------------------------------
def test_an_esphome_node_status_applies_to_the_sensors_configured_under_it(home: Home) -> None:
    # the README's configuration: topic_prefix esphome/hall, route esphome/#, devices esphome/hall/pir and /door
    offline = message("esphome/hall/status", "offline")
    assert isinstance(offline, Observation) and offline.device == "esphome/hall"
    result = home.record(T0 + M, offline)
    assert result.stored == 2 and not result.quarantined
    for ext in ("esphome/hall/pir", "esphome/hall/door"):
        device = home.device(ext)
        assert device.availability == "offline" and device.availability_at == T0 + M, ext
        assert device.offline_due_at == T0 + M + home.policy.device_limits.offline_grace
    home.record(T0 + 2 * M, message("esphome/hall/status", "online"))
    assert home.device("esphome/hall/pir").availability == "online"
    # a node with no adopted device under it is still an unknown device; so is a mere prefix of a name
    result = home.record(T0 + 3 * M, message("esphome/kitchen/status", "offline"),
                         message("esphome/ha/status", "offline"))
    assert result.quarantined == {"unknown_device": 2}


# -- 3. clock skew per device -----------------------------------------------------------------------------
def test_clock_skew_is_counted_per_device_and_a_device_that_keeps_it_is_listed_for_maintenance(home: Home) -> None:
    def ahead(at: datetime) -> Observation:
        return Observation(device="t-pir", kind="heartbeat", topic="tele/t-pir/STATE", delivery_key=f"k{at}",
                           device_time=at + 3 * H)

    home.record(T0, ahead(T0))
    home.record(T0 + H, ahead(T0 + H), Observation(device="s-pir", kind="heartbeat", topic="x", delivery_key="ok"))
    device = home.device("t-pir")
    assert (device.clock_skew_count, device.last_clock_skew_at) == (2, T0 + H)
    assert home.device("s-pir").clock_skew_count == 0
    row = device_row(device)
    assert row["clock_skew_count"] == 2 and row["last_clock_skew_at"] == T0 + H
    with Session(home.engine) as session:
        assert not session.scalars(select(Alarm)).all()  # two in a day: counted, not yet listed
    result = home.record(T0 + 2 * H, ahead(T0 + 2 * H))
    assert len(result.clock_skew_alarms) == 1
    with Session(home.engine) as session:
        [alarm] = session.scalars(select(Alarm)).all()
        assert alarm.kind == AlarmKind.CLOCK_SKEW and alarm.device_id == device.id
        assert alarm.policy is None or alarm.policy["name"] == "maintenance"
    assert not home.record(T0 + 3 * H, ahead(T0 + 3 * H)).clock_skew_alarms  # one open alarm per device


def test_clock_skew_reports_spread_over_more_than_a_day_do_not_list_the_device(home: Home) -> None:
    for day in range(4):
        at = T0 + day * 25 * H
        home.record(at, Observation(device="t-pir", kind="heartbeat", topic="t", delivery_key=f"d{day}",
                                    device_time=at + H))
    assert home.device("t-pir").clock_skew_count == 4
    with Session(home.engine) as session:
        assert not session.scalars(select(Alarm)).all()


# -- 4. Zigbee2MQTT last_seen of the wrong type -----------------------------------------------------------
@pytest.mark.parametrize("last_seen", [{"a": 1}, [2026, 11, 23], True])
def test_a_zigbee2mqtt_last_seen_that_is_not_a_time_is_a_bad_timestamp(last_seen: object) -> None:
    converted = message("zigbee2mqtt/z-pir", orjson.dumps({"occupancy": True, "last_seen": last_seen}))
    assert isinstance(converted, Quarantined)
    assert converted.reason == "bad_timestamp" and "last_seen" in converted.detail


# -- 5. the quarantine is capped ----------------------------------------------------------------------------
@pytest.fixture
def service(service_settings: Settings, topic_base: str) -> Iterator[tuple[Runtime, TestPublisher]]:
    runtime = Runtime(service_settings, process="test")
    assert isinstance(runtime.clock, ManualClock)
    runtime.clock.set(T0)
    runtime.start()
    assert runtime.consumer is not None
    wait_for(lambda: runtime.consumer is not None and runtime.consumer.status()["caught_up"], message="caught up")
    publisher = TestPublisher(client_id=f"{topic_base}-pub")
    yield runtime, publisher
    publisher.close()
    runtime.stop()


def test_one_flooding_publisher_cannot_fill_the_quarantine(service: tuple[Runtime, TestPublisher],
                                                           topic_base: str) -> None:
    runtime, publisher = service
    keep = recording.QUARANTINE_KEEP_PER_SOURCE
    oversized = b'{"type":"motion","junk":"' + b"x" * 20000 + b'"}'
    flood = keep + 15
    for _ in range(flood):  # one publisher of oversized payloads
        publisher.publish(f"{topic_base}/events/flooder", oversized, wait=False)
    for i in range(3):  # someone else's bad messages are still kept
        publisher.publish(f"{topic_base}/events/other-{i}", b"{not json")
    publisher.publish(f"{topic_base}/events/flooder", oversized)

    def counted() -> int:
        with Session(runtime.engine) as session:
            kept = session.scalar(select(func.count()).select_from(QuarantinedMessage)) or 0
            dropped = session.scalar(select(func.coalesce(func.sum(QuarantineOverflow.dropped), 0))) or 0
        return kept + dropped

    wait_for(lambda: counted() >= flood + 4, message="every message kept or counted")
    with Session(runtime.engine) as session:
        rows = session.scalars(select(QuarantinedMessage)).all()
        [overflow] = session.scalars(select(QuarantineOverflow)).all()
    flooder = [r for r in rows if r.topic.endswith("/flooder")]
    assert len(flooder) == keep and len(rows) == keep + 3
    assert all(len(r.payload) == recording.OVERSIZED_PAYLOAD_PREFIX and r.payload_size == len(oversized)
               for r in flooder)
    assert (overflow.source, overflow.reason, overflow.dropped) == (f"{topic_base}/events/flooder", "oversized",
                                                                    flood + 1 - keep)
    assert overflow.dropped_bytes == overflow.dropped * len(oversized) and overflow.hour == T0
    metrics = runtime.app and TestClient(runtime.app).get("/metrics").text
    assert f"shouwang_quarantine_dropped_total {float(flood + 1 - keep)}" in metrics
    # the next hour keeps its own share again
    runtime.clock.set(T0 + H)
    publisher.publish(f"{topic_base}/events/flooder", oversized)
    wait_for(lambda: counted() >= flood + 5, message="the next hour's message")
    with Session(runtime.engine) as session:
        assert session.scalar(select(func.count()).select_from(QuarantinedMessage)) == keep + 4


# -- 6. MQTT credentials and SQL parameters -----------------------------------------------------------------
def test_mqtt_credentials_in_the_url_are_used_and_never_shown(tmp_path: Path, topic_base: str,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    secret = "s3cret-Pa55"
    broker = PrivateMosquitto(tmp_path, users={"shouwang": secret, "sensor": "sensor-pw"}).start()
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    upgrade(url)
    settings = load_settings(
        database={"url": url},
        mqtt={"url": f"mqtt://shouwang:{secret}@127.0.0.1:{broker.port}", "protocol": "5",
              "client_id": f"{topic_base}-svc", "share_group": "", "batch_wait": "10ms",
              "routes": [{"topic": f"{topic_base}/events/#", "format": "native"}]},
        clock={"mode": "manual", "start": T0.isoformat()}, rules={"tick": "0.1s"})
    assert secret not in repr(settings) and secret not in settings.mqtt.url
    runtime = Runtime(settings, process="test")
    publisher = None
    try:
        assert isinstance(runtime.clock, ManualClock)
        runtime.clock.set(T0)
        with Session(runtime.engine) as session, session.begin():
            load_community(session, {**COMMUNITY, "residents": [
                {"ref": "r1", "name": "王", "micro_grid": "G1/B1", "devices": [{"id": "pir", "kind": "motion"}]}]},
                T0, runtime.policy.limits)
        runtime.start()
        consumer = runtime.consumer
        assert consumer is not None
        wait_for(lambda: consumer.status()["connected"], timeout=15, message="connected with the url's credentials")
        publisher = TestPublisher(port=broker.port, client_id=f"{topic_base}-pub", username="sensor",
                                  password="sensor-pw")
        publisher.publish(f"{topic_base}/events/pir", b'{"type":"motion"}')

        def stored() -> int:
            with Session(runtime.engine) as session:
                return session.scalar(select(func.count()).select_from(Event)) or 0

        wait_for(stored, message="the event through the password-protected broker")
        health = TestClient(runtime.app).get("/healthz")
        assert health.json()["broker"]["connected"] and secret not in health.text
    finally:
        if publisher is not None:
            publisher.close()
        runtime.stop()
        broker.stop()
    logged = [f"{r.getMessage()} {r.__dict__}" for r in caplog.records]
    assert logged and not [line for line in logged if secret in line]


def test_sql_error_logs_never_include_the_statement_parameters(db_url: str, limits: rules.Limits,
                                                               caplog: pytest.LogCaptureFixture) -> None:
    phone = "13800138000"
    engine = make_engine(db_url)
    try:
        with Session(engine) as session, session.begin():
            load_community(session, COMMUNITY, T0, limits)
            resident_id = session.scalars(select(Resident.id)).first()
        with pytest.raises(DBAPIError) as raised, engine.begin() as conn:  # the primary key taken: an error
            conn.execute(text("INSERT INTO residents (id, name, address, phone, away_until_activity, created_at) "
                              "SELECT :id, :name, :address, :phone, away_until_activity, created_at FROM residents"),
                         {"id": resident_id, "name": "王秀英", "address": "幸福路 1 号", "phone": phone})
        logging.getLogger("shouwang.test").error("store failed", exc_info=raised.value)
    finally:
        engine.dispose()
    assert "INSERT INTO residents" in caplog.text and phone not in caplog.text
    assert phone not in str(raised.value)


# -- 3. (screen) the resident card shows a device's clock skew ----------------------------------------------
def test_the_resident_card_on_the_screen_marks_a_device_whose_clock_runs_ahead(tmp_path: Path) -> None:
    pytest.importorskip("playwright")
    from playwright.sync_api import expect, sync_playwright

    from api.runtime import ingest_policy
    from tests.harness import Site, app_settings, sqlite_database
    from tests.test_browser import CHROMIUM, community, marker, open_page

    if not Path(CHROMIUM).exists():
        pytest.skip("needs Debian's chromium")
    site = Site(app_settings(sqlite_database(tmp_path, "screen.db")), community=community(2)).serve()
    try:
        with Session(site.engine) as session, session.begin():
            record_batch(session, [Observation(device="pir-1", kind="heartbeat", topic="t", delivery_key="skew",
                                               device_time=T0 + H)], [], T0, ingest_policy(site.settings))
            rid = session.scalars(select(Resident.id).where(Resident.external_ref == "r1")).one()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
            try:
                outside: list[str] = []
                page = open_page(browser, f"{site.url}/screen?token={site.token('screen')}", outside)
                expect(page.locator("body")).to_have_attribute("data-ready", "1", timeout=20000)
                marker(page, rid).click()
                expect(page.locator("#card .clock-skew")).to_have_text("时钟超前 ×1", timeout=10000)
                assert not outside
            finally:
                browser.close()
    finally:
        site.close()


# -- 7. A backlog on MQTT 3.1.1 (no Receive Maximum) --------------------------------------------------------
def test_a_backlog_on_mqtt_311_is_taken_a_batch_at_a_time_and_stored_once(tmp_path: Path, db_url: str,
                                                                          topic_base: str) -> None:
    """The broker sends a 3.1.1 session's whole backlog at once; the consumer holds at most
    ``receive_maximum`` messages waiting to be batched (paho's thread waits), so its memory does not grow
    with the backlog, and every message is stored once."""
    backlog, limit = 600, 50
    broker = PrivateMosquitto(tmp_path).start()
    client_id, topics = f"{topic_base}-svc", f"{topic_base}/events/#"
    # the consumer's persistent session, subscribed, then away while the backlog is published
    session_client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv311,
                                 clean_session=False)
    subscribed = threading.Event()
    session_client.on_subscribe = lambda *_args: subscribed.set()
    session_client.on_connect = lambda c, *_args: c.subscribe(topics, qos=1)
    session_client.connect("127.0.0.1", broker.port)
    session_client.loop_start()
    publisher = None
    runtime = None
    try:
        assert subscribed.wait(10)
        session_client.disconnect()
        session_client.loop_stop()
        publisher = TestPublisher(port=broker.port, client_id=f"{topic_base}-pub")
        for i in range(backlog):
            publisher.publish(f"{topic_base}/events/pir", orjson.dumps({
                "type": "motion", "event_id": f"e{i}", "ts": (T0 - timedelta(seconds=backlog - i)).isoformat()}))
        settings = load_settings(
            database={"url": db_url},
            mqtt={"url": f"mqtt://127.0.0.1:{broker.port}", "protocol": "3.1.1", "client_id": client_id,
                  "share_group": "", "batch_wait": "10ms", "batch_size": 20, "receive_maximum": limit,
                  "routes": [{"topic": topics, "format": "native"}]},
            clock={"mode": "manual", "start": T0.isoformat()}, rules={"tick": "0.1s"})
        runtime = Runtime(settings, process="test")
        with Session(runtime.engine) as session, session.begin():
            load_community(session, {**COMMUNITY, "residents": [
                {"ref": "r1", "name": "王", "micro_grid": "G1/B1", "devices": [{"id": "pir", "kind": "motion"}]}]},
                T0, runtime.policy.limits)
        consumer = runtime.consumer
        assert consumer is not None
        waiting: list[int] = []
        runtime.start()

        def stored() -> bool:
            waiting.append(consumer.status()["queue"])
            with Session(runtime.engine) as session:
                return session.scalar(select(func.count()).select_from(Event)) == backlog

        wait_for(stored, timeout=60, every=0.005, message=f"the backlog of {backlog} stored")
        assert max(waiting) <= limit
        with Session(runtime.engine) as session:
            assert session.scalar(select(func.count(func.distinct(Event.event_uid)))) == backlog
    finally:
        if publisher is not None:
            publisher.close()
        if runtime is not None:
            runtime.stop()
        broker.stop()
