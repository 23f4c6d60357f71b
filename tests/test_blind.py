"""The watch watches itself: every blind state is a system alarm, a banner on the screens it serves and a
failing /healthz, raised and cleared (SPEC section 3). Real parts: the machine's PostgreSQL reached through a
TCP proxy the test starts and stops (never the server itself), the machine's Mosquitto, a watchdog that is
a plain HTTP server of the test."""

from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any, ClassVar

import httpx2 as httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from alerts import blind as blind_mod
from alerts.models import Alarm, AlarmKind, AlarmState
from api import accounts
from api.runtime import Runtime
from config.settings import Settings, load_settings
from tests.conftest import T0
from tests.helpers import ROOT, TestPublisher, free_port, wait_for
from tests.tcp_relay import TcpRelay


def _system(engine: Any, key_prefix: str) -> list[Alarm]:
    with Session(engine) as session:
        return [a for a in session.scalars(select(Alarm).where(Alarm.kind == AlarmKind.SYSTEM).order_by(Alarm.id))
                if (a.system_key or "").startswith(key_prefix)]


def _settings(db_url: str, topic_base: str, **rules: Any) -> Settings:
    return load_settings(
        database={"url": db_url},
        mqtt={"url": "mqtt://127.0.0.1:1883", "protocol": "5", "client_id": f"{topic_base}-svc", "share_group": "",
              "session_expiry": "120s", "batch_wait": "10ms",
              "routes": [{"topic": f"{topic_base}/events/#", "format": "native"}]},
        clock={"mode": "manual", "start": T0.isoformat()},
        rules={"tick": "0.1s", **rules},
    )


# -- scheduler not ticking ---------------------------------------------------------------------------------
def test_a_stopped_scheduler_is_seen_by_the_api_only_process_and_cleared_when_ticks_resume(
        db_url: str, topic_base: str) -> None:
    settings = _settings(db_url, topic_base, tick_stale_after="1s")
    ticking = Runtime(settings, process="ticking", ingest=False)
    api_only = Runtime(settings.model_copy(update={"roles": ["api"]}), process="api-only", ingest=False)
    ticking.start()
    api_only.start()
    try:
        wait_for(lambda: ticking.watch.last_tick_real is not None, message="a first tick")
        wait_for(lambda: api_only.blind.checks > 2, message="the API process looked")
        assert _system(ticking.engine, "scheduler") == []
        health = TestClient(api_only.app)
        ticking.watch.stop()  # the only scheduler stops; the API-only process must notice
        [alarm] = wait_for(lambda: _system(ticking.engine, "scheduler"), message="the scheduler alarm")
        assert alarm.state == AlarmState.OPEN and alarm.reason_code == "scheduler_stale" and "监护失明" in alarm.reason
        wait_for(lambda: any(b["what"] == blind_mod.SCHEDULER for b in api_only.blind.state()),
                 message="the API-only process knows")
        response = health.get("/healthz")
        assert response.status_code == 503 and response.json()["blind"]
        # ticks again (run by hand here): the alarm closes itself
        wait_for(lambda: (ticking.watch.run_tick(), _system(ticking.engine, "scheduler")[0].state == "resolved")[1],
                 message="the scheduler alarm resolved")
        wait_for(lambda: not any(b["what"] == blind_mod.SCHEDULER for b in api_only.blind.state()),
                 message="the banner cleared")
        assert len(_system(ticking.engine, "scheduler")) == 1  # one alarm for all processes
    finally:
        api_only.stop()
        ticking.stop()


# -- ingest behind -----------------------------------------------------------------------------------------
def test_stalled_ingest_commits_are_a_system_alarm_and_the_lag_gauge_is_set(pg_url: str, topic_base: str) -> None:
    """The consumer's commits are held by a lock on the events and quarantine tables (a slow or stuck
    database); reads and the alarm's own writes go on."""
    settings = _settings(pg_url, topic_base, ingest_behind_after="1s")
    runtime = Runtime(settings, process="ingest")
    runtime.start()
    assert runtime.consumer is not None
    consumer = runtime.consumer
    publisher = TestPublisher()
    locker = create_engine(pg_url)
    try:
        wait_for(lambda: consumer.status()["caught_up"], message="consumer ready")
        with locker.connect() as connection:
            transaction = connection.begin()
            connection.execute(text("LOCK TABLE events, quarantine IN EXCLUSIVE MODE"))
            publisher.publish(f"{topic_base}/events/stalled-1", b'{"type": "heartbeat"}')
            [alarm] = wait_for(lambda: _system(runtime.engine, "ingest:"), timeout=30, message="the ingest alarm")
            assert alarm.reason_code == "ingest_behind" and alarm.state == AlarmState.OPEN
            lag = runtime.metrics.registry.get_sample_value("shouwang_ingest_lag_seconds")
            assert lag is not None and lag > 1
            assert any(b["what"] == blind_mod.INGEST for b in runtime.blind.state())
            transaction.rollback()
        wait_for(lambda: _system(runtime.engine, "ingest:")[0].state == AlarmState.RESOLVED, timeout=30,
                 message="the ingest alarm resolved")
        assert runtime.metrics.registry.get_sample_value("shouwang_ingest_lag_seconds") == 0
    finally:
        publisher.close()
        locker.dispose()
        runtime.stop()


