"""kill -9 of a consumer mid-stream (SPEC section 2 and 7): nothing lost, nothing stored twice, no
alarm raised twice.

A whole ``shouwang serve`` on PostgreSQL and the test's own Mosquitto takes 20,000 QoS 1 native events,
most of them without an event id, so that only the DUP / delivery-key path keeps a redelivery from
being stored twice. To make sure the crash leaves messages that were committed but never
acknowledged (the case that path exists for), the consumer talks to the broker through a relay that,
just before the kill, stops passing the consumer's packets (its PUBACKs) on: what it commits from then
on is certain to come back, with DUP set, after the restart.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from alerts.models import Alarm, AlarmKind, Event, Resident
from sensors.formats import native
from tests.harness import T0, prepared_database
from tests.helpers import TestPublisher, wait_for
from tests.processes import PersistentMosquitto, ProcessGroup, publish_until_stored, serve_settings, ticked_since
from tests.tcp_relay import TcpRelay

pytestmark = pytest.mark.slow

EVENTS = 20_000
RESIDENTS = 200
BUTTONS = 10  # residents 0..9 also have a panic button
WITH_EVENT_ID = 10  # every 10th event carries an event id; the others only have their delivery
KILL_AFTER = 2_000
CLIENT_ID = "crash-consumer"


def community() -> dict:
    residents = []
    for i in range(RESIDENTS):
        devices = [{"id": f"pir-{i}", "kind": "motion"}]
        if i < BUTTONS:
            devices.append({"id": f"btn-{i}", "kind": "button"})
        residents.append({"ref": f"r{i}", "name": f"resident {i}", "devices": devices})
    return {"community": {"name": "crash test"}, "residents": residents}


def message(n: int, base: str) -> tuple[str, bytes]:
    """Event number ``n`` (1..EVENTS), tagged by ``value = n`` so every one can be found once."""
    i = n % RESIDENTS
    event_id = f"e{n}" if n % WITH_EVENT_ID == 0 else None
    if i < BUTTONS and (n // RESIDENTS) % 10 == 3:  # ten presses of each button
        return native.render(f"btn-{i}", "button", event_id=event_id, value=n, base=base)
    return native.render(f"pir-{i}", "motion", event_id=event_id, value=n, base=base)


def tagged_events(engine: Engine) -> int:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(Event).where(Event.value.isnot(None))) or 0


def stored_uid(engine: Engine, uid: str) -> bool:
    with Session(engine) as session:
        return session.scalar(select(func.count()).select_from(Event).where(Event.event_uid == uid)) == 1


def test_kill_9_mid_stream_loses_nothing_and_stores_nothing_twice(tmp_path: Path, pg_url: str,
                                                                  topic_base: str) -> None:
    base = f"{topic_base}/events"
    engine, clock = prepared_database(pg_url, community())

    broker = PersistentMosquitto(tmp_path).start()
    relay = TcpRelay(broker.port).start()
    publisher: TestPublisher | None = None
    settings = serve_settings(pg_url, f"mqtt://127.0.0.1:{relay.port}", topic_base)
    direct = serve_settings(pg_url, broker.url, topic_base)
    try:
        with ProcessGroup(tmp_path, extra_logs=(tmp_path / "mosquitto.log",)) as group:
            first = group.serve("crash-1", settings, client_id=CLIENT_ID).start()
            wait_for(lambda: group.check_alive() or ticked_since(engine, "crash-1", T0), timeout=60,
                     message="the first serve process connected and ticking")
            publisher = TestPublisher(broker.port, protocol=mqtt.MQTTv5, client_id=f"{topic_base}-pub")

            # the consumer's subscription is in place once a probe comes through
            probe = native.render("pir-0", "motion", event_id="probe", base=base)
            publish_until_stored(publisher, engine, *probe, "probe", group)

            infos: list[mqtt.MQTTMessageInfo] = []

            def publish_all() -> None:
                assert publisher is not None
                for n in range(1, EVENTS + 1):
                    infos.append(publisher.client.publish(*message(n, base), qos=1))

            sender = threading.Thread(target=publish_all, name="publisher")
            sender.start()

            # the kill is decided by rows committed, not by a timer
            wait_for(lambda: group.check_alive() or tagged_events(engine) > KILL_AFTER, timeout=120,
                     message=f"more than {KILL_AFTER} events committed")
            relay.hold()
            held_at = tagged_events(engine)
            # what is committed from now on is never acknowledged to the broker
            wait_for(lambda: group.check_alive() or tagged_events(engine) >= held_at + 500, timeout=60,
                     message="events committed while their PUBACKs are held back")
            first.kill()
            at_kill = tagged_events(engine)
            committed_unacked = at_kill - held_at
            assert KILL_AFTER < at_kill < EVENTS, "the kill must come mid-stream"

            # the publisher finishes whatever happened to the consumer: the broker keeps it for the session
            sender.join(timeout=120)
            assert not sender.is_alive(), "the publisher did not finish"
            for info in infos:
                info.wait_for_publish(timeout=60)
            assert all(info.is_published() for info in infos)

            second = group.serve("crash-2", direct, client_id=CLIENT_ID, api=True).start()
            # a last event, sent after everything else, comes through last: then the backlog is drained
            publisher.publish(*native.render("pir-1", "motion", event_id="sentinel", base=base))
            wait_for(lambda: group.check_alive() or stored_uid(engine, "sentinel"), timeout=120,
                     message="the backlog drained after the restart")
            wait_for(lambda: tagged_events(engine) >= EVENTS, timeout=30,
                     message=f"all {EVENTS} events stored")

            with Session(engine) as session:
                values = session.scalars(select(Event.value).where(Event.value.isnot(None))).all()
            assert len(values) == EVENTS, f"{len(values) - EVENTS} events stored more than once"
            assert sorted(int(v) for v in values) == list(range(1, EVENTS + 1))
            # the held-back ones did come again, as redeliveries, and were recognised
            assert second.metric("shouwang_duplicates_total") >= committed_unacked

            # the restarted process's rules work on the restored state: one alarm per resident and kind
            later = T0 + timedelta(hours=15)
            clock.set(later)
            for step in range(3):
                instant = later + timedelta(seconds=step)
                clock.set(instant)
                wait_for(lambda instant=instant: group.check_alive() or ticked_since(engine, "crash-2", instant),
                         timeout=30, message=f"crash-2 ticked at {instant}")
            with Session(engine) as session:
                residents = session.scalar(select(func.count()).select_from(Resident))
                per_kind = dict(session.execute(select(Alarm.kind, func.count()).group_by(Alarm.kind)).all())
                repeated = session.execute(
                    select(Alarm.kind, Alarm.resident_id, Alarm.device_id, Alarm.system_key, func.count())
                    .group_by(Alarm.kind, Alarm.resident_id, Alarm.device_id, Alarm.system_key)
                    .having(func.count() > 1)).all()
            assert repeated == [], f"alarms raised twice: {repeated}"
            assert per_kind.get(AlarmKind.PANIC) == BUTTONS
            assert per_kind.get(AlarmKind.INACTIVITY) == residents == RESIDENTS
            assert tagged_events(engine) == EVENTS
    finally:
        if publisher is not None:
            publisher.close()
        relay.stop()
        broker.stop()
        engine.dispose()
