"""Escalation end to end: the real ``twilio`` package against a local fake of Twilio's REST API that
plays the people and posts signed callbacks to Shouwang's webhooks over HTTP; SQLite and PostgreSQL;
the manual clock, moved by the test, with the tick and the chain run at chosen instants."""

from __future__ import annotations

import threading
import xml.etree.ElementTree as ET
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from alerts.escalation import runner
from alerts.models import Alarm, AlarmKind, Attempt, AttemptStatus, Device, EscalationPolicy, Resident
from api.runtime import Runtime
from tests.fake_twilio import ACCOUNT_SID, AUTH_TOKEN, FROM, FakeTwilio
from tests.harness import T0, Site, obs
from tests.helpers import free_port

H = timedelta(hours=1)
M = timedelta(minutes=1)
RESIDENT, FAMILY1, FAMILY2 = "+867178000001", "+8613900000011", "+8613900000012"
GRID, MICRO, SUPERVISOR = "+8613800000001", "+8613800000002", "+8613800000003"

COMMUNITY = {
    "community": {"name": "夷陵社区"},
    "grids": [{"name": "第一网格", "micro_grids": [{"name": "1号楼"}]}],
    "workers": [
        {"name": "李娜", "phone": GRID, "role": "grid_worker", "grid": "第一网格"},
        {"name": "赵强", "phone": MICRO, "role": "micro_grid_worker", "micro_grid": "第一网格/1号楼"},
        {"name": "陈静", "phone": SUPERVISOR, "role": "supervisor"},
    ],
    "residents": [
        {"ref": "r1", "name": "王秀英", "address": "1号楼 2单元 301", "phone": RESIDENT, "micro_grid": "第一网格/1号楼",
         "devices": [{"id": "pir-1", "kind": "motion"}, {"id": "sos-1", "kind": "button"}],
         "contacts": [{"name": "王强", "phone": FAMILY1, "priority": 1},
                      {"name": "王丽", "phone": FAMILY2, "priority": 2}]},
    ],
}


def served_with_twilio(make_site: Callable[..., Site], fake: FakeTwilio) -> Site:
    """Shouwang served over HTTP (Twilio's callbacks reach it), calling through the real ``twilio`` package."""
    port = free_port()
    site = make_site(community=COMMUNITY, notify={
        "twilio_account_sid": ACCOUNT_SID, "twilio_auth_token": AUTH_TOKEN, "twilio_from": FROM,
        "public_base_url": f"http://127.0.0.1:{port}", "twilio_api_base": fake.url, "retry_after": "30s"})
    return site.serve(port)


@pytest.fixture
def env(fake: FakeTwilio, make_site: Callable[..., Site]) -> Site:
    return served_with_twilio(make_site, fake)


def called(fake: FakeTwilio) -> list[tuple[str, str]]:
    """(channel, number) of every call and SMS the provider received, in order."""
    return [("voice", c.to) for c in fake.calls] + [("sms", m.to) for m in fake.messages]


def activity(env: Site, at: timedelta, device: str = "pir-1", battery: int | None = None) -> None:
    kind = "battery" if battery is not None else "button" if device.startswith("sos") else "motion"
    env.record(at, obs(device, kind, topic="t", battery=battery))


def raise_inactivity(env: Site) -> Alarm:
    activity(env, timedelta(0))
    env.at(14 * H)
    return env.alarm()


def answer_steps(env: Site, fake: FakeTwilio, steps: int) -> Alarm:
    """The people called in the first ``steps`` steps do what ``fake.behaviour`` says, the chain moving on
    after each step but the last; the alarm then."""
    for step in range(steps):
        if step:
            env.escalate()
        fake.play()
    return env.alarm()


