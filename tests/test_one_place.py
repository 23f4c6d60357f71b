"""One place for each rule: a grid's window reaches its residents whichever way they were loaded; every
door into an alarm transition has the same effects; one bad row cannot stop the tick. SQLite and
PostgreSQL, the manual clock moved by the test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from alerts import service
from alerts.escalation import replies
from alerts.escalation.notifiers.base import InboundSms, Keypress
from alerts.models import Alarm, AlarmKind, Attempt, AuditEntry, Outcome, Resident
from tests.harness import T0, Site
from tests.helpers import wait_for

H = timedelta(hours=1)
GRID_PHONE = "+8613800000001"
FAMILY_PHONE = "+8613900000011"


@pytest.fixture
def site(make_site: Any) -> Site:
    """One process's runtime on the test's database, nobody loaded yet."""
    return make_site()


def open_alarms(site: Site, ref: str) -> list[Alarm]:
    return [a for a in site.alarms(resident=ref) if a.state != "resolved"]


def post(site: Site, path: str, body: dict[str, object]) -> dict[str, object]:
    """An admin's POST that must succeed; its answer."""
    response = site.client("admin").post(path, json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()  # type: ignore[no-any-return]


def check_call(alarm: Alarm, provider_id: str) -> Attempt:
    """The resident's check call of ``alarm``, placed at 8 h and waiting for its answer."""
    return Attempt(alarm_id=alarm.id, step=0, cycle=0, token=1, target="resident", person="王秀英",
                   phone="+867178000001", channel="voice", template="check_call", params={},
                   created_at=T0 + 8 * H, status="queued", provider_id=provider_id)


def _community(grid_window: float | None) -> dict[str, object]:
    grid: dict[str, object] = {"name": "第一网格", "micro_grids": [{"name": "1号楼"}]}
    if grid_window is not None:
        grid["window_hours"] = grid_window
    return {
        "community": {"name": "夷陵社区"},
        "grids": [grid],
        "workers": [{"name": "李娜", "phone": GRID_PHONE, "role": "grid_worker", "grid": "第一网格"}],
        "residents": [{"ref": "r1", "name": "王秀英", "phone": "+867178000001", "micro_grid": "第一网格/1号楼",
                       "devices": [{"id": "pir-1", "kind": "motion"}],
                       "contacts": [{"name": "王强", "phone": FAMILY_PHONE}]}],
    }


def _assert_alarm_at_8_hours(site: Site, ref: str) -> None:
    assert site.resident(ref).due_at == T0 + 8 * H
    site.tick_at(8 * H - timedelta(seconds=1))
    assert open_alarms(site, ref) == []
    site.tick_at(8 * H)
    assert [a.kind for a in open_alarms(site, ref)] == [AlarmKind.INACTIVITY]


# -- one place for a resident's limits ---------------------------------------------------------------------
def test_a_grid_window_loaded_by_shouwang_load_alarms_at_8_hours(site: Site) -> None:
    site.load(_community(8))
    _assert_alarm_at_8_hours(site, "r1")


def test_a_grid_window_loaded_later_by_shouwang_load_moves_the_deadline(site: Site) -> None:
    site.load(_community(None))
    assert site.resident("r1").due_at == T0 + 14 * H
    site.load(_community(8))
    _assert_alarm_at_8_hours(site, "r1")


def test_activity_moves_the_deadline_by_the_residents_own_window_else_the_grids_else_the_default(
        site: Site) -> None:
    """Ingest moves the deadlines of a batch's residents in one statement (on PostgreSQL it computes the
    window there): the same limits as everywhere else."""
    site.load(_community(None))
    site.activity(H, "pir-1")
    assert site.resident("r1").due_at == T0 + H + 14 * H
    site.load(_community(8))
    site.activity(2 * H, "pir-1")
    assert site.resident("r1").due_at == T0 + 2 * H + 8 * H
    with Session(site.engine) as session, session.begin():
        session.execute(update(Resident).where(Resident.external_ref == "r1").values(inactivity_window_s=3 * 3600))
    site.activity(3 * H, "pir-1")
    assert site.resident("r1").due_at == T0 + 3 * H + 3 * H


def test_a_grid_window_set_through_the_admin_api_alarms_at_8_hours(site: Site) -> None:
    community = post(site, "/api/admin/communities", {"name": "夷陵社区"})
    grid = post(site, "/api/admin/grids", {"name": "第一网格", "community_id": community["id"], "window_hours": 8})
    micro = post(site, "/api/admin/micro-grids", {"name": "1号楼", "grid_id": grid["id"]})
    post(site, "/api/admin/residents", {"ref": "r1", "name": "王秀英", "micro_grid_id": micro["id"]})
    _assert_alarm_at_8_hours(site, "r1")


def test_a_grid_window_changed_through_the_admin_api_moves_its_residents(site: Site) -> None:
    site.load(_community(None))
    grid_id = site.client("admin").get("/api/admin/grids").json()[0]["id"]
    assert site.client("admin").patch(f"/api/admin/grids/{grid_id}", json={"window_hours": 8}).status_code == 200
    _assert_alarm_at_8_hours(site, "r1")


def test_a_resident_imported_by_csv_into_an_8_hour_grid_alarms_at_8_hours(site: Site) -> None:
    community = post(site, "/api/admin/communities", {"name": "夷陵社区"})
    post(site, "/api/admin/grids", {"name": "第一网格", "community_id": community["id"], "window_hours": 8})
    csv = "ref,name,grid,micro_grid,device_ids\nr1,王秀英,第一网格,1号楼,pir-1\n"
    response = site.client("admin").post("/api/admin/import/residents", content=csv.encode(),
                             headers={"Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    _assert_alarm_at_8_hours(site, "r1")


# -- one function per alarm transition ---------------------------------------------------------------------
def _raise(site: Site) -> Alarm:
    site.load(_community(8))
    site.tick_at(8 * H)
    (alarm,) = open_alarms(site, "r1")
    return alarm


def _effects_of_resolution(site: Site, alarm_id: int) -> tuple[object, list[str], list[tuple[str, str]]]:
    with Session(site.engine) as session:
        resident = session.scalars(select(Resident).where(Resident.external_ref == "r1")).one()
        outcome_sms = [a.phone for a in session.scalars(select(Attempt).where(
            Attempt.alarm_id == alarm_id, Attempt.template == "outcome_sms"))]
        audit = [(e.action, e.actor) for e in session.scalars(select(AuditEntry).where(
            AuditEntry.target == f"alarm:{alarm_id}").order_by(AuditEntry.id))]
    return resident.due_at, outcome_sms, audit


def test_resolving_through_the_api_restarts_the_window_notifies_family_and_is_audited(site: Site) -> None:
    alarm = _raise(site)
    now = site.clock.set(T0 + 9 * H)
    response = site.client("operator").post(f"/api/alarms/{alarm.id}/resolve", json={"outcome": "resident_fine"})
    assert response.status_code == 200, response.text
    due, outcome_sms, audit = _effects_of_resolution(site, alarm.id)
    assert due == now + 8 * H
    assert outcome_sms == [FAMILY_PHONE]
    assert ("alarm.opened", "shouwang") in audit and audit[-1][0] == "alarm.resolved"


def test_a_keypress_confirmation_has_the_same_effects_as_the_api(site: Site) -> None:
    alarm = _raise(site)
    with Session(site.engine) as session, session.begin():
        session.add(check_call(alarm, "CA1"))
    now = site.clock.set(T0 + 9 * H)
    replies.handle_events(site.engine, [Keypress(attempt_id=None, provider_id="CA1", digits="1")], now,
                          site.runtime.chain)
    due, outcome_sms, audit = _effects_of_resolution(site, alarm.id)
    assert due == now + 8 * H
    assert outcome_sms == [FAMILY_PHONE]
    assert audit[-1] == ("alarm.resolved", "王秀英 (resident, keypress)")


def test_an_sms_acknowledgement_is_in_the_audit_log(site: Site) -> None:
    alarm = _raise(site)
    with Session(site.engine) as session, session.begin():
        session.add(Attempt(alarm_id=alarm.id, step=1, cycle=0, token=1, target="grid_worker", person="李娜",
                            phone=GRID_PHONE, channel="sms", template="alarm_sms", params={},
                            created_at=T0 + 8 * H, status="delivered", provider_id="SM1"))
    now = site.clock.set(T0 + 9 * H)
    replies.handle_events(site.engine, [InboundSms(sender=GRID_PHONE, body=f"1 {alarm.code}")], now,
                          site.runtime.chain)
    _, _, audit = _effects_of_resolution(site, alarm.id)
    assert audit[-1] == ("alarm.acknowledged", "李娜 (grid_worker, SMS)")


# -- a tick that one row cannot stop -----------------------------------------------------------------------
def test_a_poisoned_resident_row_does_not_keep_another_silent_resident_from_being_alarmed(site: Site) -> None:
    community = _community(None)
    residents = community["residents"]
    assert isinstance(residents, list)
    residents.append({"ref": "r2", "name": "张桂兰", "micro_grid": "第一网格/1号楼"})
    site.load(community)
    with Session(site.engine) as session, session.begin():
        # a last activity at the end of time (a device clock gone mad, a bad import): computing r1's
        # deadline overflows
        session.execute(update(Resident).where(Resident.external_ref == "r1")
                        .values(last_activity_at=datetime(9999, 12, 31, 23, 0, tzinfo=UTC), due_at=T0))
    result = site.tick_at(14 * H)
    assert [a.kind for a in open_alarms(site, "r2")] == [AlarmKind.INACTIVITY]
    assert len(result.raised) == 1
    # the poisoned row is pushed back a little, not dropped and not retried in a tight loop
    assert site.resident("r1").due_at == T0 + 14 * H + service.PUSH_BACK


def test_escalation_runs_even_when_the_rule_tick_fails(site: Site) -> None:
    """The scheduler runs escalation as a job of its own: a tick that raises every time does not keep
    calls from going out."""
    ran: list[object] = []
    watch = site.runtime.watch
    watch.escalate = ran.append
    watch.engine = None  # type: ignore[assignment]  # the rule tick cannot reach any database
    assert watch.run_tick() is None
    watch.start()
    try:
        wait_for(lambda: ran, timeout=20, message="an escalation run while every tick fails")
    finally:
        watch.stop()
    assert ran[0] == T0


def test_outcome_words_reach_the_family_whatever_the_door(site: Site) -> None:
    alarm = _raise(site)
    with Session(site.engine) as session, session.begin():
        session.add(check_call(alarm, "CA9"))
    replies.handle_events(site.engine, [Keypress(attempt_id=None, provider_id="CA9", digits="1")],
                          site.clock.set(T0 + 9 * H), site.runtime.chain)
    with Session(site.engine) as session:
        (sms,) = session.scalars(select(Attempt).where(Attempt.template == "outcome_sms")).all()
        resolved = session.get(Alarm, alarm.id)
        assert resolved is not None and resolved.outcome == Outcome.CONFIRMED_FINE_BY_PHONE
        assert sms.params["outcome"] and sms.params["code"] == alarm.code
