"""Earlier detection: time-window rules, the learned daily rhythm and signs of life from outside the
home. Pure tests of each rule and of the learner; end to end on the manual clock (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts import rhythm, routine
from alerts.models import AlarmKind, Attempt, AuditEntry, Resident, SignOfLife
from alerts.registry.community import CommunityFileError
from tests.harness import Site, obs

ZONE = ZoneInfo("Asia/Shanghai")
MONDAY = date(2026, 11, 2)
GRID_PHONE, OTHER_GRID_PHONE = "+8613800000001", "+8613800000009"


def local(day: date, clock: str) -> datetime:
    return datetime.combine(day, time.fromisoformat(clock), ZONE).astimezone(UTC)


# -- time-window rules, pure -------------------------------------------------------------------------------
def test_a_window_is_written_hh_mm_to_hh_mm() -> None:
    assert str(routine.Window.parse(" 7:00 - 10:30 ")) == "07:00-10:30"
    for bad in ("7-10", "25:00-10:00", "07:00-07:00", "", "07:00"):
        with pytest.raises(routine.WindowError):
            routine.Window.parse(bad)
    assert routine.parse_window("") is None and routine.parse_window(None) is None


def test_a_window_over_midnight_starts_the_day_before_it_ends() -> None:
    window = routine.Window.parse("22:00-02:00")
    start, end = window.bounds(MONDAY, ZONE)
    assert (start, end) == (local(MONDAY - timedelta(days=1), "22:00"), local(MONDAY, "02:00"))


def test_the_next_end_is_today_before_it_and_tomorrow_after_it() -> None:
    window = routine.Window.parse("07:00-10:00")
    assert routine.next_end(window, local(MONDAY, "09:59"), ZONE) == local(MONDAY, "10:00")
    assert routine.next_end(window, local(MONDAY, "10:00"), ZONE) == local(MONDAY + timedelta(days=1), "10:00")


def _decide(**overrides: object) -> routine.RoutineDecision:
    values: dict[str, object] = dict(
        window=routine.Window.parse("07:00-10:00"), due=local(MONDAY, "10:00"), now=local(MONDAY, "10:00"),
        zone=ZONE, last_activity=local(MONDAY - timedelta(days=1), "21:00"),
        watch_from=local(MONDAY - timedelta(days=30), "12:00"), away_until=None, away_until_activity=False,
        alarm_open=False)
    values.update(overrides)
    return routine.decide_routine(**values)  # type: ignore[arg-type]


def test_no_activity_inside_the_window_raises_at_its_end() -> None:
    decision = _decide()
    assert decision.action is routine.RoutineAction.RAISE
    assert decision.next_due == local(MONDAY + timedelta(days=1), "10:00")


def test_activity_inside_the_window_keeps_it_quiet_but_activity_before_it_does_not() -> None:
    assert _decide(last_activity=local(MONDAY, "07:05")).action is routine.RoutineAction.QUIET
    assert _decide(last_activity=local(MONDAY, "06:55")).action is routine.RoutineAction.RAISE


def test_away_an_open_alarm_or_a_resident_not_yet_watched_keep_it_quiet() -> None:
    assert _decide(away_until_activity=True).action is routine.RoutineAction.QUIET
    assert _decide(away_until=local(MONDAY, "08:00")).action is routine.RoutineAction.QUIET
    assert _decide(alarm_open=True).action is routine.RoutineAction.QUIET
    assert _decide(watch_from=local(MONDAY, "08:00")).action is routine.RoutineAction.QUIET


def test_an_instant_that_is_not_a_window_end_only_plans_the_next_end() -> None:
    decision = _decide(due=local(MONDAY, "09:00"), now=local(MONDAY, "09:00"))
    assert decision.action is routine.RoutineAction.PLAN and decision.next_due == local(MONDAY, "10:00")
    assert _decide(window=None).next_due is None


# -- the rhythm learner, pure ------------------------------------------------------------------------------
def _days(first: date, count: int, up: str = "06:30", weekend_up: str | None = None) -> list[datetime]:
    instants = []
    for offset in range(count):
        day = first + timedelta(days=offset)
        wake = weekend_up if weekend_up and day.weekday() >= 5 else up
        start = local(day, wake) + timedelta(minutes=(offset % 3) * 10)
        instants += [start, start + timedelta(hours=1), local(day, "12:00"), local(day, "15:00"),
                     local(day, "18:00"), local(day, "21:00")]
    return instants


def test_less_than_seven_good_days_learn_nothing() -> None:
    today = MONDAY + timedelta(days=6)
    assert rhythm.learn(today, _days(MONDAY, 6), ZONE) is None
    assert rhythm.learn(today + timedelta(days=1), _days(MONDAY, 7), ZONE) is not None


def test_away_days_and_alarm_days_are_left_out() -> None:
    today = MONDAY + timedelta(days=8)
    excluded = {MONDAY, MONDAY + timedelta(days=1)}
    assert rhythm.learn(today, _days(MONDAY, 8), ZONE, excluded) is None
    learned = rhythm.learn(today, _days(MONDAY, 8), ZONE)
    assert learned is not None and learned.good_days == 8


def test_it_learns_the_usual_and_the_late_getting_up_time() -> None:
    learned = rhythm.learn(MONDAY + timedelta(days=14), _days(MONDAY, 14), ZONE)
    assert learned is not None
    profile = learned.all_days
    assert 6 * 60 + 30 <= profile.up_usual <= 6 * 60 + 50 and profile.up_late <= 6 * 60 + 50
    assert profile.longest_silence == 270  # 07:30 to 12:00 on the latest days
    assert rhythm.up_by(learned, MONDAY + timedelta(days=14), ZONE) <= local(MONDAY + timedelta(days=14), "09:20")


def test_weekends_are_learned_apart_when_they_differ() -> None:
    learned = rhythm.learn(MONDAY + timedelta(days=28), _days(MONDAY, 28, weekend_up="08:30"), ZONE)
    assert learned is not None and learned.weekends is not None and learned.weekdays is not None
    saturday = MONDAY + timedelta(days=33)
    monday = saturday + timedelta(days=2)
    later = (rhythm.up_by(learned, saturday, ZONE) - local(saturday, "00:00")) - \
        (rhythm.up_by(learned, monday, ZONE) - local(monday, "00:00"))
    assert later == timedelta(hours=2)  # weekends up at 08:30 instead of 06:30
    same = rhythm.learn(MONDAY + timedelta(days=28), _days(MONDAY, 28), ZONE)
    assert same is not None and same.weekends is None


def test_it_warns_when_today_departs_from_the_rhythm() -> None:
    today = MONDAY + timedelta(days=14)
    learned = rhythm.learn(today, _days(MONDAY, 14), ZONE)
    assert learned is not None
    last = local(today - timedelta(days=1), "21:00")
    assert rhythm.check(learned, local(today, "09:00"), ZONE, last) is None  # late quantile + 2.5 h: 09:20
    departure = rhythm.check(learned, local(today, "09:30"), ZONE, last)
    assert departure is not None and departure.kind == "not_up"
    up = local(today, "06:40")
    # far longer than ever: 1.5 x the longest daytime silence learned (270 min), from 06:40 -> 13:25
    assert rhythm.check(learned, local(today, "13:20"), ZONE, up) is None
    silent = rhythm.check(learned, local(today, "13:30"), ZONE, up)
    assert silent is not None and silent.kind == "long_silence"
    assert rhythm.describe(learned, local(today, "09:30"), ZONE, last, "en") == \
        f"usually up by {rhythm._clock(learned.all_days.up_usual)}; today nothing yet"
    assert rhythm.Rhythm.from_dict(learned.to_dict()) == learned


# -- end to end on the manual clock ------------------------------------------------------------------------
def _community(grid_routine: str | None = None) -> dict[str, object]:
    grid: dict[str, object] = {"name": "第一网格", "micro_grids": [{"name": "1号楼"}]}
    if grid_routine:
        grid["routine"] = grid_routine
    return {
        "community": {"name": "夷陵社区"},
        "grids": [grid, {"name": "第二网格", "micro_grids": [{"name": "9号楼"}]}],
        "workers": [{"name": "李娜", "phone": GRID_PHONE, "role": "grid_worker", "grid": "第一网格"},
                    {"name": "赵强", "phone": OTHER_GRID_PHONE, "role": "grid_worker", "grid": "第二网格"}],
        "residents": [{"ref": "r1", "name": "王秀英", "phone": "+867178000001", "micro_grid": "第一网格/1号楼",
                       "devices": [{"id": "pir-1", "kind": "motion"}],
                       "contacts": [{"name": "王强", "phone": "+8613900000011"}]}],
    }


MakeHome = Callable[[datetime, dict[str, object] | None], Site]


def move(home: Site, at: datetime) -> None:
    """A motion of pir-1 at ``at``, the clock moved there."""
    home.clock.set(at)
    home.record(at, obs("pir-1", topic="shouwang/v1/events/pir-1", payload=b'{"type": "motion"}', device_time=at))


@pytest.fixture
def make_home(make_site: Callable[..., Site]) -> MakeHome:
    """A Shouwang in Shanghai's time zone whose clock starts at ``start``, with ``community`` loaded then."""
    return lambda start, community: make_site(start=start, community=community, timezone="Asia/Shanghai")


