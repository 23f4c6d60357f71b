"""The core loop on a real database (SQLite and PostgreSQL), with an injected clock:
observations in -> deadline -> alarm -> resolution, with no broker in between."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from alerts import service, transitions
from alerts.models import (
    Alarm,
    AlarmKind,
    AlarmState,
    Device,
    Event,
    Gateway,
    Outcome,
    QuarantinedMessage,
    QuarantineOverflow,
    Resident,
    WatchStatus,
    WebhookReceipt,
)
from alerts.observations import Quarantined
from alerts.views import resident_rows
from tests.harness import T0, Store, obs

H = timedelta(hours=1)
M = timedelta(minutes=1)

COMMUNITY = {
    "community": {"name": "测试社区"},
    "grids": [{"name": "G1", "micro_grids": [{"name": "B1"}]}],
    "residents": [
        {"ref": "r1", "name": "王秀英", "micro_grid": "G1/B1",
         "devices": [{"id": "pir-1", "kind": "motion"}, {"id": "door-1", "kind": "door"},
                     {"id": "btn-1", "kind": "button"}]},
        {"ref": "r2", "name": "李桂兰", "micro_grid": "G1/B1", "devices": [{"id": "pir-2", "kind": "motion"}]},
    ],
}


@pytest.fixture
def world(store: Store) -> Store:
    """The community above on the test's database, driven at injected instants."""
    store.load(COMMUNITY)
    return store


def status(world: Store, ref: str, now: datetime) -> str:
    with Session(world.engine) as session:
        rid = world.resident(ref).id
        return next(r["status"] for r in resident_rows(session, now, world.policy.limits) if r["id"] == rid)


def resolve(world: Store, alarm_id: int, now: datetime, outcome: Outcome) -> None:
    with Session(world.engine) as session, session.begin():
        alarm = session.get(Alarm, alarm_id, with_for_update=True)
        assert alarm is not None
        transitions.resolved_by_person(session, alarm, now, by="grid worker", channel="API", outcome=outcome,
                                       note=None, effects=transitions.Effects(limits=world.policy.limits))


def test_activity_moves_last_activity_and_deadline(world: Store) -> None:
    world.record(T0 + H, obs("pir-1"))
    resident = world.resident("r1")
    assert resident.last_activity_at == T0 + H
    assert resident.due_at == T0 + 15 * H


def test_health_reports_move_last_seen_but_not_last_activity(world: Store) -> None:
    world.record(T0 + H, obs("pir-1", "battery", battery=80), obs("pir-1", "heartbeat"),
                 obs("pir-1", "availability", availability="online"))
    assert world.resident("r1").last_activity_at is None
    with Session(world.engine) as session:
        device = session.scalars(select(Device).where(Device.external_id == "pir-1")).one()
        assert device.last_seen_at == T0 + H
        assert device.battery == 80


def test_it_warns_at_10_hours_and_raises_one_alarm_at_14_hours(world: Store) -> None:
    world.record(T0, obs("pir-1"), obs("pir-2"))
    assert status(world, "r1", T0 + 10 * H - M) == "ok"
    assert status(world, "r1", T0 + 10 * H) == "warning"
    world.tick(T0 + 14 * H - M)
    assert world.alarms(AlarmKind.INACTIVITY) == []
    world.record(T0 + 14 * H - 2 * M, obs("pir-2"))  # the neighbour is active
    result = world.tick(T0 + 14 * H)
    assert len(result.raised) == 1
    for minute in range(1, 5):
        world.tick(T0 + 14 * H + minute * M)
    alarms = world.alarms(AlarmKind.INACTIVITY)
    assert len(alarms) == 1
    assert alarms[0].resident_id == world.resident("r1").id
    assert "已14.0小时无活动（时限14小时）" in alarms[0].reason and alarms[0].reason_code == "inactivity"
    assert status(world, "r1", T0 + 14 * H) == "alarm"


def test_a_home_that_never_reports_still_raises_its_alarm(world: Store) -> None:
    world.tick(T0 + 14 * H)
    assert {a.resident_id for a in world.alarms(AlarmKind.INACTIVITY)} == {
        world.resident("r1").id, world.resident("r2").id}