# -- database unreachable ------------------------------------------------------------------------------------
@pytest.fixture
def proxied_pg(pg_url: str) -> Iterator[tuple[str, TcpRelay]]:
    url = make_url(pg_url)
    proxy = TcpRelay(url.port or 5432).start()
    yield url.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False), proxy
    proxy.stop()


def _read_events(lines: Iterator[str], until: Any, limit: int = 400) -> list[tuple[str, Any]]:
    """Read SSE events until ``until(events)`` holds (bounded by ``limit`` lines)."""
    events: list[tuple[str, Any]] = []
    kind = None
    for n, line in enumerate(lines):
        if n > limit:
            break
        if line.startswith("event:"):
            kind = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and kind:
            events.append((kind, orjson.loads(line.split(":", 1)[1].strip() or "null")))
            if until(events):
                break
    return events


def test_a_cut_database_is_told_to_the_screen_and_recorded_as_a_system_alarm_when_back(
        proxied_pg: tuple[str, TcpRelay], topic_base: str) -> None:
    url, proxy = proxied_pg
    settings = _settings(url, topic_base)
    settings = settings.model_copy(update={"clock": settings.clock.model_copy(update={"mode": "system"})})
    runtime = Runtime(settings, process="web", ingest=False)
    runtime.start()
    port = free_port()
    runtime.serve_http("127.0.0.1", port, background=True)
    base = f"http://127.0.0.1:{port}"
    try:
        with Session(runtime.engine) as session, session.begin():
            token = accounts.token_for(session, runtime.clock.now(), "screen", ttl=timedelta(days=1))
        wait_for(lambda: httpx.get(f"{base}/healthz", timeout=5).status_code == 200, message="healthy")
        with httpx.stream("GET", f"{base}/api/stream", params={"token": token}, timeout=30) as response:
            lines = response.iter_lines()
            first = _read_events(lines, lambda ev: any(k == "state" for k, _ in ev))
            assert ("blind", []) in first  # the screen is told it sees
            proxy.stop()  # the database is gone for this process
            cut = _read_events(lines, lambda ev: any(k == "blind" and ev_data for k, ev_data in ev))
        blind = next(data for kind, data in cut if kind == "blind" and data)
        assert blind[0]["what"] == "database unreachable"
        health = wait_for(lambda: (r := httpx.get(f"{base}/healthz", timeout=10)).status_code == 503 and r,
                          message="healthz fails")
        assert not health.json()["database_ok"]
        proxy.start()
        records = wait_for(lambda: _records(runtime), timeout=30, message="the outage recorded")
        record = records[0]
        assert record.reason_code == "database_outage" and "无法连接数据库" in record.reason
        assert record.reason_params and record.reason_params["since"] <= record.reason_params["until"]
        wait_for(lambda: httpx.get(f"{base}/healthz", timeout=5).status_code == 200, message="healthy again")
    finally:
        proxy.start()
        runtime.stop()


def _records(runtime: Runtime) -> list[Alarm]:
    try:
        return _system(runtime.engine, "database:")
    except Exception:
        return []


# -- someone watches the watch ------------------------------------------------------------------------------
class _Pings(http.server.BaseHTTPRequestHandler):
    seen: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        _Pings.seen.append(self.path)
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"OK")

    def log_message(self, *_args: Any) -> None:
        return


def test_the_watchdog_pings_while_all_is_well_and_pings_fail_while_blind() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Pings)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    is_blind = [False]
    dog = blind_mod.Watchdog(f"http://127.0.0.1:{server.server_address[1]}/ping/abc", lambda: is_blind[0],
                             timedelta(seconds=60), timedelta(seconds=5))
    try:
        dog.ping_once()
        is_blind[0] = True
        dog.ping_once()
        assert _Pings.seen[-2:] == ["/ping/abc", "/ping/abc/fail"]
    finally:
        server.shutdown()


def test_the_prometheus_alerting_rules_are_valid() -> None:
    rules = ROOT / "config" / "prometheus-alerts.yml"
    promtool = shutil.which("promtool")
    if promtool:
        result = subprocess.run([promtool, "check", "rules", str(rules)], capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr
    import yaml  # the fallback: the file at least parses, and names only metrics Shouwang exports

    data = yaml.safe_load(rules.read_text())
    exported = {"shouwang_last_tick_timestamp_seconds", "shouwang_ingest_lag_seconds", "shouwang_broker_connected",
                "shouwang_blind", "shouwang_alarms_open", "shouwang_infrastructure_incidents_open"}
    used = {word for group in data["groups"] for rule in group["rules"] for word in
            rule["expr"].replace("(", " ").replace(")", " ").replace("{", " ").split() if word.startswith("shouwang_")}
    assert used and used <= exported
    from alerts.metrics import Metrics

    registered = {m.name for m in Metrics().registry.collect()}
    assert {u.removesuffix("_total") for u in used} <= registered | {"shouwang_alarms_open"}


def test_tick_staleness_is_judged_on_the_newest_tick_of_any_process() -> None:
    assert blind_mod.tick_stale([], 100.0, timedelta(seconds=30))
    assert not blind_mod.tick_stale([50.0, 90.0], 100.0, timedelta(seconds=30))
    assert blind_mod.tick_stale([50.0, 60.0], 100.0, timedelta(seconds=30))



