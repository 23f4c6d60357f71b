"""``serve`` with ``mqtt.consumers = 2``: its own consumer and a child consumer process split the stream on
the shared subscription, one PostgreSQL stores every event exactly once, and SIGTERM stops both."""

from __future__ import annotations

import os
import signal
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.models import Event, Resident
from sensors.formats import native
from tests.harness import T0, prepared_database
from tests.helpers import TestPublisher, wait_for
from tests.processes import ProcessGroup, serve_settings

pytestmark = pytest.mark.slow

DEVICES = 20
EVENTS = 400


def community() -> dict:
    return {"community": {"name": "two consumers"},
            "grids": [{"name": "G1", "micro_grids": [{"name": "B1"}]}],
            "residents": [{"ref": f"r{i}", "name": f"resident {i}", "micro_grid": "G1/B1",
                           "devices": [{"id": f"pir-{i}", "kind": "motion"}]} for i in range(DEVICES)]}


def children_of(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def test_two_consumer_processes_store_every_event_exactly_once(tmp_path: Path, pg_url: str,
                                                                topic_base: str) -> None:
    base = f"{topic_base}/events"
    engine, _clock = prepared_database(pg_url, community())
    settings = serve_settings(pg_url, "mqtt://127.0.0.1:1883", topic_base, share_group=f"{topic_base}-group",
                              start=T0, mqtt={"session_expiry": "60s", "consumers": 2})
    publisher = TestPublisher(1883, protocol=mqtt.MQTTv5, client_id=f"{topic_base}-pub")
    client_id = f"{topic_base}-c"
    try:
        with ProcessGroup(tmp_path) as group:
            serve = group.serve("two-consumers", settings, client_id=client_id, api=True).start()
            serve.wait_connected(timeout=60)
            wait_for(lambda: group.check_alive() or f"client_id={client_id}-1" in serve.log(), timeout=60,
                     message="the second consumer process connected to the broker")
            assert serve.process is not None
            children = children_of(serve.process.pid)
            assert len(children) == 1

            # every event once, some twice (a device re-sending an event id is stored once too)
            for i in range(EVENTS):
                at = T0 - timedelta(minutes=30) + timedelta(seconds=i)
                uid = f"e{i}" if i % 2 == 0 else None
                publisher.publish(*native.render(f"pir-{i % DEVICES}", "motion", ts=at, event_id=uid, base=base),
                                  wait=False)
                if i % 10 == 0:
                    publisher.publish(*native.render(f"pir-{i % DEVICES}", "motion", ts=at, event_id=f"e{i}",
                                                     base=base), wait=False)

            def stored() -> int:
                group.check_alive()
                with Session(engine) as session:
                    return session.scalar(select(func.count()).select_from(Event)) or 0

            wait_for(lambda: stored() >= EVENTS, timeout=60, message=f"{EVENTS} events stored")
            wait_for(lambda: serve.metric("shouwang_mqtt_messages_total") > 0, timeout=10,
                     message="the serve's own consumer acknowledged messages")
            with Session(engine) as session:
                rows, distinct = session.execute(select(
                    func.count(), func.count(func.distinct(func.row(Event.device_id, Event.device_time))))).one()
                moved = session.scalar(select(func.count()).select_from(Resident)
                                       .where(Resident.last_activity_at.isnot(None)))
            assert (rows, distinct) == (EVENTS, EVENTS)
            assert moved == DEVICES
            # the stream was split: serve's own consumer received only part of it, the child the rest
            own = serve.metric("shouwang_mqtt_messages_total")
            assert 0 < own < EVENTS + EVENTS // 10

            # a consumer process that dies is started again, and stores what comes next
            os.kill(children[0], signal.SIGKILL)

            def restarted() -> list[int]:
                group.check_alive()
                now = children_of(serve.process.pid) if serve.process is not None else []
                return now if now and children[0] not in now else []

            children = wait_for(restarted, timeout=30, message="the consumer process started again")
            wait_for(lambda: serve.log().count(f"client_id={client_id}-1") >= 2, timeout=60,
                     message="the new consumer process connected")
            for i in range(EVENTS, EVENTS + 40):
                at = T0 - timedelta(minutes=30) + timedelta(seconds=i)
                publisher.publish(*native.render(f"pir-{i % DEVICES}", "motion", ts=at, base=base), wait=False)
            wait_for(lambda: stored() >= EVENTS + 40, timeout=60, message="the events after the restart stored")

            serve.stop()  # SIGTERM: the parent stops its child, both say goodbye to the broker
            assert serve.process.returncode == 0
            assert not any(Path(f"/proc/{pid}").exists() for pid in children)
            assert stored() == EVENTS + 40
    finally:
        publisher.close()