def test_default_chain_resident_silent_then_worker_and_family_in_parallel_then_worker_presses_1(
        env: Site, fake: FakeTwilio) -> None:
    fake.behaviour.update({RESIDENT: "no-answer", GRID: "press:1", FAMILY1: "no-answer"})
    alarm = raise_inactivity(env)
    assert called(fake) == [("voice", RESIDENT)]  # step 1: the check call only
    assert env.alarm().responders_called_at is None
    fake.play()  # the resident does not answer: the step's only attempt ended
    env.escalate()
    assert sorted(called(fake)) == sorted([("voice", RESIDENT), ("voice", GRID), ("voice", FAMILY1), ("sms", GRID)])
    assert env.alarm().responders_called_at == T0 + 14 * H  # red from now on
    fake.play()  # the grid worker presses 1
    current = env.alarm()
    assert current.state == "acknowledged" and "李娜" in (current.acknowledged_by or "")
    assert current.next_action_at is None
    env.at(14 * H + 30 * M)  # long past every wait: the chain has stopped
    assert len(fake.calls) == 3
    rows = {(a.target, a.channel): a for a in env.attempts()}
    assert rows[("resident", "voice")].status == "no-answer"
    assert rows[("grid_worker", "voice")].digits == "1" and rows[("grid_worker", "voice")].status == "completed"
    assert rows[("grid_worker", "sms")].status == "delivered"
    assert all(a.provider_id and a.provider == "twilio" for a in rows.values())
    assert alarm.id == current.id


def test_the_resident_pressing_1_resolves_as_fine_and_calls_no_one_else(env: Site, fake: FakeTwilio) -> None:
    fake.behaviour[RESIDENT] = "press:1"
    raise_inactivity(env)
    alarm = answer_steps(env, fake, 1)
    assert alarm.state == "resolved" and alarm.outcome == "confirmed_fine_by_phone"
    for minutes in (5, 60, 600, 13 * 60):
        env.at(14 * H + minutes * M)
    assert [c.to for c in fake.calls] == [RESIDENT]
    assert len(env.alarms(AlarmKind.INACTIVITY)) == 1  # the window restarted at the keypress
    env.at(28 * H + M)
    assert len(env.alarms(AlarmKind.INACTIVITY)) == 2


def test_a_call_answered_by_voicemail_does_not_acknowledge(env: Site, fake: FakeTwilio) -> None:
    fake.behaviour.update({RESIDENT: "voicemail", GRID: "voicemail", FAMILY1: "voicemail"})
    raise_inactivity(env)
    alarm = answer_steps(env, fake, 2)
    assert alarm.state == "open" and alarm.acknowledged_at is None
    assert {a.status for a in env.attempts() if a.channel == "voice"} == {"completed"}


@pytest.mark.parametrize("outcome", ["busy", "no-answer", "failed"])
def test_unanswered_steps_advance_at_once_and_the_chain_repeats_until_acknowledged(
        env: Site, fake: FakeTwilio, outcome: str) -> None:
    for number in (RESIDENT, GRID, FAMILY1, MICRO, FAMILY2, SUPERVISOR):
        fake.behaviour[number] = outcome
    raise_inactivity(env)
    for _ in range(4):  # steps 1-4, each ended by its callbacks, no waiting
        fake.play()
        env.escalate()
    alarm = env.alarm()
    assert alarm.cycle == 1 and alarm.step == 1  # round 2 started again from step 2
    called = [c.to for c in fake.calls]
    assert called[:1] == [RESIDENT] and SUPERVISOR in called and called.count(GRID) == 2
    fake.behaviour[MICRO] = "press:1"
    fake.play()
    env.escalate()
    fake.play()
    assert env.alarm().state == "acknowledged"


def test_the_wait_runs_out_when_nobody_calls_back(env: Site) -> None:
    raise_inactivity(env)  # the fake plays nobody: no callbacks at all
    env.at(14 * H + 2 * M)
    assert env.alarm().step == 0
    env.at(14 * H + 3 * M)
    assert env.alarm().step == 1
    env.at(14 * H + 8 * M)
    assert env.alarm().step == 2


def test_the_per_person_cap_skips_with_a_reason_and_the_chain_goes_on(env: Site, fake: FakeTwilio) -> None:
    for number in (RESIDENT, GRID, FAMILY1, MICRO, FAMILY2, SUPERVISOR):
        fake.behaviour[number] = "busy"
    raise_inactivity(env)
    for _ in range(40):
        fake.play()
        env.escalate()
        if any(a.skip_reason and a.skip_reason.startswith("capped") for a in env.attempts()):
            break
    capped = [a for a in env.attempts() if a.skip_reason and a.skip_reason.startswith("capped")]
    assert capped and capped[0].status == "skipped"
    assert "limit 6" in capped[0].skip_reason
    assert len([c for c in fake.calls if c.to == capped[0].phone]) <= 6
    before = len(fake.calls)
    fake.play()
    env.escalate()
    fake.play()
    env.escalate()
    assert env.alarm().state == "open" and len(fake.calls) >= before  # never ends on its own


