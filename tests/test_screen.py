"""The wall screen's read model on a real database (SQLite and PostgreSQL): what a person reads is in
notify.language (Chinese by default), local time, 24-hour clock; a marker shows the most urgent state
of its resident's alarms, whatever their kind."""

from __future__ import annotations

import dataclasses
import re
from datetime import timedelta

import pytest
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session

from alerts import service, transitions, wording
from alerts.alarms import record
from alerts.models import Alarm, AlarmKind, Resident
from alerts.observations import Observation
from alerts.recording import IngestPolicy, record_batch
from alerts.registry.community import load_community
from alerts.screen import screen_state
from alerts.service import WatchPolicy
from alerts.views import alarm_row
from tests.conftest import T0
from tests.helpers import ROOT

H = timedelta(hours=1)
M = timedelta(minutes=1)
ZH = wording.Wording("zh")
EN = wording.Wording("en")

COMMUNITY = {
    "community": {"name": "测试社区"},
    "grids": [{"name": "G1", "micro_grids": [{"name": "B1"}]}],
    "workers": [{"name": "李娜", "phone": "+8613800000001", "role": "grid_worker", "grid": "G1"}],
    "residents": [
        {"ref": "r1", "name": "王秀英", "micro_grid": "G1/B1", "latitude": 30.69, "longitude": 111.28,
         "devices": [{"id": "pir-1", "kind": "motion"}, {"id": "btn-1", "kind": "button"}]},
        {"ref": "r2", "name": "李桂兰", "micro_grid": "G1/B1", "latitude": 30.70, "longitude": 111.29,
         "devices": [{"id": "pir-2", "kind": "motion"}, {"id": "door-2", "kind": "door"}]},
    ],
}


class Home:
    def __init__(self, engine: Engine, watch: WatchPolicy, ingest: IngestPolicy) -> None:
        self.engine, self.watch, self.ingest = engine, watch, ingest
        self.keys = iter(range(10**6))
        with Session(engine) as session, session.begin():
            load_community(session, COMMUNITY, T0, watch.limits)

    def record(self, now, device: str, kind: str = "motion", **fields: object) -> None:  # type: ignore[no-untyped-def]
        o = Observation(device=device, kind=kind, topic=f"t/{device}", delivery_key=f"k{next(self.keys)}",
                        **fields)  # type: ignore[arg-type]
        with Session(self.engine) as session, session.begin():
            record_batch(session, [o], [], now, self.ingest)

    def alarm(self, kind: str, ref: str = "r1") -> Alarm:
        with Session(self.engine) as session:
            return session.scalars(select(Alarm).join(Resident, Alarm.resident_id == Resident.id)
                                   .where(Alarm.kind == kind, Resident.external_ref == ref)).one()

    def state(self, now, words: wording.Wording):  # type: ignore[no-untyped-def]
        with Session(self.engine) as session:
            return screen_state(session, now, self.watch.limits, self.watch.zone, words=words)

    def marker(self, now, ref: str):  # type: ignore[no-untyped-def]
        with Session(self.engine) as session:
            rid = session.scalars(select(Resident.id).where(Resident.external_ref == ref)).one()
        return next(m for m in self.state(now, ZH)["markers"] if m["id"] == rid)


@pytest.fixture
def home(engine: Engine, watch_policy: WatchPolicy, ingest_policy: IngestPolicy) -> Home:
    return Home(engine, watch_policy, ingest_policy)


def test_an_acknowledged_panic_does_not_hide_an_open_red_inactivity_alarm(home: Home) -> None:
    home.record(T0 + M, "btn-1", "button")
    panic = home.alarm(AlarmKind.PANIC)
    with Session(home.engine) as session, session.begin():
        transitions.acknowledged(session, session.get(Alarm, panic.id), T0 + 2 * M, by="李娜 (grid_worker)",
                                 channel="keypress")
    assert home.marker(T0 + 3 * M, "r1")["colour"] == "blue"
    service.tick(home.engine, T0 + 14 * H + 2 * M, home.watch)  # the button press was the last activity
    inactivity = home.alarm(AlarmKind.INACTIVITY)
    marker = home.marker(T0 + 14 * H + 3 * M, "r1")
    assert (marker["colour"], marker["alarm_id"]) == ("blue", panic.id)  # blue (someone on it) > amber
    with Session(home.engine) as session, session.begin():  # the chain called the responders
        session.execute(update(Alarm).where(Alarm.id == inactivity.id).values(
            responders_called_at=T0 + 14 * H + 5 * M))
    marker = home.marker(T0 + 14 * H + 6 * M, "r1")
    assert (marker["colour"], marker["alarm_id"]) == ("red", inactivity.id)


def test_an_open_panic_outranks_an_acknowledged_alarm_and_flashes(home: Home) -> None:
    service.tick(home.engine, T0 + 14 * H, home.watch)
    inactivity = home.alarm(AlarmKind.INACTIVITY)
    with Session(home.engine) as session, session.begin():
        transitions.acknowledged(session, session.get(Alarm, inactivity.id), T0 + 14 * H + M, by="李娜",
                                 channel="SMS")
    home.record(T0 + 14 * H + 2 * M, "btn-1", "button")
    marker = home.marker(T0 + 14 * H + 3 * M, "r1")
    assert (marker["colour"], marker["flashing"], marker["alarm_id"]) == ("red", True, home.alarm("panic").id)