def test_activity_before_responders_are_called_auto_resolves(world: Store) -> None:
    world.record(T0, obs("pir-1"))
    world.tick(T0 + 14 * H)
    world.record(T0 + 14 * H + 5 * M, obs("pir-1"))
    result = world.tick(T0 + 14 * H + 6 * M)
    [alarm] = world.alarms(AlarmKind.INACTIVITY, resident="r1")
    assert result.auto_resolved == [alarm.id]
    assert alarm.state == AlarmState.RESOLVED and alarm.outcome == Outcome.ACTIVITY_RESUMED
    assert alarm.auto_resolved
    assert world.resident("r1").due_at == T0 + 28 * H + 5 * M


def test_activity_after_responders_were_called_is_recorded_not_resolved(world: Store) -> None:
    world.record(T0, obs("pir-1"))
    world.tick(T0 + 14 * H)
    [alarm] = world.alarms(AlarmKind.INACTIVITY, resident="r1")
    with Session(world.engine) as session, session.begin():
        session.get(Alarm, alarm.id).responders_called_at = T0 + 14 * H + 3 * M
    world.record(T0 + 14 * H + 10 * M, obs("pir-1"))
    result = world.tick(T0 + 14 * H + 11 * M)
    [alarm] = world.alarms(AlarmKind.INACTIVITY, resident="r1")
    assert result.activity_noted == [alarm.id]
    assert alarm.state == AlarmState.OPEN
    assert alarm.activity_seen_at == T0 + 14 * H + 10 * M
    world.tick(T0 + 14 * H + 12 * M)
    assert len(world.alarms(AlarmKind.INACTIVITY, resident="r1")) == 1


def test_no_second_alarm_after_a_resolution_that_found_the_resident_well(world: Store) -> None:
    world.record(T0, obs("pir-1"))
    world.tick(T0 + 14 * H)
    [alarm] = world.alarms(AlarmKind.INACTIVITY, resident="r1")
    resolve(world, alarm.id, T0 + 15 * H, Outcome.RESIDENT_FINE)
    for minute in range(0, 60, 10):
        world.tick(T0 + 15 * H + minute * M)
    assert len(world.alarms(AlarmKind.INACTIVITY, resident="r1")) == 1
    assert world.resident("r1").due_at == T0 + 29 * H  # the window restarts from the resolution
    world.tick(T0 + 29 * H)
    assert len(world.alarms(AlarmKind.INACTIVITY, resident="r1")) == 2  # and runs out again if she stays silent


def test_away_mode_suppresses_and_its_end_restarts_the_window(world: Store) -> None:
    world.record(T0, obs("pir-1"))
    with Session(world.engine) as session, session.begin():
        resident = session.scalars(select(Resident).where(Resident.external_ref == "r1")).one()
        resident.away_until = T0 + 48 * H
    world.tick(T0 + 14 * H)
    world.tick(T0 + 40 * H)
    assert world.alarms(AlarmKind.INACTIVITY, ) == [] or all(
        a.resident_id != world.resident("r1").id for a in world.alarms(AlarmKind.INACTIVITY))
    assert status(world, "r1", T0 + 40 * H) == "away"
    assert world.resident("r1").due_at == T0 + 62 * H
    world.tick(T0 + 62 * H)
    assert any(a.resident_id == world.resident("r1").id for a in world.alarms(AlarmKind.INACTIVITY))


def test_away_until_next_activity_ends_on_activity(world: Store) -> None:
    with Session(world.engine) as session, session.begin():
        session.scalars(select(Resident).where(Resident.external_ref == "r1")).one().away_until_activity = True
    world.tick(T0 + 100 * H)
    assert all(a.resident_id != world.resident("r1").id for a in world.alarms(AlarmKind.INACTIVITY))
    world.record(T0 + 100 * H, obs("pir-1"))
    resident = world.resident("r1")
    assert not resident.away_until_activity and resident.due_at == T0 + 114 * H


def test_panic_button_raises_an_immediate_critical_alarm_once(world: Store) -> None:
    result = world.record(T0 + H, obs("btn-1", "button", value="single"))
    assert len(result.panic_alarms) == 1
    world.record(T0 + H + M, obs("btn-1", "button", value="single"))
    [alarm] = world.alarms(AlarmKind.PANIC)
    assert alarm.severity == "critical" and alarm.state == AlarmState.OPEN