def test_a_forged_or_missing_signature_gets_403_and_changes_nothing(env: Site, fake: FakeTwilio) -> None:
    fake.behaviour[RESIDENT] = "press:1"
    raise_inactivity(env)
    call = fake.calls[0]
    action = call.gather().attrib["action"]
    params = {"CallSid": call.sid, "Digits": "1", "To": call.to, "From": FROM}
    assert fake.post(action, params, signature="forged").status_code == 403
    assert fake.post(action, params, signature="").status_code == 403
    assert fake.post(f"{env.url}/webhooks/twilio/sms", {"From": GRID, "Body": "1"},
                         signature="bm9wZQ==").status_code == 403
    assert env.alarm().state == "open"
    assert all(a.digits is None for a in env.attempts())


def test_sms_replies_with_and_without_the_code(env: Site, fake: FakeTwilio) -> None:
    activity(env, timedelta(0))
    env.at(14 * H)
    fake.play()
    env.escalate()  # step 2: the grid worker gets an SMS with the code
    first = env.alarm()
    sms = next(m for m in fake.messages if m.to == GRID)
    assert first.code in sms.body and "王秀英" in sms.body
    assert "已确认" in fake.sms_from(env.url, GRID, "1")  # bare 1: the only open alarm
    assert env.alarm().state == "acknowledged"
    # a panic alarm for the same resident and a second inactivity alarm elsewhere: two open ones
    activity(env, 14 * H + M, device="sos-1")
    env.at(14 * H + 2 * M)
    fake.play()
    with Session(env.engine) as session, session.begin():
        session.execute(update(Alarm).where(Alarm.id == first.id).values(state="open", acknowledged_at=None))
    reply = fake.sms_from(env.url, GRID, "1")
    panic = env.alarm(AlarmKind.PANIC)
    assert first.code in reply and panic.code in reply  # several open: it lists, does not guess
    assert env.alarm(AlarmKind.PANIC).state == "open"
    assert "已确认" in fake.sms_from(env.url, GRID, f"1 {panic.code}")
    assert env.alarm(AlarmKind.PANIC).state == "acknowledged"
    assert "没有" in fake.sms_from(env.url, "+8600000000000", "1")  # unknown number


def test_resolving_sends_the_outcome_to_the_family_by_sms(env: Site, fake: FakeTwilio) -> None:
    alarm = raise_inactivity(env)
    response = env.http("admin", "POST", f"/api/alarms/{alarm.id}/resolve",
                       json={"by": "李娜", "outcome": "resident_fine", "note": "在女儿家"})
    assert response.status_code == 200
    env.at(14 * H + M)
    outcome = [m for m in fake.messages if m.to in (FAMILY1, FAMILY2)]
    assert {m.to for m in outcome} == {FAMILY1, FAMILY2}
    assert all(alarm.code in m.body and "老人平安" in m.body and "在女儿家" in m.body for m in outcome)


def test_family_pressing_1_shows_family_handling_and_the_grid_steps_go_on(env: Site, fake: FakeTwilio) -> None:
    fake.behaviour.update({RESIDENT: "no-answer", GRID: "no-answer", FAMILY1: "press:1"})
    raise_inactivity(env)
    alarm = answer_steps(env, fake, 2)
    assert alarm.family_handling_at is not None and "王强" in (alarm.family_handling_by or "")
    assert alarm.state == "open"
    env.escalate()
    assert env.alarm().step == 2  # the micro-grid worker is next
    assert MICRO in [c.to for c in fake.calls]
    body = env.http("admin", "GET", f"/api/alarms/{alarm.id}").json()
    assert body["family_handling_by"] and body["step"] == 3
    noted = [t["detail"] for t in body["transitions"] if t["action"] == "attempt"]
    assert any("王秀英" in d and "无人接听" in d for d in noted)  # each call's end is on the history, worded


def test_panic_skips_the_check_call(env: Site, fake: FakeTwilio) -> None:
    activity(env, H, device="sos-1")
    env.at(H)
    numbers = {c.to for c in fake.calls}
    assert RESIDENT not in numbers and {GRID, FAMILY1} <= numbers
    assert env.alarm(AlarmKind.PANIC).responders_called_at is not None


