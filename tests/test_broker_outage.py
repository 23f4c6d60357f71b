"""The watch watches itself (SPEC section 3): a consumer cut off from the broker for longer than
``rules.broker_down_alarm_after`` is a ``system`` alarm; the broker's return resolves it, and what the
broker kept for the consumer's persistent session meanwhile is ingested, not lost.

On the manual clock and the test's own Mosquitto with persistence:
(a) serve connects (its persistent session exists on the broker); (b) kill -9 serve: the session stays;
(c) publish K events, queued for the session; (d) stop the broker (SIGTERM saves the queue);
(e) restart serve, which cannot connect; move the clock past the limit: a system alarm opens;
(f) restart the broker on the same port and persistence: the alarm resolves and all K events are stored.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from alerts.models import Alarm, AlarmKind, Event, Outcome, Resident
from sensors.formats import native
from tests.harness import T0, prepared_database
from tests.helpers import TestPublisher, wait_for
from tests.processes import (
    PersistentMosquitto,
    ProcessGroup,
    publish_until_stored,
    serve_settings,
    tick_status,
    ticked_since,
)

pytestmark = pytest.mark.slow

K = 200
CLIENT_ID = "outage-consumer"
LIMIT = timedelta(seconds=60)

COMMUNITY = {
    "community": {"name": "outage"},
    "residents": [{"ref": f"r{i}", "name": f"resident {i}", "devices": [{"id": f"pir-{i}", "kind": "motion"}]}
                  for i in range(4)],
}


def system_alarms(engine: Engine) -> list[Alarm]:
    with Session(engine) as session:
        return list(session.scalars(select(Alarm).where(Alarm.kind == AlarmKind.SYSTEM).order_by(Alarm.id)))


def tagged_values(engine: Engine) -> list[int]:
    with Session(engine) as session:
        return sorted(int(v) for v in session.scalars(select(Event.value).where(Event.value.isnot(None))))


def test_broker_outage_is_a_system_alarm_and_the_queued_backlog_is_not_lost(tmp_path: Path, pg_url: str,
                                                                           topic_base: str) -> None:
    base = f"{topic_base}/events"
    engine, clock = prepared_database(pg_url, COMMUNITY)
    broker = PersistentMosquitto(tmp_path).start()
    settings = serve_settings(pg_url, broker.url, topic_base, start=T0,
                              rules={"broker_down_alarm_after": f"{LIMIT.total_seconds():g}s"})
    try:
        with ProcessGroup(tmp_path, extra_logs=(tmp_path / "mosquitto.log",)) as group:
            # (a) connected: its session, with the subscription, lives on the broker
            first = group.serve("outage-1", settings, client_id=CLIENT_ID, api=True).start()
            first.wait_connected(timeout=60)
            publisher = TestPublisher(broker.port, protocol=mqtt.MQTTv5, client_id=f"{topic_base}-pub")
            try:
                probe = native.render("pir-0", "motion", event_id="probe", base=base)
                publish_until_stored(publisher, engine, *probe, "probe", group)
                # (b) the consumer dies; (c) what is published meanwhile is queued for its session
                first.kill()
                infos = [publisher.client.publish(*native.render(f"pir-{n % 4}", "motion", value=n, base=base), qos=1)
                         for n in range(1, K + 1)]
                for info in infos:
                    info.wait_for_publish(timeout=30)
                assert all(info.is_published() for info in infos)
            finally:
                publisher.close()
            assert tagged_values(engine) == []

            # (d) the broker goes down, its persistence saved; (e) the consumer comes back, and cannot connect
            broker.stop()
            second = group.serve("outage-2", settings, client_id=CLIENT_ID, api=True)
            second.start()
            wait_for(lambda: group.check_alive() or _blind_tick(engine, "outage-2"), timeout=60,
                     message="outage-2 ticking without a broker")
            health = wait_for(second.health, timeout=30, message="outage-2's API answering")
            assert health["broker"]["connected"] is False
            assert system_alarms(engine) == [], "no system alarm before the limit"

            clock.advance(LIMIT - timedelta(seconds=1))
            instant = clock.now()
            wait_for(lambda: group.check_alive() or ticked_since(engine, "outage-2", instant, rules_ran=False),
                     timeout=30, message="outage-2 ticked just before the limit")
            assert system_alarms(engine) == [], "no system alarm before the limit"

            clock.advance(timedelta(seconds=2))
            raised = wait_for(lambda: group.check_alive() or system_alarms(engine), timeout=30,
                              message="a system alarm for the blind consumer")
            assert len(raised) == 1
            alarm = raised[0]
            assert alarm.state == "open" and alarm.system_key == f"broker:{CLIENT_ID}"
            assert "监护失明" in alarm.reason
            assert second.health()["open_system_alarms"] == 1
            # while blind, silence proves nothing: no resident alarm however long the outage
            clock.advance(timedelta(hours=15))
            instant = clock.now()
            wait_for(lambda: group.check_alive() or ticked_since(engine, "outage-2", instant, rules_ran=False),
                     timeout=30, message="outage-2 ticked 15 h later")
            assert [a.kind for a in _alarms(engine)] == [AlarmKind.SYSTEM]

            # (f) the broker is back, with what it kept for the session
            broker.start()
            recovered_at = clock.now()

            def recovered() -> bool:
                group.check_alive()
                alarms = system_alarms(engine)
                return len(alarms) == 1 and alarms[0].state == "resolved"

            wait_for(recovered, timeout=60, message="the system alarm resolved after the broker came back")
            resolved = system_alarms(engine)[0]
            assert resolved.outcome == Outcome.SYSTEM_RECOVERED and resolved.resolved_at >= recovered_at
            wait_for(lambda: group.check_alive() or len(tagged_values(engine)) >= K, timeout=60,
                     message=f"the {K} events queued during the outage stored")
            second.wait_connected(timeout=30)
            assert tagged_values(engine) == list(range(1, K + 1)), "each queued event stored once"
            with Session(engine) as session:
                latest = session.scalars(select(Resident.last_activity_at)).all()
            assert all(at is not None and at >= recovered_at for at in latest)
            # the backlog filled the gap before any rule acted on it: nothing but the (resolved) system alarm
            wait_for(lambda: group.check_alive() or ticked_since(engine, "outage-2", recovered_at), timeout=30,
                     message="outage-2 ran the rules after the outage")
            assert [a.kind for a in _alarms(engine)] == [AlarmKind.SYSTEM]
    finally:
        broker.stop()
        engine.dispose()


def _blind_tick(engine: Engine, process: str) -> bool:
    status = tick_status(engine, process)
    return status is not None and bool(status[1].get("skipped_rules"))


def _alarms(engine: Engine) -> list[Alarm]:
    with Session(engine) as session:
        return list(session.scalars(select(Alarm).order_by(Alarm.id)))