def test_a_resident_who_does_not_get_up_is_alarmed_at_the_windows_end_not_at_14_hours(make_home: MakeHome) -> None:
    home = make_home(local(MONDAY, "12:00"), _community("07:00-10:00"))
    move(home, local(MONDAY, "21:00"))
    tuesday = MONDAY + timedelta(days=1)
    home.rules_at(local(MONDAY, "22:00"))  # plans the next window's end
    home.rules_at(local(tuesday, "09:59"))
    assert home.alarms(AlarmKind.ROUTINE) == []
    result = home.tick_at(local(tuesday, "10:00"))
    (alarm,) = home.alarms(AlarmKind.ROUTINE)
    assert result.routine_alarms == [alarm.id] and "07:00" in alarm.reason
    assert home.alarms(AlarmKind.INACTIVITY) == []  # the fixed window would only come at 11:00
    # the check call goes first, as for inactivity
    home.runtime.escalate(local(tuesday, "10:00"))
    with Session(home.engine) as session:
        first = session.scalars(select(Attempt).where(Attempt.alarm_id == alarm.id)).all()
    assert [(a.target, a.channel, a.template) for a in first] == [("resident", "voice", "check_call")]


def test_activity_inside_the_window_keeps_the_time_window_rule_quiet(make_home: MakeHome) -> None:
    home = make_home(local(MONDAY, "12:00"), _community("07:00-10:00"))
    tuesday = MONDAY + timedelta(days=1)
    home.rules_at(local(MONDAY, "22:00"))
    move(home, local(tuesday, "08:15"))
    home.rules_at(local(tuesday, "10:00"))
    assert home.alarms(AlarmKind.ROUTINE) == []


