"""Two ``shouwang serve`` processes on one PostgreSQL (SPEC section 6): they split the stream through an
MQTT 5 shared subscription on the machine's Mosquitto, read one manual clock from the database, and
both run the rule tick, yet every silent resident gets exactly one inactivity alarm, never two."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from alerts.models import Alarm, AlarmKind, Event, Resident
from sensors.formats import native
from tests.harness import T0, prepared_database
from tests.helpers import TestPublisher, wait_for
from tests.processes import ProcessGroup, serve_settings, ticked_since

pytestmark = pytest.mark.slow

H = timedelta(hours=1)
RESIDENTS = 24
SILENT = {f"r{i}" for i in range(RESIDENTS) if i % 2 == 0}  # active at T0 + 1 h, then silent
ACTIVE = {f"r{i}" for i in range(RESIDENTS)} - SILENT  # active again at T0 + 13 h
PROCESSES = ("two-a", "two-b")


def community() -> dict:
    return {"community": {"name": "two processes"},
            "grids": [{"name": "G1", "micro_grids": [{"name": "B1"}]}],
            "residents": [{"ref": f"r{i}", "name": f"resident {i}", "micro_grid": "G1/B1",
                           "devices": [{"id": f"pir-{i}", "kind": "motion"}]} for i in range(RESIDENTS)]}


def last_activity(engine: Engine) -> dict[str, datetime | None]:
    with Session(engine) as session:
        return dict(session.execute(select(Resident.external_ref, Resident.last_activity_at)).all())


def alarms_by_resident(engine: Engine) -> dict[str, list[Alarm]]:
    found: dict[str, list[Alarm]] = {}
    with Session(engine) as session:
        rows = session.execute(select(Resident.external_ref, Alarm).join(Alarm, Alarm.resident_id == Resident.id)
                               .where(Alarm.kind == AlarmKind.INACTIVITY)).all()
    for ref, alarm in rows:
        found.setdefault(ref, []).append(alarm)
    return found


def test_two_processes_on_a_shared_subscription_raise_each_alarm_once(tmp_path: Path, pg_url: str,
                                                                      topic_base: str) -> None:
    base = f"{topic_base}/events"
    engine, clock = prepared_database(pg_url, community())
    settings = serve_settings(pg_url, "mqtt://127.0.0.1:1883", topic_base, share_group=f"{topic_base}-group",
                              start=T0, mqtt={"session_expiry": "60s"})
    publisher = TestPublisher(1883, protocol=mqtt.MQTTv5, client_id=f"{topic_base}-pub")
    try:
        with ProcessGroup(tmp_path) as group:
            serves = [group.serve(name, settings, client_id=f"{topic_base}-{name}", api=True).start()
                      for name in PROCESSES]
            for serve in serves:
                serve.wait_connected(timeout=60)

            def activity(refs: set[str], at: datetime) -> None:
                """Motion from each of ``refs`` at ``at``; an event id makes sending one again harmless."""
                clock.set(at)

                def stored() -> bool:
                    group.check_alive()
                    latest = last_activity(engine)
                    missing = sorted(ref for ref in refs if latest[ref] != at)
                    for ref in missing:
                        publisher.publish(*native.render(f"pir-{ref[1:]}", "motion", event_id=f"{ref}@{at:%H}",
                                                         base=base), wait=False)
                    return not missing

                wait_for(stored, timeout=30, every=1.0, message=f"activity of {len(refs)} residents stored at {at}")

            activity(SILENT | ACTIVE, T0 + H)
            activity(ACTIVE, T0 + 13 * H)

            def received() -> list[float] | None:  # a process counts a batch just after committing it
                counts = [serve.metric("shouwang_mqtt_messages_total") for serve in serves]
                return counts if sum(counts) >= RESIDENTS + len(ACTIVE) else None

            messages = wait_for(received, timeout=10, message="both processes counted what they received")
            assert all(count > 0 for count in messages), f"the shared subscription did not split: {messages}"

            # the silent ones are due at T0 + 15 h exactly; both processes tick past it, several times
            due = T0 + 15 * H
            clock.set(due - timedelta(seconds=1))
            for process in PROCESSES:
                wait_for(lambda p=process: group.check_alive() or ticked_since(engine, p, due - timedelta(seconds=1)),
                         timeout=30, message=f"{process} ticked just before the deadline")
            assert alarms_by_resident(engine) == {}
            for step in range(5):
                instant = due + timedelta(seconds=step)
                clock.set(instant)
                for process in PROCESSES:
                    wait_for(lambda p=process, t=instant: group.check_alive() or ticked_since(engine, p, t),
                             timeout=30, message=f"{process} ticked at {instant}")

            alarms = alarms_by_resident(engine)
            assert set(alarms) == SILENT, "an alarm for each silent resident and for no active one"
            twice = {ref: len(found) for ref, found in alarms.items() if len(found) != 1}
            assert twice == {}, f"residents with more than one inactivity alarm: {twice}"
            assert all(found[0].opened_at == due and found[0].state == "open" for found in alarms.values())
            with Session(engine) as session:
                assert session.scalar(select(func.count()).select_from(Event)) == RESIDENTS + len(ACTIVE)
            for serve in serves:
                assert "rule tick failed" not in serve.log(), f"{serve.name}: a tick failed"
    finally:
        publisher.close()
        engine.dispose()
