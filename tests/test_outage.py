"""Outages are one incident (issue 15, SPEC section 3): the simulator's ``gateway-dark`` scenario end to end
over the machine's real Mosquitto, a whole Shouwang process on the manual clock (SQLite and PostgreSQL).

The scenario is the shipped one with a 4 h inactivity window (so that windows run out inside the outage
without simulating a whole day), fewer homes, and a resident who fell an hour before the outage."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from alerts.clock import ManualClock
from alerts.models import Alarm, AlarmState, Attempt, AttemptStatus, Gateway, Grid, QuarantinedMessage, Resident
from alerts.registry.community import load_community
from api import accounts
from api.runtime import Runtime
from config.settings import Settings
from simulator.scenario import Scenario, load_scenario
from tests.conftest import T0
from tests.helpers import TestPublisher, wait_for
from tests.scenario_run import ScenarioRun, steps

H = timedelta(hours=1)
M = timedelta(minutes=1)
WINDOW = 4 * H
HOLD = 30 * M


def _settings(settings: Settings) -> Settings:
    rules = settings.rules.model_copy(update={"inactivity_window": WINDOW, "early_warning": 3 * H})
    return settings.model_copy(update={"rules": rules})


def _dark(backlog: bool, homes: list[str] | None = None, fall: bool = True) -> Scenario:
    shipped = load_scenario("gateway-dark")
    dark: dict[str, Any] = {"kind": "gateway_dark", "at": "2h", "for": "4h30m", "backlog": backlog}
    if homes:
        dark["homes"] = homes
    incidents = [dark, *([{"kind": "fall", "home": 1, "at": "1h"}] if fall else [])]
    return dataclasses.replace(shipped, community={**shipped.community, "homes": 24}, incidents=incidents)


@pytest.fixture
def make_run(service_settings: Settings, topic_base: str) -> Iterator[Any]:
    runs: list[ScenarioRun] = []

    def make(scenario: Scenario) -> ScenarioRun:
        runs.append(ScenarioRun(_settings(service_settings), topic_base, scenario, T0))
        return runs[-1]

    yield make
    for run in runs:
        run.close()


def _resident(run: ScenarioRun, ref: str) -> Resident:
    with Session(run.runtime.engine) as session:
        return session.scalars(select(Resident).where(Resident.external_ref == ref)).one()


def _open_incidents(run: ScenarioRun) -> list[Alarm]:
    return [a for a in run.alarms("infrastructure") if a.state != AlarmState.RESOLVED]


def _attempts_of(run: ScenarioRun, alarm_id: int) -> list[Attempt]:
    with Session(run.runtime.engine) as session:
        return list(session.scalars(select(Attempt).where(Attempt.alarm_id == alarm_id,
                                                          Attempt.status != AttemptStatus.SKIPPED)))


def _walk(run: ScenarioRun, end: datetime) -> dict[str, Any]:
    """Step the run to ``end``; note when the first incident opened and the most incidents open at once."""
    dark = run.sim.incident("gateway_dark")
    seen: dict[str, Any] = {"first_open": None, "most_open": 0}
    extra = {dark.at + k * M for k in range(0, 16)}
    for instant in steps(T0, end, 5 * M, extra):
        run.step(instant)
        opened = _open_incidents(run)
        if opened and seen["first_open"] is None:
            seen["first_open"] = instant
        if dark.at <= instant < (dark.until or end):
            seen["most_open"] = max(seen["most_open"], len(opened))
    return seen


@pytest.mark.parametrize("backlog", [False, True], ids=["messages-lost", "backlog-delivered"])
def test_a_dark_community_is_one_incident_and_no_family_is_called_during_the_hold(
        make_run: Any, backlog: bool) -> None:
    run = make_run(_dark(backlog))
    dark = run.sim.incident("gateway_dark")
    assert dark.until is not None
    seen = _walk(run, dark.until + 30 * M)

    # ONE infrastructure alarm, within 15 minutes of the outage (a smaller group found a tick earlier is
    # merged into it, never left open beside it)
    assert seen["first_open"] is not None and seen["first_open"] <= dark.at + 15 * M
    assert seen["most_open"] == 1
    incidents = run.alarms("infrastructure")
    assert all(a.outcome == "merged" for a in incidents[:-1]), [
        (a.code, str(a.opened_at), str(a.resolved_at), a.outcome, a.reason, a.scope) for a in incidents[:-1]]
    main = incidents[-1]
    assert main.scope and main.scope["group"].startswith("community:") and len(main.scope["residents"]) == 24
    assert main.state == AlarmState.RESOLVED and main.outcome == "reporting_again"  # the group reports again
    # no per-device offline flood: not one maintenance alarm or SMS while it was open
    flood = [a for a in run.alarms("device_offline") if dark.at <= a.opened_at <= dark.until]
    assert flood == [], [(a.code, str(a.opened_at), a.reason_code, a.reason) for a in flood[:3]]
    assert not [a for a in run.attempts() if a.template == "maintenance_sms"]
    # the incident itself: the grid worker and the supervisor by SMS, nobody called
    targets = {(a.target, a.channel) for a in _attempts_of(run, main.id)}
    assert targets == {("grid_worker", "sms"), ("supervisor", "sms")}

    # the residents whose window ran out inside the outage: marked, check-called, the centre called, and
    # no family before the hold ended
    inside = [a for a in run.alarms("inactivity") if dark.at <= a.opened_at < dark.until]
    assert inside and all(a.possibly_infrastructure and a.incident_id is not None for a in inside), [
        (a.code, a.opened_at, a.possibly_infrastructure, a.incident_id, a.reason) for a in inside]
    attempts = {a.id: _attempts_of(run, a.id) for a in inside}
    assert any(t.target == "resident" and t.channel == "voice" for ts in attempts.values() for t in ts)
    assert any(t.target == "supervisor" and t.channel == "voice" for ts in attempts.values() for t in ts)
    for alarm in inside:
        assert alarm.policy and alarm.policy["hold"] == "1800s"  # the infrastructure variant, 30 min
        early = [t for t in attempts[alarm.id] if t.target == "family" and t.created_at < alarm.opened_at + HOLD]
        assert early == [], f"family called during the hold of {alarm.code}"

    # the resident who really fell an hour before the outage: alarmed inside it, marked, family called
    # after the hold (never suppressed)
    fallen = _resident(run, "r001")
    [fall] = [a for a in inside if a.resident_id == fallen.id]
    family = [t for t in attempts[fall.id] if t.target == "family"]
    assert family and all(t.created_at >= fall.opened_at + HOLD for t in family)
    assert fall.state != AlarmState.RESOLVED

    if backlog:
        # the backlog filled their gap: no resident alarm left open that it explains
        with Session(run.runtime.engine) as session:
            for alarm in run.alarms("inactivity"):
                resident = session.get(Resident, alarm.resident_id)
                assert resident is not None
                explained = resident.last_activity_at is not None and \
                    resident.last_activity_at + WINDOW > alarm.opened_at
                assert not (explained and alarm.state != AlarmState.RESOLVED), alarm.code
        assert any(a.outcome == "activity_resumed" for a in inside)


def test_one_dark_gateway_is_one_incident_for_that_gateway_and_the_other_homes_are_unaffected(
        make_run: Any, service_settings: Settings) -> None:
    probe = dataclasses.replace(load_scenario("gateway-dark"), incidents=[],
                                community={**load_scenario("gateway-dark").community, "homes": 24,
                                           "formats": {"native": 2, "zigbee2mqtt": 1}})
    zigbee = [h.ref for h in probe.build(T0, service_settings.tz).community.homes if h.fmt == "zigbee2mqtt"]
    scenario = dataclasses.replace(_dark(False, zigbee, fall=False), community=probe.community)
    run = make_run(scenario)
    dark = run.sim.incident("gateway_dark")
    _walk(run, dark.at + 3 * H)
    incidents = run.alarms("infrastructure")
    assert len(incidents) == 1, [(a.code, str(a.opened_at), a.outcome, a.reason, a.scope) for a in incidents]
    [incident] = incidents
    with Session(run.runtime.engine) as session:
        gateway = session.scalars(select(Gateway)).one()
        refs = dict(session.execute(select(Resident.id, Resident.external_ref)).all())
    assert incident.scope and incident.scope["group"] == f"gateway:{gateway.id}"
    assert {refs[r] for r in incident.scope["residents"]} == set(zigbee)
    # the other homes: no alarm of any kind, nobody marked
    others = {r for r, ref in refs.items() if ref not in zigbee}
    assert not [a for a in run.alarms() if a.resident_id in others]
    assert not [a for a in run.alarms("device_offline")]


def test_a_zigbee2mqtt_bridge_reporting_offline_opens_the_gateway_incident_at_once(
        service_settings: Settings, topic_base: str) -> None:
    base = f"{topic_base}/z2m"
    runtime = Runtime(service_settings, process="test")
    data = {"community": {"name": "测试社区"}, "grids": [{"name": "一网格", "micro_grids": [{"name": "1号楼"}]}],
            "gateways": [{"id": base, "kind": "zigbee2mqtt", "name": "1号楼网关"}],
            "workers": [{"name": "李娜", "phone": "+8613800000001", "role": "grid_worker", "grid": "一网格"}],
            "residents": [{"ref": f"r{i}", "name": f"老人{i}", "micro_grid": "一网格/1号楼",
                           "devices": [{"id": f"pir-{i}", "kind": "motion", "gateway": base}]} for i in range(3)]}
    with Session(runtime.engine) as session, session.begin():
        load_community(session, data, T0, runtime.policy.limits)
    with running(runtime) as publisher:
        publisher.publish(f"{base}/bridge/state", b'{"state": "offline"}')
        # at once: the clock does not move, no silence has to pass
        [incident] = wait_for(lambda: [a for a in _alarms(runtime) if a.kind == "infrastructure"],
                              message="the gateway incident")
        assert incident.scope and incident.scope["gateway_offline"] and len(incident.scope["residents"]) == 3
        assert incident.reason_code == "gateway_offline" and "报告离线" in incident.reason
        publisher.publish(f"{base}/bridge/state", b"online")  # the legacy plain-text form
        wait_for(lambda: _alarms(runtime)[0].state == AlarmState.RESOLVED, message="resolved")
        # a bridge nobody registered is quarantined like an unknown device
        publisher.publish(f"{topic_base}/z2m-other/bridge/state", b"offline")


def test_an_unknown_gateway_is_quarantined(service_settings: Settings, topic_base: str) -> None:
    runtime = Runtime(service_settings, process="test")
    with running(runtime) as publisher:
        publisher.publish(f"{topic_base}/z2m/bridge/state", b'{"state": "offline"}')

        def held() -> list[QuarantinedMessage]:
            with Session(runtime.engine) as session:
                return list(session.scalars(select(QuarantinedMessage)))

        [message] = wait_for(held, message="quarantined")
        assert message.reason == "unknown_gateway" and message.device_external_id == f"{topic_base}/z2m"
        assert _alarms(runtime) == []


def _alarms(runtime: Runtime) -> list[Alarm]:
    with Session(runtime.engine) as session:
        return list(session.scalars(select(Alarm).order_by(Alarm.id)))


@pytest.mark.parametrize("release", ["incident-over", "not-infrastructure"])
def test_while_the_centre_has_acknowledged_the_incident_the_family_stays_held_until_it_is_over(
        service_settings: Settings, topic_base: str, release: str) -> None:
    """The outage is explained (a person took the incident): the families of residents whose window ran out
    meanwhile are not called after the hold; they are once the network is back and the alarm still open, or
    at once when a person at the centre says "not infrastructure: escalate" on the alarm."""
    base = f"{topic_base}/z2m"
    settings = _settings(service_settings)
    runtime = Runtime(settings, process="test")
    clock = runtime.clock
    assert isinstance(clock, ManualClock)
    data = {"community": {"name": "测试社区"}, "grids": [{"name": "一网格", "micro_grids": [{"name": "1号楼"}]}],
            "gateways": [{"id": base, "kind": "zigbee2mqtt", "name": "1号楼网关"}],
            "workers": [{"name": "李娜", "phone": "+8613800000001", "role": "grid_worker", "grid": "一网格"},
                        {"name": "陈静", "phone": "+8613800000003", "role": "supervisor"}],
            "residents": [{"ref": "r0", "name": "王秀英", "phone": "+867178000000", "micro_grid": "一网格/1号楼",
                           "devices": [{"id": "pir-0", "kind": "motion", "gateway": base}],
                           "contacts": [{"name": "王强", "phone": "+8613900000011"}]}]}
    with Session(runtime.engine) as session, session.begin():
        load_community(session, data, T0, runtime.policy.limits)
        token = accounts.token_for(session, T0, "operator", ttl=timedelta(days=3))
    api = TestClient(runtime.app, headers={"Authorization": f"Bearer {token}"})
    runtime.start()
    publisher = TestPublisher()

    def settle(instant: datetime) -> None:
        clock.set(instant)
        mark = time.monotonic()
        for _ in range(3):  # whole ticks (rules and escalation) at this instant
            wait_for(lambda mark=mark: (runtime.watch.last_tick_real or 0) > mark
                     and runtime.watch.last_tick_at == instant, message="a tick at the instant")
            mark = time.monotonic()

    def family_calls() -> list[Attempt]:
        return [a for a in run_attempts(runtime) if a.target == "family"]

    try:
        assert runtime.consumer is not None
        wait_for(lambda: runtime.consumer.status()["caught_up"], message="consumer ready")  # type: ignore[union-attr]
        publisher.publish(f"{base}/bridge/state", b"offline")
        [incident] = wait_for(lambda: [a for a in _alarms(runtime) if a.kind == "infrastructure"], message="incident")
        assert api.post(f"/api/alarms/{incident.id}/acknowledge").status_code == 200  # the centre is on it
        settle(T0 + WINDOW + M)  # her window runs out inside the outage
        [alarm] = [a for a in _alarms(runtime) if a.kind == "inactivity"]
        assert alarm.possibly_infrastructure and alarm.incident_id == incident.id
        for minutes in (5, 20, 40, 60, 90):
            settle(T0 + WINDOW + minutes * M)
        assert family_calls() == []  # far past the 30-minute hold: the outage is explained, she is held
        assert any(a.target == "resident" for a in run_attempts(runtime))  # the check call went out
        if release == "incident-over":
            publisher.publish(f"{base}/bridge/state", b"online")  # the network is back; she still does not move
            wait_for(lambda: _alarms(runtime)[0].state == AlarmState.RESOLVED, message="the incident over")
        else:
            response = api.post(f"/api/alarms/{alarm.id}/escalate")
            assert response.status_code == 200 and response.json()["hold_until"] is None
            assert api.post(f"/api/alarms/{alarm.id}/escalate").status_code == 200  # twice: nothing more
        settle(T0 + WINDOW + 95 * M)
        assert family_calls(), "the family is called once the outage is over and the alarm still open"
        detail = api.get(f"/api/alarms/{alarm.id}").json()
        assert detail["possibly_infrastructure"] and detail["hold_until"] is None
    finally:
        publisher.close()
        runtime.stop()


def run_attempts(runtime: Runtime) -> list[Attempt]:
    with Session(runtime.engine) as session:
        return list(session.scalars(select(Attempt).where(Attempt.status != AttemptStatus.SKIPPED)))


def test_gateways_are_listed_with_their_homes_and_kept_by_the_admin_api(service_settings: Settings) -> None:
    runtime = Runtime(service_settings, process="test", ingest=False)
    data = {"community": {"name": "测试社区"}, "grids": [{"name": "一网格", "micro_grids": [{"name": "1号楼"}]}],
            "residents": [{"ref": "r0", "name": "王秀英", "micro_grid": "一网格/1号楼",
                           "devices": [{"id": "pir-0", "kind": "motion", "gateway": "zigbee2mqtt"}]}]}
    with Session(runtime.engine) as session, session.begin():
        load_community(session, data, T0, runtime.policy.limits)
        token = accounts.token_for(session, T0, "admin", ttl=timedelta(days=1))
    api = TestClient(runtime.app, headers={"Authorization": f"Bearer {token}"})
    try:
        [listed] = api.get("/api/admin/gateways").json()  # named by a device in the file: created
        assert listed["external_id"] == "zigbee2mqtt"
        assert [(h["name"], h["devices"]) for h in listed["homes"]] == [("王秀英", ["pir-0"])]
        created = api.post("/api/admin/gateways", json={"external_id": "hub-2", "kind": "native", "name": "2号楼"})
        assert created.status_code == 201 and created.json()["homes"] == []
        assert api.post("/api/admin/gateways", json={"external_id": "hub-2"}).status_code == 409
        assert api.post("/api/admin/gateways", json={"external_id": "hub-3", "community_id": 99}).status_code == 404
        gateway_id = created.json()["id"]
        assert api.patch(f"/api/admin/gateways/{gateway_id}", json={"name": "二号楼"}).json()["name"] == "二号楼"
        device = api.get("/api/admin/devices").json()[0]
        moved = api.patch(f"/api/admin/devices/{device['id']}", json={"gateway_id": gateway_id})
        assert moved.status_code == 200 and moved.json()["gateway_id"] == gateway_id
        assert api.delete(f"/api/admin/gateways/{gateway_id}").status_code == 204
        [after] = [d for d in api.get("/api/admin/devices").json() if d["id"] == device["id"]]
        assert after["gateway_id"] is None  # the device stays, reporting through no shared gateway
        assert [g["external_id"] for g in api.get("/api/admin/gateways").json()] == ["zigbee2mqtt"]
    finally:
        runtime.engine.dispose()

@contextmanager
def running(runtime: Runtime) -> Iterator[TestPublisher]:
    """The runtime started with its consumer caught up, and a publisher; both stopped after."""
    runtime.start()
    publisher = TestPublisher()
    try:
        assert runtime.consumer is not None
        wait_for(lambda: runtime.consumer.status()["caught_up"], message="consumer ready")  # type: ignore[union-attr]
        yield publisher
    finally:
        publisher.close()
        runtime.stop()


def test_time_window_alarms_inside_an_outage_are_possibly_infrastructure_and_hold_the_family(
        make_run: Any) -> None:
    """A "did not get up" window that ends while the gateway is dark: the silence may be the outage's. The
    alarms are marked and take the infrastructure variant (check call, the centre, the family held)."""
    run = make_run(_dark(False, fall=False))
    dark = run.sim.incident("gateway_dark")
    zone = run.runtime.policy.zone
    begin, end = (dark.at + H).astimezone(zone), (dark.at + 2 * H).astimezone(zone)
    with Session(run.runtime.engine) as session, session.begin():
        session.execute(update(Grid).values(routine_window=f"{begin:%H:%M}-{end:%H:%M}"))
        session.execute(update(Resident).values(routine_due_at=run.clock.now()))
    _walk(run, dark.at + 2 * H + HOLD - 5 * M)
    routine = run.alarms("routine")
    assert routine and all(a.opened_at >= dark.at + 2 * H for a in routine)
    assert all(a.possibly_infrastructure and a.incident_id is not None for a in routine), [
        (a.code, a.possibly_infrastructure, a.incident_id) for a in routine]
    assert all(a.policy and a.policy["name"] == "resident_infrastructure" for a in routine)
    attempts = [t for a in routine for t in _attempts_of(run, a.id)]
    assert any(t.target == "resident" and t.channel == "voice" for t in attempts)  # the check call goes out
    assert not [t for t in attempts if t.target == "family"]
