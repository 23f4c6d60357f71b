"""``serve`` split into roles as separate processes on one PostgreSQL: an ingest-only process stores what
the broker brings, a rules-only process raises the alarm, an API-only process's live screen shows it
(it runs neither the consumer nor the tick)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import httpx2 as httpx
import orjson
import paho.mqtt.client as mqtt
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from alerts.clock import ManualClock
from alerts.db import make_engine
from alerts.models import Alarm, AlarmKind, Resident, WatchStatus
from alerts.registry.community import load_community
from alerts.rules import Limits
from api import accounts
from sensors.formats import native
from tests.conftest import T0
from tests.helpers import TestPublisher, wait_for
from tests.processes import ProcessGroup, serve_settings, ticked_since

pytestmark = pytest.mark.slow
H = timedelta(hours=1)


def test_ingest_rules_and_api_roles_as_separate_processes(tmp_path: Path, pg_url: str, topic_base: str) -> None:
    engine = make_engine(pg_url)
    clock = ManualClock(engine)
    clock.set(T0)
    with Session(engine) as session, session.begin():
        load_community(session, {"community": {"name": "roles"}, "grids": [{"name": "G", "micro_grids": [
            {"name": "M"}]}], "residents": [{"ref": "r1", "name": "住户", "micro_grid": "G/M", "latitude": 31.2,
                                             "longitude": 121.4, "devices": [{"id": "pir-1", "kind": "motion"}]}]},
                       T0, Limits(14 * H, 10 * H))
        token = accounts.token_for(session, T0, "operator", ttl=timedelta(days=3650))
    publisher = TestPublisher(1883, protocol=mqtt.MQTTv5, client_id=f"{topic_base}-pub")
    try:
        with ProcessGroup(tmp_path) as group:
            def settings(role: str) -> dict:
                return {**serve_settings(pg_url, "mqtt://127.0.0.1:1883", topic_base, start=T0), "roles": [role]}

            ingest = group.serve("ingest", settings("ingest"), client_id=f"{topic_base}-in").start()
            rules = group.serve("rules", settings("rules"), client_id=f"{topic_base}-ru").start()
            api = group.serve("api", settings("api"), client_id=f"{topic_base}-api", api=True).start()
            wait_for(lambda: group.check_alive() or api.health() is not None, timeout=60, message="the API")
            health = api.health()
            assert health is not None and health["broker"] is None and health["last_tick_age_seconds"] is None

            def stored() -> bool:
                group.check_alive()
                publisher.publish(*native.render("pir-1", "motion", event_id="e1", base=f"{topic_base}/events"),
                                  wait=False)
                with Session(engine) as session:
                    return session.scalar(select(Resident.last_activity_at)) == T0

            wait_for(stored, timeout=60, every=1.0, message="the ingest process stored the motion")
            seen: list[dict] = []
            with httpx.stream("GET", f"http://127.0.0.1:{api.api_port}/api/stream?transitions=0",
                              headers={"Authorization": f"Bearer {token}"}, timeout=60) as response:
                due = clock.set(T0 + 15 * H)
                for line in response.iter_lines():
                    group.check_alive()
                    if line.startswith("data:") and '"kpis"' in line:
                        seen.append(orjson.loads(line[5:]))
                        if seen[-1]["kpis"].get("open_alarms") == 1:
                            break
            assert seen[-1]["kpis"]["open_alarms"] == 1
            wait_for(lambda: group.check_alive() or ticked_since(engine, "rules", due), timeout=30,
                     message="the rules process's tick heartbeat")
            with Session(engine) as session:
                assert session.scalar(select(func.count()).select_from(Alarm)
                                      .where(Alarm.kind == AlarmKind.INACTIVITY)) == 1
                ticks = set(session.scalars(select(WatchStatus.name).where(WatchStatus.name.like("tick:%"))))
            assert ticks == {"tick:rules"}, "only the rules process ticks"
            assert ingest.running and rules.running
    finally:
        publisher.close()
        engine.dispose()