def test_alarm_reasons_roles_and_history_read_in_chinese_local_time_by_default(home: Home) -> None:
    home.record(T0 + 7 * H + 40 * M + timedelta(seconds=55), "btn-1", "button")  # 23:40:55 in Shanghai
    panic = home.alarm(AlarmKind.PANIC)
    assert panic.reason == "2026-11-23 23:40:55按下紧急按钮"  # stored for the SMS and the spoken call
    assert panic.reason_code == "panic"
    with Session(home.engine) as session, session.begin():
        transitions.acknowledged(session, session.get(Alarm, panic.id), T0 + 16 * H,
                                 by="李娜 (grid_worker)", channel="keypress")
        alarm = session.get(Alarm, panic.id)
        assert alarm is not None
        record(session, alarm, T0 + 16 * H, action="attempt", actor="李娜",
               detail="call 李娜 (grid_worker): no-answer")
        record(session, alarm, T0 + 16 * H, action="step", actor="shouwang",
               detail="step 2 (grid worker and first family contact), round 1: the wait ran out")
    [row] = home.state(T0 + 16 * H, ZH)["alarms"]
    assert row["reason"] == "2026-11-23 23:40:55按下紧急按钮"
    assert row["acknowledged_by"] == "李娜（网格员、按键）"
    with Session(home.engine) as session:
        history = alarm_row(session.get(Alarm, panic.id), with_history=True, words=ZH)["transitions"]
        english = alarm_row(session.get(Alarm, panic.id), with_history=True, words=EN)
    assert [t["detail"] for t in history[-2:]] == ["呼叫李娜（网格员）：无人接听",
                                                   "第2步（网格员和第一位家属），第1轮：等待超时"]
    assert history[-1]["actor"] == "守望系统"
    assert english["reason"] == "panic button pressed at 2026-11-23 23:40:55"
    assert english["acknowledged_by"] == "李娜 (grid worker, keypress)"
    assert english["transitions"][-2]["detail"] == "call 李娜 (grid worker): no answer"


def test_inactivity_and_device_reasons_in_each_language(engine: Engine, watch_policy: WatchPolicy,
                                                        ingest_policy: IngestPolicy) -> None:
    home = Home(engine, watch_policy, ingest_policy)
    home.record(T0, "pir-1")
    home.record(T0, "door-2", "availability", availability="offline")  # r2's door goes offline at 16:00
    service.tick(home.engine, T0 + 14 * H + 6 * M, home.watch)
    with Session(home.engine) as session:
        r1 = session.scalars(select(Resident.id).where(Resident.external_ref == "r1")).one()
        inactivity = session.scalars(select(Alarm).where(Alarm.kind == "inactivity", Alarm.resident_id == r1)).one()
        offline = {a.reason for a in session.scalars(select(Alarm).where(Alarm.kind == "device_offline"))}
        door = session.scalars(select(Alarm).where(Alarm.reason_code == "device_reported_offline")).one()
    assert inactivity.reason == "已14.1小时无活动（时限14小时）；最后活动2026-11-23 16:00；无数据：设备离线"
    assert {"设备door-2于2026-11-23 16:00报告离线", "设备pir-1自2026-11-23 16:00起无消息"} <= offline
    assert wording.reason("inactivity", inactivity.reason_params or {}, "en", home.watch.zone) == (
        "no activity for 14.1 h (window 14 h); last activity 2026-11-23 16:00; no data: devices offline")
    rows = {r["code"]: r for r in home.state(T0 + 15 * H, EN)["alarms"]}
    assert rows[door.code]["reason"] == "device door-2 reported offline at 2026-11-23 16:00"


def test_a_watch_configured_in_english_stores_english_reasons(engine: Engine, watch_policy: WatchPolicy,
                                                              ingest_policy: IngestPolicy) -> None:
    home = Home(engine, dataclasses.replace(watch_policy, language="en"),
                dataclasses.replace(ingest_policy, language="en"))
    home.record(T0 + 7 * H + 40 * M, "btn-1", "button")
    assert home.alarm(AlarmKind.PANIC).reason == "panic button pressed at 2026-11-23 23:40:00"
    service.tick(home.engine, T0 + 30 * H, home.watch)
    with Session(home.engine) as session:
        texts = [a.reason for a in session.scalars(select(Alarm).where(Alarm.kind == "inactivity"))]
    assert texts and all(t.startswith("no activity for ") for t in texts)


def test_the_pages_name_every_alarm_kind_in_each_language() -> None:
    """The screen and the phone page word an alarm's kind from common.js: none may show a raw code."""
    source = (ROOT / "api" / "static" / "common.js").read_text(encoding="utf-8")
    zh, en = source.split("\n    en: {", 1)
    for kind in AlarmKind:
        label = "system_kind" if kind is AlarmKind.SYSTEM else kind.value
        assert re.search(rf"\b{label}: \"", zh), f"no Chinese label for {kind.value}"
        assert re.search(rf"\b{label}: \"", en.split("\n    },", 1)[0]), f"no English label for {kind.value}"