def test_device_offline_after_silence_and_back_when_heard(world: Store) -> None:
    world.record(T0, obs("pir-1"), obs("pir-2"))
    world.tick(T0 + 2 * H - M)
    assert world.alarms(AlarmKind.DEVICE_OFFLINE) == []
    world.record(T0 + 2 * H - M, obs("pir-2", "heartbeat"))
    world.tick(T0 + 2 * H)
    [alarm] = world.alarms(AlarmKind.DEVICE_OFFLINE)
    assert "pir-1" in alarm.reason and alarm.severity == "low"
    world.tick(T0 + 3 * H)
    assert len(world.alarms(AlarmKind.DEVICE_OFFLINE)) == 1
    world.record(T0 + 3 * H, obs("pir-1", "heartbeat"))
    world.tick(T0 + 3 * H + M)
    [alarm] = world.alarms(AlarmKind.DEVICE_OFFLINE)
    assert alarm.state == AlarmState.RESOLVED and alarm.outcome == Outcome.DEVICE_BACK


def test_a_brief_unavailable_pages_no_one(world: Store) -> None:
    world.record(T0, obs("pir-1"))
    world.record(T0 + M, obs("pir-1", "availability", availability="offline"))
    world.record(T0 + 6 * M, obs("pir-1", "availability", availability="online"))
    world.tick(T0 + 30 * M)
    assert world.alarms(AlarmKind.DEVICE_OFFLINE) == []


def test_an_offline_report_not_taken_back_within_the_grace_opens_a_maintenance_alarm(world: Store) -> None:
    world.record(T0, obs("pir-1"))
    world.record(T0 + M, obs("pir-1", "availability", availability="offline"))
    world.tick(T0 + 10 * M)
    assert world.alarms(AlarmKind.DEVICE_OFFLINE) == []
    world.tick(T0 + 11 * M)
    [alarm] = world.alarms(AlarmKind.DEVICE_OFFLINE)
    assert "报告离线" in alarm.reason and alarm.reason_code == "device_reported_offline"


def test_an_inactivity_alarm_says_no_data_when_every_device_is_offline(world: Store) -> None:
    world.record(T0, obs("pir-2"))
    world.tick(T0 + 14 * H)
    [alarm] = [a for a in world.alarms(AlarmKind.INACTIVITY) if a.resident_id == world.resident("r2").id]
    assert alarm.devices_offline and "无数据：设备离线" in alarm.reason


def test_low_battery_opens_one_maintenance_alarm_per_device_and_closes_on_a_new_battery(world: Store) -> None:
    world.record(T0, obs("pir-1", "battery", battery=9))
    world.tick(T0 + M)
    world.tick(T0 + 2 * M)
    [alarm] = world.alarms(AlarmKind.LOW_BATTERY)
    assert alarm.device_id is not None
    world.record(T0 + H, obs("pir-1", "battery", battery=100))
    world.tick(T0 + H + M)
    [alarm] = world.alarms(AlarmKind.LOW_BATTERY)
    assert alarm.outcome == Outcome.BATTERY_OK


def test_repeated_event_id_and_redelivery_are_stored_once_identical_reports_twice(world: Store) -> None:
    first = obs("pir-1", event_uid="e-1")
    world.record(T0, first)
    result = world.record(T0 + M, obs("pir-1", event_uid="e-1"))
    assert result.stored == 0 and result.duplicates == 1
    plain = obs("pir-1")
    world.record(T0 + 2 * M, plain)
    redelivered = replace(plain, redelivery=True)
    result = world.record(T0 + 3 * M, redelivered)
    assert result.duplicates == 1
    world.record(T0 + 4 * M, obs("pir-1"), obs("pir-1"))  # two identical reports: two observations
    assert world.count(Event) == 4


def test_a_future_timestamp_is_stored_at_receive_time_with_its_flag(world: Store) -> None:
    result = world.record(T0, obs("pir-1", device_time=T0 + 3 * H))
    assert result.clock_skew == 1
    with Session(world.engine) as session:
        event = session.scalars(select(Event)).one()
        assert event.occurred_at == T0 and event.clock_skew
    assert world.resident("r1").due_at == T0 + 14 * H


def test_an_old_device_time_never_moves_last_activity_backwards(world: Store) -> None:
    world.record(T0 + 2 * H, obs("pir-1"))
    world.record(T0 + 3 * H, obs("pir-1", device_time=T0 + H))
    assert world.resident("r1").last_activity_at == T0 + 2 * H