def test_maintenance_alarms_send_one_sms_to_the_grid_worker_and_a_daily_reminder(env: Site, fake: FakeTwilio) -> None:
    activity(env, timedelta(0))
    activity(env, H, device="sos-1", battery=8)
    env.at(H)
    assert env.alarm(AlarmKind.LOW_BATTERY) is not None
    assert fake.calls == []  # never a call
    assert [m.to for m in fake.messages] == [GRID]  # one SMS, to the grid worker, never the family
    assert "设备提醒" in fake.messages[0].body
    for minutes in (1, 5, 30, 120):  # delivered SMS must not restart the chain: one notice, then daily
        fake.play()
        env.at(H + minutes * M)
    assert len(fake.messages) == 1
    env.at(25 * H)
    assert [m.to for m in fake.messages] == [GRID, GRID]  # the daily reminder
    assert {a.template for a in env.attempts()} == {"maintenance_sms", "check_call", "alarm_sms", "alarm_call"} \
        or {a.template for a in env.attempts() if a.phone == GRID} >= {"maintenance_sms"}


def test_the_twiml_says_what_it_should(env: Site, fake: FakeTwilio) -> None:
    raise_inactivity(env)
    root = ET.fromstring(fake.calls[0].twiml)
    gather = root.find("Gather")
    assert gather is not None and gather.attrib["numDigits"] == "1"
    assert gather.attrib["action"].startswith(f"{env.url}/webhooks/twilio/gather?attempt=")
    says = gather.findall("Say")
    assert says and all(s.attrib["language"] == "zh-CN" for s in says)
    text = says[0].text or ""
    assert "王秀英" in text and "14小时" in text and "请按1" in text
    fake.behaviour[RESIDENT] = "no-answer"
    fake.play()
    env.escalate()
    responder = next(c for c in fake.calls if c.to == GRID)
    assert "1号楼 2单元 301" in responder.said() and env.alarm().code in responder.said()


def test_a_restart_mid_chain_neither_repeats_nor_skips_a_step(env: Site, fake: FakeTwilio, db_url: str) -> None:
    raise_inactivity(env)
    fake.play()
    env.escalate()
    assert env.alarm().step == 1
    env.runtime.stop()
    second = Runtime(env.settings, ingest=False)
    for _ in range(3):
        second.escalate(T0 + 14 * H + M)  # a second process, and several runs at the same instant
        env.runtime.escalate(T0 + 14 * H + M)
    assert env.alarm().step == 1
    assert len([c for c in fake.calls if c.to == GRID]) == 1
    second.escalate(T0 + 14 * H + 6 * M)
    env.runtime.escalate(T0 + 14 * H + 6 * M)
    assert env.alarm().step == 2
    assert len([c for c in fake.calls if c.to == MICRO]) == 1
    second.stop()


def test_an_attempt_left_pending_by_a_crash_is_sent_again_by_the_auditor(env: Site, fake: FakeTwilio) -> None:
    alarm = raise_inactivity(env)
    with Session(env.engine) as session, session.begin():
        # what a crash between the attempt's commit and the provider call leaves behind
        session.add(Attempt(alarm_id=alarm.id, step=0, cycle=0, token=alarm.escalation_token, target="resident",
                            person="王秀英", phone=RESIDENT, channel="voice", template="check_call",
                            params={"name": "王秀英"}, created_at=T0 + 14 * H, claimed_at=T0 + 14 * H,
                            status=AttemptStatus.PENDING))
    calls = len(fake.calls)
    env.at(14 * H + 10 * 1000 * timedelta(microseconds=1))
    assert len(fake.calls) == calls  # not yet: it may still be on its way
    env.at(14 * H + 31 * timedelta(seconds=1))
    assert len(fake.calls) == calls + 1
    assert all(a.status != "pending" for a in env.attempts())


def test_a_stalled_chain_is_rearmed_by_the_auditor(env: Site) -> None:
    raise_inactivity(env)
    with Session(env.engine) as session, session.begin():
        session.execute(update(Alarm).values(next_action_at=None))
    env.at(14 * H + 10 * M)
    assert env.alarm().next_action_at is not None
    assert env.alarm().step >= 1