def test_a_meal_card_swipe_keeps_an_alarm_from_firing(make_home: MakeHome) -> None:
    home = make_home(local(MONDAY, "12:00"), _community("11:00-13:00"))
    move(home, local(MONDAY, "21:00"))
    tuesday = MONDAY + timedelta(days=1)
    home.rules_at(local(MONDAY, "22:00"))
    canteen = home.client("integration:canteen")
    home.clock.set(local(tuesday, "11:40"))
    response = canteen.post(f"/api/residents/{home.resident('r1').id}/activity",
                            json={"source": "meal_card", "at": local(tuesday, "11:35").isoformat()})
    assert response.status_code == 201, response.text
    home.rules_at(local(tuesday, "13:00"))
    home.rules_at(local(tuesday, "21:00"))  # the fixed 14 h window ran from Monday 21:00, the swipe restarted it
    assert home.alarms(AlarmKind.ROUTINE) == [] and home.alarms(AlarmKind.INACTIVITY) == []
    card = home.client("operator").get(f"/api/residents/{home.resident('r1').id}").json()
    assert [(s["source"], s["recorded_by"]) for s in card["signs_of_life"]] == [("meal_card", "canteen (integration)")]
    assert card["routine"] == "11:00-13:00"


def test_a_sign_of_life_resolves_an_open_inactivity_alarm_like_activity(make_home: MakeHome) -> None:
    home = make_home(local(MONDAY, "12:00"), _community())
    move(home, local(MONDAY, "12:00"))
    home.rules_at(local(MONDAY + timedelta(days=1), "02:00"))
    (alarm,) = home.alarms(AlarmKind.INACTIVITY)
    worker = home.client(GRID_PHONE)
    home.clock.set(local(MONDAY + timedelta(days=1), "02:01"))
    assert worker.post(f"/api/residents/{home.resident('r1').id}/activity",
                       json={"source": "phone_call", "note": "她接了电话"}).status_code == 201
    home.rules_at(local(MONDAY + timedelta(days=1), "02:02"))
    (resolved,) = home.alarms(AlarmKind.INACTIVITY)
    assert resolved.id == alarm.id and resolved.outcome == "activity_resumed"


