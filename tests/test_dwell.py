"""Dwell limits where a room is known (bathroom occupied; bathroom door closed with motion inside). Pure
tests of each rule; end to end on the manual clock (SQLite and PostgreSQL): the alarm, its path, how it
ends, how it is set (community file, admin API, CSV) and that nothing changes without a limit."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts import dwell
from alerts.dwell import Activity, DwellAction, DwellLimits
from alerts.models import AlarmKind, Attempt, Device, Resident
from alerts.registry.community import CommunityFileError
from tests.harness import Site, obs

ZONE = ZoneInfo("Asia/Shanghai")
MONDAY = date(2026, 11, 2)
GRID_PHONE = "+8613800000001"
H = timedelta(hours=1)


def local(clock: str, day: date = MONDAY) -> datetime:
    return datetime.combine(day, time.fromisoformat(clock), ZONE).astimezone(UTC)


def bath(clock: str, kind: str = "motion", closed: bool | None = None) -> Activity:
    return Activity(local(clock), True, kind, closed)


def other(clock: str) -> Activity:
    return Activity(local(clock), False)


TWO_HOURS = DwellLimits(bathroom=2 * H)


def decide(activity: list[Activity], now: str, limits: DwellLimits = TWO_HOURS,
           **overrides: Any) -> dwell.DwellDecision:
    values: dict[str, Any] = {"watch_from": local("00:00"), **overrides}
    return dwell.decide_dwell(limits=limits, activity=activity, now=local(now), **values)


# -- rooms and limits, pure --------------------------------------------------------------------------------
def test_rooms_are_read_by_value_or_chinese_name_and_a_wrong_one_is_refused_in_chinese_first() -> None:
    assert dwell.parse_room("bathroom") is dwell.Room.BATHROOM
    assert dwell.parse_room(" 卫生间 ") is dwell.Room.BATHROOM
    assert dwell.parse_room("Living_Room") is dwell.Room.LIVING_ROOM
    assert dwell.parse_room("") is None and dwell.parse_room(None) is None
    with pytest.raises(dwell.RoomError, match=r"^房间只能是卫生间（bathroom）"):
        dwell.parse_room("garage")


def test_the_residents_limit_wins_over_the_grids_and_none_is_off() -> None:
    assert dwell.effective_limits(None, None, None, None) == DwellLimits()
    assert dwell.effective_limits(3600, None, 7200, 14400) == DwellLimits(H, 4 * H)
    assert decide([bath("08:00")], "23:00", DwellLimits()).action is DwellAction.PLAN
    assert decide([bath("08:00")], "23:00", DwellLimits()).next_due is None


# -- bathroom occupied, pure -------------------------------------------------------------------------------
def test_it_raises_once_the_stay_in_the_bathroom_outlasts_the_limit() -> None:
    stay = [other("07:00"), bath("08:00"), bath("08:20")]
    early = decide(stay, "09:59")
    assert early.action is DwellAction.PLAN and early.next_due == local("10:00")  # entry + limit
    late = decide(stay, "10:00")
    assert late.action is DwellAction.RAISE and late.code == "dwell_bathroom"
    assert late.since == local("08:00") and late.limit == 2 * H


def test_activity_in_another_room_ends_the_stay() -> None:
    assert decide([bath("08:00"), other("09:00")], "12:00").action is DwellAction.PLAN
    again = decide([bath("08:00"), other("09:00"), bath("09:30")], "11:00")
    assert again.action is DwellAction.PLAN and again.next_due == local("11:30")


def test_out_of_the_bathroom_it_looks_again_one_limit_later() -> None:
    decision = decide([other("08:00")], "09:00")
    assert decision.action is DwellAction.PLAN and decision.next_due == local("11:00")
    assert decide([], "09:00").next_due == local("11:00")


def test_a_stay_counts_from_when_the_resident_was_watched() -> None:
    stay = [bath("08:00")]
    assert decide(stay, "10:30", watch_from=local("09:00")).action is DwellAction.PLAN
    assert decide(stay, "11:00", watch_from=local("09:00")).action is DwellAction.RAISE


def test_away_mode_and_an_open_alarm_keep_it_quiet() -> None:
    stay = [bath("08:00")]
    assert decide(stay, "11:00", away_until_activity=True).action is DwellAction.QUIET
    away = decide(stay, "11:00", away_until=local("12:00"))  # a stay counts from the end of away mode
    assert away.action is DwellAction.PLAN and away.next_due == local("13:00")
    assert decide(stay, "11:00", alarm_open=True).action is DwellAction.QUIET
    ended = decide(stay, "11:00", away_until=local("10:00"))  # away ended at 10:00: counted from then
    assert ended.action is DwellAction.PLAN and ended.next_due == local("12:00")


def test_a_home_with_no_device_outside_the_bathroom_raises_nothing() -> None:
    decision = decide([bath("08:00")], "11:00", sensed_elsewhere=False)
    assert decision.action is DwellAction.PLAN and decision.next_due == local("13:00")


# -- bathroom door closed with motion inside, pure ---------------------------------------------------------
DOOR = DwellLimits(bathroom_door=4 * H)


def test_a_door_closed_with_motion_inside_raises_after_its_limit() -> None:
    stay = [other("07:00"), bath("08:00", "door", closed=True), bath("08:05")]
    assert decide(stay, "11:59", DOOR).next_due == local("12:00")
    decision = decide(stay, "12:00", DOOR)
    assert decision.action is DwellAction.RAISE and decision.code == "dwell_bathroom_door"
    assert decision.since == local("08:00")


def test_a_door_closed_with_nobody_moving_inside_or_opened_again_raises_nothing() -> None:
    assert decide([bath("08:00", "door", closed=True)], "13:00", DOOR).action is DwellAction.PLAN
    opened = [bath("08:00", "door", closed=True), bath("08:05"), bath("09:00", "door", closed=False)]
    assert decide(opened, "13:00", DOOR).action is DwellAction.PLAN
    elsewhere = [bath("08:00", "door", closed=True), bath("08:05"), other("09:00")]
    assert decide(elsewhere, "13:00", DOOR).action is DwellAction.PLAN


def test_with_both_limits_the_first_to_pass_raises() -> None:
    both = DwellLimits(bathroom=2 * H, bathroom_door=4 * H)
    stay = [bath("08:00", "door", closed=True), bath("08:05")]
    assert decide(stay, "10:00", both).code == "dwell_bathroom"
    assert decide(stay, "09:00", both).next_due == local("10:00")


# -- end to end on the manual clock ------------------------------------------------------------------------
def _community(grid_dwell: dict[str, float] | None = None, resident_dwell: dict[str, float] | None = None,
               ) -> dict[str, Any]:
    grid: dict[str, Any] = {"name": "第一网格", "micro_grids": [{"name": "1号楼"}], **(grid_dwell or {})}
    return {
        "community": {"name": "夷陵社区"},
        "grids": [grid],
        "workers": [{"name": "李娜", "phone": GRID_PHONE, "role": "grid_worker", "grid": "第一网格"}],
        "residents": [{"ref": "r1", "name": "王秀英", "phone": "+867178000001", "micro_grid": "第一网格/1号楼",
                       **(resident_dwell or {}),
                       "devices": [{"id": "pir-bath", "kind": "motion", "room": "卫生间"},
                                   {"id": "door-bath", "kind": "door", "room": "bathroom"},
                                   {"id": "pir-bed", "kind": "motion", "room": "bedroom"},
                                   {"id": "pir-hall", "kind": "motion"}],
                       "contacts": [{"name": "王强", "phone": "+8613900000011"}]}],
    }


MakeHome = Callable[[datetime, dict[str, Any] | None], Site]


@pytest.fixture
def make_home(make_site: Callable[..., Site]) -> MakeHome:
    return lambda start, community: make_site(start=start, community=community, timezone="Asia/Shanghai")


def move(home: Site, device: str, at: datetime) -> None:
    home.clock.set(at)
    home.record(at, obs(device, device_time=at))


def door(home: Site, at: datetime, closed: bool) -> None:
    home.clock.set(at)
    home.record(at, obs("door-bath", kind="door", occupied=closed, change_only=True, device_time=at,
                        value="closed" if closed else "open"))


def test_a_bathroom_dwell_is_alarmed_at_entry_plus_the_limit_not_at_14_hours(make_home: MakeHome) -> None:
    home = make_home(local("06:00"), _community({"bathroom_dwell_hours": 2}))
    move(home, "pir-bed", local("07:00"))
    home.rules_at(local("07:30"))
    move(home, "pir-bath", local("08:00"))
    move(home, "pir-bath", local("08:20"))  # her last motion: in the bathroom, nothing elsewhere
    home.rules_at(local("09:30"))
    home.rules_at(local("09:59"))
    assert home.alarms(AlarmKind.ROUTINE) == []
    result = home.tick_at(local("10:00"))
    (alarm,) = home.alarms(AlarmKind.ROUTINE)
    assert result.routine_alarms == [alarm.id] and alarm.reason_code == "dwell_bathroom"
    assert alarm.reason == "自2026-11-02 08:00起在卫生间已超过2小时，其他房间无活动"
    assert home.alarms(AlarmKind.INACTIVITY) == []  # the fixed window would come at 22:20
    home.runtime.escalate(local("10:00"))  # the routine policy: the check call first
    with Session(home.engine) as session:
        first = session.scalars(select(Attempt).where(Attempt.alarm_id == alarm.id)).all()
    assert [(a.target, a.channel, a.template) for a in first] == [("resident", "voice", "check_call")]
    # movement in the bathroom does not end it (a fallen resident may still move); movement elsewhere does
    move(home, "pir-bath", local("10:01"))
    home.rules_at(local("10:02"))
    assert home.alarms(AlarmKind.ROUTINE)[0].state == "open"
    move(home, "pir-bed", local("10:02"))
    home.rules_at(local("10:03"))
    (ended,) = home.alarms(AlarmKind.ROUTINE)
    assert ended.state == "resolved" and ended.outcome == "activity_resumed"
    home.rules_at(local("13:00"))
    assert len(home.alarms(AlarmKind.ROUTINE)) == 1


def test_a_persons_resolution_restarts_the_count_and_a_meal_card_swipe_ends_the_next_alarm(
        make_home: MakeHome) -> None:
    home = make_home(local("06:00"), _community(resident_dwell={"bathroom_dwell_hours": 2}))
    move(home, "pir-bath", local("08:00"))
    home.rules_at(local("10:00"))
    (first,) = home.alarms(AlarmKind.ROUTINE)
    home.clock.set(local("10:05"))
    response = home.client("operator").post(f"/api/alarms/{first.id}/resolve", json={"outcome": "resident_fine"})
    assert response.status_code == 200, response.text
    home.rules_at(local("12:04"))  # still in the bathroom, nothing elsewhere: counted again from 10:05
    assert [a.id for a in home.alarms(AlarmKind.ROUTINE)] == [first.id]
    home.rules_at(local("12:05"))
    second = home.alarms(AlarmKind.ROUTINE)[-1]
    assert second.id != first.id and second.state == "open"
    home.clock.set(local("12:10"))
    assert home.client("operator").post(f"/api/residents/{home.resident('r1').id}/activity",
                                        json={"source": "meal_card"}).status_code == 201
    home.rules_at(local("12:11"))
    ended = home.alarms(AlarmKind.ROUTINE)[-1]
    assert ended.id == second.id and ended.outcome == "activity_resumed"


def test_a_bathroom_door_closed_with_motion_inside_is_alarmed_after_its_limit(make_home: MakeHome) -> None:
    home = make_home(local("06:00"), _community(resident_dwell={"bathroom_door_dwell_hours": 4}))
    move(home, "pir-hall", local("07:00"))
    door(home, local("07:10"), closed=True)
    move(home, "pir-bath", local("07:11"))
    home.rules_at(local("11:09"))
    assert home.alarms(AlarmKind.ROUTINE) == []
    home.rules_at(local("11:10"))
    (alarm,) = home.alarms(AlarmKind.ROUTINE)
    assert alarm.reason_code == "dwell_bathroom_door" and "卫生间门自2026-11-02 07:10关闭已超过4小时" in alarm.reason


def test_without_a_dwell_limit_nothing_is_raised(make_home: MakeHome) -> None:
    home = make_home(local("06:00"), _community())
    move(home, "pir-bath", local("08:00"))
    for clock in ("10:01", "13:00", "20:00"):
        home.rules_at(local(clock))
    assert home.alarms(AlarmKind.ROUTINE) == [] and home.alarms(AlarmKind.INACTIVITY) == []
    assert home.resident("r1").dwell_due_at is None


def test_a_limit_set_through_the_admin_api_applies_and_rooms_are_checked(make_home: MakeHome) -> None:
    home = make_home(local("06:00"), _community())
    admin = home.client("admin")
    rid = home.resident("r1").id
    response = admin.patch(f"/api/admin/residents/{rid}", json={"bathroom_dwell_hours": 1.5})
    assert response.status_code == 200, response.text
    assert response.json()["bathroom_dwell_hours"] == 1.5
    devices = {d["external_id"]: d for d in admin.get("/api/admin/devices").json()}
    assert devices["pir-bath"]["room"] == "bathroom" and devices["pir-hall"]["room"] is None
    refused = admin.patch(f"/api/admin/devices/{devices['pir-hall']['id']}", json={"room": "阳台"})
    assert refused.status_code == 422 and "房间只能是" in refused.text
    assert admin.patch(f"/api/admin/devices/{devices['pir-hall']['id']}", json={"room": "entrance"}).status_code == 200
    card = home.client("operator").get(f"/api/residents/{rid}").json()
    assert {d["external_id"]: d["room"] for d in card["devices"]}["pir-hall"] == "entrance"
    move(home, "pir-bath", local("08:00"))
    home.rules_at(local("09:29"))
    assert home.alarms(AlarmKind.ROUTINE) == []
    home.rules_at(local("09:30"))
    (alarm,) = home.alarms(AlarmKind.ROUTINE)
    assert alarm.reason_code == "dwell_bathroom"
    grid = admin.get("/api/admin/grids").json()[0]
    patched = admin.patch(f"/api/admin/grids/{grid['id']}", json={"bathroom_door_dwell_hours": 4})
    assert patched.status_code == 200 and patched.json()["bathroom_door_dwell_hours"] == 4


def test_a_csv_import_sets_rooms_and_limits_and_keeps_the_grids(make_home: MakeHome) -> None:
    home = make_home(local("06:00"), _community({"bathroom_dwell_hours": 3}))
    csv = ("ref,name,grid,micro_grid,bathroom_door_dwell_hours,device_ids\n"
           "r2,李桂兰,第一网格,1号楼,5,pir-2:motion:卫生间;door-2:door:bathroom;pir-3\n")
    response = home.client("admin").post("/api/admin/import/residents", content=csv.encode(),
                                          headers={"Content-Type": "text/csv"})
    assert response.status_code == 200, response.text
    with Session(home.engine) as session:
        rooms = {d.external_id: d.room for d in session.scalars(select(Device))}
        resident = session.scalars(select(Resident).where(Resident.external_ref == "r2")).one()
    grid_limit = home.client("admin").get("/api/admin/grids").json()[0]["bathroom_dwell_hours"]
    assert rooms["pir-2"] == "bathroom" and rooms["door-2"] == "bathroom" and rooms["pir-3"] is None
    assert resident.bathroom_door_dwell_s == 5 * 3600 and grid_limit == 3
    bad = home.client("admin").post("/api/admin/import/residents", content=(
        "ref,name,device_ids\nr3,张三,pir-9:motion:garage\n").encode(), headers={"Content-Type": "text/csv"})
    assert bad.status_code == 422 and "房间只能是" in bad.text


def test_a_bad_room_or_limit_in_a_community_file_is_refused_with_its_place(make_home: MakeHome) -> None:
    home = make_home(local("06:00"), None)
    community = _community()
    community["residents"][0]["devices"][0]["room"] = "garage"
    with pytest.raises(CommunityFileError, match=r"pir-bath.*a room is one of") as refused:
        home.load(community, local("06:00"))
    assert refused.value.worded("zh").startswith("设备'pir-bath'：房间只能是")
    with pytest.raises(CommunityFileError, match=r"第一网格.*bathroom_dwell_hours"):
        home.load(_community({"bathroom_dwell_hours": -1}), local("06:00"))