def test_a_chain_pushed_past_its_step_s_wait_is_brought_back_and_one_the_runner_moved_is_left_alone(
        env: Site) -> None:
    alarm = raise_inactivity(env)  # step 1 (the check call) started at 14 h
    started = env.alarm().step_started_at
    assert started is not None
    far = started + 30 * 24 * H  # a manual edit: the chain would sleep for a month
    with Session(env.engine) as session, session.begin():
        session.execute(update(Alarm).values(next_action_at=far))
    with Session(env.engine) as session, session.begin():  # the runner moved it since the audit read it
        assert not runner._rearm(session, alarm.id, far - H, started)
    assert env.alarm().next_action_at == far
    result = runner.RunResult()
    runner._audit(env.engine, started + M, result, whole=True)
    assert result.rearmed == [alarm.id]
    assert env.alarm().next_action_at is not None and env.alarm().next_action_at < far


def test_an_invalid_number_fails_for_good_and_a_provider_outage_is_retried(env: Site, fake: FakeTwilio) -> None:
    fake.behaviour.update({RESIDENT: "invalid", GRID: "down"})
    raise_inactivity(env)
    [attempt] = env.attempts()
    assert attempt.status == "failed" and "21211" in (attempt.error or "")
    env.escalate()
    assert env.alarm().step == 1  # the step ended at once: its only attempt failed for good
    grid_call = next(a for a in env.attempts() if a.phone == GRID and a.channel == "voice")
    assert grid_call.status == "pending" and grid_call.tries == 1
    fake.behaviour[GRID] = "no-answer"
    env.at(14 * H + M + 31 * timedelta(seconds=1))
    grid_call = next(a for a in env.attempts() if a.id == grid_call.id)
    assert grid_call.status == "queued" and grid_call.tries == 2


def test_a_policy_edit_never_changes_a_running_chain(env: Site, fake: FakeTwilio) -> None:
    alarm = raise_inactivity(env)
    policies = env.http("admin", "GET", "/api/policies").json()
    resident = next(p for p in policies if p["name"] == "resident")["definition"]
    resident["steps"] = [resident["steps"][0], {"name": "supervisor only", "wait": "5m",
                                                "contacts": [{"target": "supervisor", "channels": ["voice"]}]}]
    edited = env.http("admin", "PUT", "/api/policies/resident", json={"by": "admin", "definition": resident})
    assert edited.status_code == 200
    bad = {"steps": [{"contacts": [{"target": "mayor", "channels": ["voice"]}]}]}
    refused = env.http("admin", "PUT", "/api/policies/resident", json={"by": "admin", "definition": bad})
    assert refused.status_code == 422
    fake.play()
    env.escalate()
    assert GRID in [c.to for c in fake.calls] and SUPERVISOR not in [c.to for c in fake.calls]
    with Session(env.engine) as session:
        stored = session.scalars(select(EscalationPolicy).where(EscalationPolicy.name == "resident")).one()
        assert len(stored.definition["steps"]) == 2
        assert len(session.get(Alarm, alarm.id).policy["steps"]) == 4


def test_activity_after_responders_were_called_is_noted_not_auto_resolved(env: Site, fake: FakeTwilio) -> None:
    raise_inactivity(env)
    fake.play()
    env.escalate()  # responders called
    activity(env, 14 * H + 10 * M)
    env.at(14 * H + 11 * M)
    alarm = env.alarm()
    assert alarm.state == "open" and alarm.activity_seen_at == T0 + 14 * H + 10 * M


def test_devices_and_residents_are_untouched_by_a_chain(env: Site) -> None:
    raise_inactivity(env)
    with Session(env.engine) as session:
        assert session.scalar(select(Resident.due_at)) is None
        assert session.scalars(select(Device)).first() is not None


def test_two_processes_running_the_chain_at_once_never_start_a_step_twice(env: Site, fake: FakeTwilio) -> None:
    raise_inactivity(env)
    fake.play()
    other = Runtime(env.settings, ingest=False)
    errors: list[BaseException] = []

    def run(runtime: Runtime) -> None:
        try:
            for _ in range(5):
                runtime.escalate(T0 + 14 * H + M)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(r,)) for r in (env.runtime, other, env.runtime, other)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    other.stop()
    assert errors == []
    assert env.alarm().step == 1
    assert [c.to for c in fake.calls].count(GRID) == 1
    assert [m.to for m in fake.messages].count(GRID) == 1
    assert len([a for a in env.attempts() if a.step == 1]) == 3