def test_zigbee2mqtt_cached_occupancy_counts_only_as_a_change(world: Store) -> None:
    z = {"change_only": True}
    world.record(T0, obs("pir-1", "state", occupied=False))
    world.record(T0 + M, obs("pir-1", "motion", occupied=True, **z))
    assert world.resident("r1").last_activity_at == T0 + M
    world.record(T0 + H, obs("pir-1", "motion", occupied=True, battery=90, **z))  # cached repeat
    assert world.resident("r1").last_activity_at == T0 + M
    world.record(T0 + 2 * H, obs("pir-1", "state", occupied=False))
    world.record(T0 + 3 * H, obs("pir-1", "motion", occupied=True, **z))
    assert world.resident("r1").last_activity_at == T0 + 3 * H


def test_unknown_devices_are_quarantined_with_their_payload(world: Store) -> None:
    result = world.record(T0, obs("stranger", payload=b'{"type":"motion"}'),
                          Quarantined("t/x", b"{", "malformed_json", "payload is not JSON", "q1"))
    assert result.quarantined == {"unknown_device": 1, "malformed_json": 1}
    with Session(world.engine) as session:
        rows = {q.reason: q for q in session.scalars(select(QuarantinedMessage))}
    assert rows["unknown_device"].device_external_id == "stranger"
    assert rows["unknown_device"].payload == b'{"type":"motion"}'


def test_pruning_removes_old_raw_events_but_not_the_residents_state(world: Store) -> None:
    world.record(T0, obs("pir-1"))
    world.record(T0 + 80 * 24 * H, obs("pir-2"))
    removed = service.prune(world.engine, T0 + 91 * 24 * H, timedelta(days=90))
    assert removed == 1 and world.count(Event) == 1
    assert world.resident("r1").last_activity_at == T0


def test_pruning_also_forgets_old_quarantine_counts_and_provider_events(world: Store) -> None:
    with Session(world.engine) as session, session.begin():
        for day in (0, 80):
            at = T0 + day * 24 * H
            session.add(QuarantineOverflow(hour=at, source=f"s{day}", reason="unknown_device", dropped=5,
                                           dropped_bytes=50, last_at=at))
            session.add(WebhookReceipt(key=f"sms:SM{day}", received_at=at))
    removed = service.prune(world.engine, T0 + 91 * 24 * H, timedelta(days=90))
    assert removed == 2
    with Session(world.engine) as session:
        assert list(session.scalars(select(QuarantineOverflow.source))) == ["s80"]
        assert list(session.scalars(select(WebhookReceipt.key))) == ["sms:SM80"]


def test_correlated_silence_is_judged_every_30_seconds_and_at_once_after_a_gateway_report(world: Store) -> None:
    """The incident pass reads every device of the district: once per ``incidents.every`` of the service
    clock, and at once when a gateway's own report changed."""
    def last_pass() -> datetime | None:
        with Session(world.engine) as session:
            mark = session.get(WatchStatus, service.INCIDENTS_MARK.format(process="main"))
            return mark.updated_at if mark is not None else None

    world.tick(T0)
    assert last_pass() == T0
    world.tick(T0 + timedelta(seconds=10))
    assert last_pass() == T0  # judged 10 s ago: not again
    with Session(world.engine) as session, session.begin():
        session.add(Gateway(external_id="z2m/1", availability="offline", availability_at=T0 + timedelta(seconds=11),
                            created_at=T0))
    world.tick(T0 + timedelta(seconds=12))
    assert last_pass() == T0 + timedelta(seconds=12)  # a gateway said something: judged at once
    world.tick(T0 + timedelta(seconds=20))
    assert last_pass() == T0 + timedelta(seconds=12)
    with Session(world.engine) as session, session.begin():  # back online at the same instant
        session.execute(update(Gateway).values(availability="online"))
    world.tick(T0 + timedelta(seconds=21))
    assert last_pass() == T0 + timedelta(seconds=21)
    world.tick(T0 + timedelta(seconds=22))
    assert last_pass() == T0 + timedelta(seconds=21)
    world.tick(T0 + timedelta(seconds=52))
    assert last_pass() == T0 + timedelta(seconds=52)
