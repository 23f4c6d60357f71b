"""The watch never waits for a screen: with 20 live screens connected to the same process and the
residents' activity changing all the time (every change a delta to every screen), a panic press still
gets its alarm and its first call placed (bounded wait; no timing asserted)."""

from __future__ import annotations

import threading
from datetime import timedelta

import httpx2 as httpx
import uvicorn
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from alerts.clock import ManualClock
from alerts.models import Alarm, AlarmKind, Attempt
from alerts.observations import Observation
from alerts.recording import record_batch
from alerts.registry.community import load_community
from api import accounts
from api.runtime import Runtime, ingest_policy
from config.settings import load_settings
from tests.conftest import T0
from tests.helpers import free_port, wait_for

RESIDENTS = 600
SCREENS = 20


def community() -> dict:
    residents = [{"ref": f"r{i}", "name": f"住户{i}", "micro_grid": "G/M", "latitude": 31.2 + i * 1e-4,
                  "longitude": 121.4, "phone": f"+86139{i:08d}", "devices": [{"id": f"pir-{i}", "kind": "motion"}]}
                 for i in range(RESIDENTS)]
    residents[0]["devices"].append({"id": "btn-0", "kind": "button"})
    return {"community": {"name": "load"}, "grids": [{"name": "G", "micro_grids": [{"name": "M"}]}],
            "workers": [{"name": "网格员", "phone": "+8613800000001", "role": "grid_worker", "grid": "G"}],
            "residents": residents}


def test_a_panic_call_goes_out_while_twenty_screens_take_a_stream_of_changes(db_url: str) -> None:
    settings = load_settings(database={"url": db_url}, clock={"mode": "manual", "start": T0.isoformat()},
                             rules={"device_offline_after": "30d", "tick": "0.2s"})
    runtime = Runtime(settings, ingest=False)
    assert isinstance(runtime.clock, ManualClock)
    runtime.clock.set(T0)
    with Session(runtime.engine) as session, session.begin():
        load_community(session, community(), T0, runtime.policy.limits, offline_after=timedelta(days=30))
        token = accounts.screen_token(session, T0, timedelta(days=3650))
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(runtime.app, host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off", timeout_graceful_shutdown=1))
    http = threading.Thread(target=server.run, daemon=True)
    stop = threading.Event()
    received = [0] * SCREENS

    def screen(i: int) -> None:
        try:
            read(i)
        except httpx.HTTPError:
            if not stop.is_set():  # the server closing at the end is expected; anything before is not
                raise

    def read(i: int) -> None:
        with httpx.stream("GET", f"http://127.0.0.1:{port}/api/stream?transitions=0",
                          headers={"Authorization": f"Bearer {token}"}, timeout=60) as response:
            for line in response.iter_lines():
                if line.startswith("event:"):
                    received[i] += 1
                if stop.is_set():
                    return

    def churn() -> None:  # one resident's activity after another, as ingest commits it (bounded)
        for n in range(3000):
            if stop.is_set():
                return
            with runtime.engine.begin() as conn:
                conn.execute(text("UPDATE residents SET last_activity_at = :at WHERE external_ref = :ref"),
                             {"at": T0 + timedelta(seconds=n % 50), "ref": f"r{1 + n % (RESIDENTS - 1)}"})

    threads = [threading.Thread(target=screen, args=(i,), daemon=True) for i in range(SCREENS)]
    try:
        runtime.start()
        http.start()
        wait_for(lambda: server.started, message="the HTTP server")
        for thread in threads:
            thread.start()
        wait_for(lambda: all(received), timeout=120, message="every screen got its picture")
        load = threading.Thread(target=churn, daemon=True)
        load.start()
        wait_for(lambda: sum(received) > 4 * SCREENS, timeout=120, message="the screens take deltas")
        with Session(runtime.engine) as session, session.begin():
            result = record_batch(session, [Observation(device="btn-0", kind="button", value="single", topic="t",
                                                        delivery_key="panic-1")], [], T0, ingest_policy(settings))
        [alarm_id] = result.panic_alarms

        def first_call() -> bool:
            with Session(runtime.engine) as session:
                return session.scalars(select(Attempt).where(Attempt.alarm_id == alarm_id, Attempt.channel == "voice",
                                                             Attempt.sent_at.isnot(None))).first() is not None

        wait_for(first_call, timeout=60, every=0.1, message="the panic alarm's first call placed")
        with Session(runtime.engine) as session:
            assert session.get(Alarm, alarm_id).kind == AlarmKind.PANIC
        assert load.is_alive() or sum(received) > 4 * SCREENS
    finally:
        stop.set()
        server.should_exit = server.force_exit = True
        http.join(timeout=10)
        runtime.stop()