def test_only_the_right_people_may_report_a_sign_of_life(make_home: MakeHome) -> None:
    home = make_home(local(MONDAY, "12:00"), _community())
    rid = home.resident("r1").id
    body = {"source": "worker_visit"}
    assert home.client("screen").post(f"/api/residents/{rid}/activity", json=body).status_code == 403
    assert home.client(OTHER_GRID_PHONE).post(f"/api/residents/{rid}/activity", json=body).status_code == 404
    assert home.client("operator").post(f"/api/residents/{rid}/activity", json=body).status_code == 201
    canteen = home.client("integration:canteen")
    assert canteen.post(f"/api/residents/{rid}/activity", json={"source": "meal_card"}).status_code == 201
    assert canteen.get("/api/residents").json() == []  # an integration token sees nobody
    assert canteen.get("/api/alarms").json() == []
    with Session(home.engine) as session:
        assert session.scalar(select(SignOfLife.id).limit(1)) is not None
        assert "resident.sign_of_life" in {e.action for e in session.scalars(select(AuditEntry))}


def test_the_learned_rhythm_warns_after_14_days_of_routine_with_one_sms_to_the_grid_worker(make_home: MakeHome) -> None:
    home = make_home(local(MONDAY, "00:30"), _community())
    for offset in range(14):
        day = MONDAY + timedelta(days=offset)
        home.rules_at(local(day, "03:05"))
        wake = local(day, "06:20") + timedelta(minutes=(offset % 3) * 10)
        for moment in (wake, wake + timedelta(hours=1), local(day, "12:00"), local(day, "15:00"),
                       local(day, "18:00"), local(day, "21:00")):
            move(home, moment)
            home.rules_at(moment + timedelta(minutes=1))
    assert home.alarms(AlarmKind.RHYTHM) == []
    day15 = MONDAY + timedelta(days=14)
    home.rules_at(local(day15, "03:05"))  # relearns: 14 good days
    with Session(home.engine) as session:
        resident = session.scalars(select(Resident)).one()
        assert resident.rhythm is not None and resident.rhythm["good_days"] == 14
    home.rules_at(local(day15, "09:00"))  # usually up by 06:30, at the latest 06:40: warned at 09:10
    assert home.alarms(AlarmKind.RHYTHM) == []
    home.rules_at(local(day15, "09:15"))
    (notice,) = home.alarms(AlarmKind.RHYTHM)
    assert "尚未起床：平时" in notice.reason and notice.reason_code == "rhythm_not_up"
    assert home.alarms(AlarmKind.INACTIVITY) == []  # 12 h 15 min: the fixed window has 1 h 45 min to go
    card = home.client("operator").get(f"/api/residents/{home.resident('r1').id}").json()
    assert card["status"] == "warning" and "今天尚无活动" in card["rhythm"]
    for minutes in (0, 1, 30):
        home.runtime.escalate(local(day15, "09:15") + timedelta(minutes=minutes))
    with Session(home.engine) as session:
        attempts = session.scalars(select(Attempt).where(Attempt.alarm_id == notice.id)).all()
    assert [(a.target, a.channel, a.template) for a in attempts] == [("grid_worker", "sms", "rhythm_sms")]
    move(home, local(day15, "10:00"))
    home.rules_at(local(day15, "10:01"))
    (resolved,) = home.alarms(AlarmKind.RHYTHM)
    assert resolved.outcome == "activity_resumed"


def test_a_bad_time_window_in_a_community_file_is_refused_with_its_place(make_home: MakeHome) -> None:
    home = make_home(local(MONDAY, "12:00"), None)
    with pytest.raises(CommunityFileError, match="第一网格"):
        home.load(_community("7 to 10"), local(MONDAY, "12:00"))
