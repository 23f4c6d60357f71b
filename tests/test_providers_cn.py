"""Mainland providers end to end: the official Alibaba Cloud SDKs (voice) and Tencent Cloud SDK (SMS)
against local fakes of their APIs that verify the SDKs' signatures, play the people and push receipts,
key presses and SMS replies back to Shouwang's push URLs over HTTP; SQLite and PostgreSQL; the manual
clock moved by the test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts.escalation.notifiers import ChannelProvider, TemplateMappingError
from alerts.escalation.notifiers.mapping import aliyun_number, fit, from_national, tencent_number
from alerts.models import Alarm, AlarmKind, Attempt
from api import cli
from tests import fake_aliyun, fake_tencent
from tests.fake_aliyun import FakeAliyun
from tests.fake_tencent import FakeTencent
from tests.harness import Site, obs
from tests.helpers import free_port, wait_for
from tests.test_escalation import COMMUNITY as ESCALATION_COMMUNITY
from tests.test_escalation import FAMILY1, GRID, RESIDENT

H = timedelta(hours=1)
M = timedelta(minutes=1)
TOKEN = "push-token-0123456789abcdef"
LONG_NAME = "欧阳娜仁其其格·阿依古丽·买买提"  # 17 characters: over Tencent's 12

# the escalation tests' community, and a second resident whose name is too long for Tencent's templates
COMMUNITY = {**ESCALATION_COMMUNITY, "residents": [
    *ESCALATION_COMMUNITY["residents"],
    {"ref": "r2", "name": LONG_NAME, "address": "1号楼 1单元 101", "phone": "+8613700000009",
     "micro_grid": "第一网格/1号楼",
     "devices": [{"id": "pir-2", "kind": "motion"}, {"id": "sos-2", "kind": "button"}]},
]}

ALIYUN_TEMPLATES: dict[str, dict[str, Any]] = {
    "check_call": {"code": "TTS_100001", "params": ["name", "hours"]},
    "alarm_call": {"code": "TTS_100002", "params": ["name", "address", "reason", "code"]},
    "system_call": {"code": "TTS_100003", "params": ["reason", "code"]},
    "call_thanks": {"code": "TTS_100004", "params": []},
}
TENCENT_TEMPLATES: dict[str, dict[str, Any]] = {
    "alarm_sms": {"code": "2000001", "params": ["code", "name", "address", "reason", "phone"]},
    "maintenance_sms": {"code": "2000002", "params": ["code", "reason", "name", "address"]},
    "system_sms": {"code": "2000003", "params": ["code", "reason"]},
    "outcome_sms": {"code": "2000004", "params": ["name", "code", "outcome", "note"]},
    "reply_ack": {"code": "2000011", "params": ["code"]},
    "reply_family": {"code": "2000012", "params": ["code"]},
    "reply_list": {"code": "2000013", "params": ["codes", "first"]},
    "reply_none": {"code": "2000014", "params": []},
    "reply_help": {"code": "2000015", "params": []},
}


def notify_settings(app_url: str, aliyun: FakeAliyun, tencent: FakeTencent, **extra: Any) -> dict[str, Any]:
    return {
        "voice": "aliyun", "sms": "tencent", "public_base_url": app_url, "retry_after": "30s",
        "webhook_token": TOKEN,
        "aliyun": {"access_key_id": fake_aliyun.ACCESS_KEY_ID, "access_key_secret": fake_aliyun.ACCESS_KEY_SECRET,
                   "show_number": fake_aliyun.SHOW_NUMBER, "sms_endpoint": aliyun.endpoint,
                   "voice_endpoint": aliyun.endpoint, "protocol": "http", "timeout": "3s",
                   "templates": ALIYUN_TEMPLATES},
        "tencent": {"secret_id": fake_tencent.SECRET_ID, "secret_key": fake_tencent.SECRET_KEY,
                    "sdk_app_id": fake_tencent.SDK_APP_ID, "sign_name": fake_tencent.SIGN_NAME,
                    "endpoint": tencent.endpoint, "protocol": "http", "param_max_length": fake_tencent.MAX_PARAM,
                    "templates": TENCENT_TEMPLATES},
        **extra,
    }


@dataclass
class Env:
    """A Shouwang served on a loopback port, Aliyun (voice) and Tencent (SMS) played by the fakes."""

    site: Site
    aliyun: FakeAliyun
    tencent: FakeTencent

    def play(self) -> None:
        self.aliyun.play()
        self.tencent.play()

    def activity(self, delta: timedelta, device: str = "pir-1") -> None:
        self.site.record(delta, obs(device, "button" if device.startswith("sos") else "motion", topic="t"))


@pytest.fixture
def env(make_site: Callable[..., Site]) -> Iterator[Env]:
    port = free_port()
    app_url = f"http://127.0.0.1:{port}"
    aliyun = FakeAliyun(app_url=app_url, token=TOKEN).start()
    tencent = FakeTencent(app_url=app_url, token=TOKEN).start()
    site = make_site(community=COMMUNITY, notify=notify_settings(app_url, aliyun, tencent)).serve(port)
    yield Env(site, aliyun, tencent)
    site.close()
    aliyun.stop()
    tencent.stop()


def raise_inactivity(env: Env) -> Alarm:
    env.activity(timedelta(0))
    env.activity(2 * H, device="pir-2")  # the second resident is fine
    env.site.at(14 * H)
    return env.site.alarm()


def test_aliyun_voice_and_tencent_sms_run_the_default_chain_and_key_1_acknowledges(env: Env) -> None:
    assert isinstance(env.site.runtime.provider, ChannelProvider)
    env.aliyun.behaviour.update({RESIDENT: "no-answer", GRID: "press:1", FAMILY1: "no-answer"})
    alarm = raise_inactivity(env)
    [check] = env.aliyun.calls  # step 1: the check call, as a registered TTS template with one key
    assert check.to == "07178000001"  # a mainland landline as Aliyun wants it: no +86, trunk 0
    assert check.start_code == "TTS_100001" and check.params == {"name": "王秀英", "hours": "14"}
    assert check.menu == {"1": "TTS_100004"} and check.out_id == str(env.site.attempts()[0].id)
    env.play()  # nobody answers: Aliyun pushes the VoiceReport, the step ends at once
    env.site.escalate()
    assert sorted(c.to for c in env.aliyun.calls) == sorted(["07178000001", "13800000001", "13900000011"])
    [sms] = env.tencent.messages
    assert sms.to == GRID and sms.template_id == "2000001"  # Tencent takes E.164
    assert sms.params[:3] == [alarm.code, "王秀英", "1号楼 2单元 301"] and sms.context.isdigit()
    env.play()  # the grid worker presses 1; the SMS is delivered
    current = env.site.alarm()
    assert current.state == "acknowledged" and "李娜" in (current.acknowledged_by or "")
    rows = {(a.target, a.channel): a for a in env.site.attempts()}
    assert rows[("resident", "voice")].status == "no-answer"
    assert rows[("grid_worker", "voice")].digits == "1" and rows[("grid_worker", "voice")].status == "completed"
    assert rows[("grid_worker", "sms")].status == "delivered"
    assert all(a.provider == "aliyun+tencent" and a.provider_id for a in rows.values())
    env.site.at(14 * H + 30 * M)
    assert len(env.aliyun.calls) == 3  # the chain stopped
    assert env.aliyun.rejected == [] and env.tencent.rejected == []  # every SDK signature verified


def test_an_upstream_sms_1_with_the_code_acknowledges_and_is_answered_by_sms(env: Env) -> None:
    env.activity(H, device="sos-1")
    env.site.at(H)  # a panic alarm: responders at once
    panic = env.site.alarm(AlarmKind.PANIC)
    assert any(m.to == GRID for m in env.tencent.messages)
    response = env.tencent.sms_from(GRID, f"1 {panic.code}")
    assert response.status_code == 200 and response.json() == {"result": 0, "errmsg": "OK"}
    assert env.site.alarm(AlarmKind.PANIC).state == "acknowledged"
    reply = env.tencent.messages[-1]
    assert reply.to == GRID and reply.template_id == "2000011" and reply.params == [panic.code]


def test_an_aliyun_upstream_sms_acknowledges_when_aliyun_sends_the_sms(make_site: Callable[..., Site]) -> None:
    port = free_port()
    app_url = f"http://127.0.0.1:{port}"
    aliyun = FakeAliyun(app_url=app_url, token=TOKEN).start()
    tencent = FakeTencent().start()
    templates = {**ALIYUN_TEMPLATES, **{k: {"code": f"SMS_{v['code']}", "params": v["params"]}
                                        for k, v in TENCENT_TEMPLATES.items()}}
    notify = notify_settings(app_url, aliyun, tencent, sms="aliyun")
    notify["aliyun"] = {**notify["aliyun"], "sign_name": fake_aliyun.SIGN_NAME, "templates": templates}
    site = make_site(community=COMMUNITY, notify=notify)
    try:
        assert site.runtime.provider.name == "aliyun"  # one provider for both channels
        site.record(H, obs("sos-1", "button", topic="t"))
        site.serve(port)
        wait_for(lambda: aliyun.push("sms-report", []).status_code == 200, message="the API serving")
        site.at(H)
        sms = next(m for m in aliyun.messages if m.to == "13800000001")
        assert sms.template_code == "SMS_2000001" and sms.params["name"] == "王秀英"
        aliyun.play()
        assert aliyun.pushes[-1] == ("sms-report", 200)
        with Session(site.engine) as session:
            alarm = session.scalars(select(Alarm)).one()
            delivered = session.scalars(select(Attempt).where(Attempt.channel == "sms", Attempt.phone == GRID)).one()
            assert delivered.status == "delivered"
        assert aliyun.sms_from(GRID, f"1 {alarm.code}").json() == {"code": 0, "msg": "成功"}
        with Session(site.engine) as session:
            assert session.get(Alarm, alarm.id).state == "acknowledged"  # type: ignore[union-attr]
        assert aliyun.messages[-1].template_code == "SMS_2000011" and aliyun.messages[-1].params == {"code": alarm.code}
    finally:
        site.close()
        aliyun.stop()
        tencent.stop()


def test_a_push_with_a_wrong_token_or_from_a_disallowed_source_gets_403_and_changes_nothing(env: Env) -> None:
    env.aliyun.behaviour[RESIDENT] = "press:1"
    raise_inactivity(env)
    call = env.aliyun.calls[0]
    report = [{"call_id": call.call_id, "out_id": call.out_id, "status_code": "200000", "dtmf": "1"}]
    assert env.aliyun.push("voice-report", report, token="wrong-token-0123456789").status_code == 403
    assert env.tencent.callback("sms-reply", {"mobile": "13800000001", "nationcode": "86", "text": "1"},
                                token="x").status_code == 403
    assert env.site.alarm().state == "open" and all(a.digits is None for a in env.site.attempts())
    env.site.runtime.provider.voice.allow = ["10.0.0.0/8"]  # type: ignore[attr-defined]
    assert env.aliyun.push("voice-report", report).status_code == 403  # right token, wrong source
    assert env.site.alarm().state == "open"
    env.site.runtime.provider.voice.allow = ["127.0.0.0/8"]  # type: ignore[attr-defined]
    assert env.aliyun.push("voice-report", report).status_code == 200
    assert env.site.alarm().state == "resolved"  # the resident pressed 1: fine


def test_a_send_that_never_gets_an_answer_is_retried_by_the_auditor(env: Env) -> None:
    env.aliyun.behaviour[RESIDENT] = "drop-once"  # Aliyun never answers the first IvrCall
    raise_inactivity(env)
    [attempt] = env.site.attempts()
    assert attempt.status == "pending" and attempt.tries == 1 and "unreachable" in (attempt.error or "")
    assert env.aliyun.calls == []
    env.site.at(14 * H + 10 * timedelta(seconds=1))
    assert env.aliyun.calls == []  # within retry_after: not yet
    env.site.at(14 * H + 31 * timedelta(seconds=1))
    [call] = env.aliyun.calls
    [attempt] = env.site.attempts()
    assert attempt.status == "queued" and attempt.tries == 2 and attempt.provider_id == call.call_id


def test_an_sms_receipt_that_never_comes_holds_the_step_only_until_its_wait(env: Env) -> None:
    env.aliyun.behaviour.update({RESIDENT: "no-answer"})
    env.tencent.behaviour[GRID] = "no-receipt"
    raise_inactivity(env)
    env.play()
    env.site.escalate()
    env.play()  # calls end unanswered; the grid SMS gets no receipt
    sms = next(a for a in env.site.attempts() if a.channel == "sms")
    assert sms.status == "queued"
    env.site.escalate()
    assert env.site.alarm().step == 1  # an SMS without its receipt has not ended: the step runs to its wait
    env.site.at(14 * H + 5 * M)
    assert env.site.alarm().step == 2  # and then the chain goes on


def test_an_over_long_name_is_shortened_before_sending_never_refused(env: Env) -> None:
    env.activity(H, device="sos-2")
    env.site.at(H)
    sms = next(m for m in env.tencent.messages if m.to == GRID)
    name = sms.params[1]
    assert len(name) == fake_tencent.MAX_PARAM and name.endswith("…") and name.startswith("欧阳娜仁")
    assert all(len(p) <= fake_tencent.MAX_PARAM for p in sms.params)
    assert not [a for a in env.site.attempts() if a.status == "failed"]
    call = next(c for c in env.aliyun.calls if c.to == "13800000001")
    assert call.params["name"] == LONG_NAME  # within Aliyun's 35


def test_a_missing_template_mapping_fails_at_start_with_its_name(db_url: str, make_site: Callable[..., Site],
                                                                 tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    aliyun, tencent = FakeAliyun().start(), FakeTencent().start()
    try:
        notify = notify_settings("http://127.0.0.1:1", aliyun, tencent)
        notify["tencent"]["templates"] = {k: v for k, v in TENCENT_TEMPLATES.items() if k != "outcome_sms"}
        with pytest.raises(TemplateMappingError, match="outcome_sms"):
            make_site(notify=notify)
        toml = tmp_path / "shouwang.toml"
        toml.write_text(f'[database]\nurl = "{db_url}"\n[notify]\nvoice = "aliyun"\nsms = "console"\n'
                        f'webhook_token = "{TOKEN}"\n[notify.aliyun]\naccess_key_id = "a"\naccess_key_secret = "b"\n'
                        'show_number = "0571"\n[notify.aliyun.templates.check_call]\ncode = "TTS_1"\n'
                        'params = ["name"]\n', encoding="utf-8")
        assert cli.main(["--config", str(toml), "serve"]) == 1
        err = capsys.readouterr().err
        assert "alarm_call" in err and "system_call" in err and "call_thanks" in err and "aliyun" in err
    finally:
        aliyun.stop()
        tencent.stop()


def test_phone_numbers_take_each_providers_form_at_the_edge_and_come_back_as_e164() -> None:
    assert aliyun_number("+8613800000001") == "13800000001"
    assert aliyun_number("+867178000001") == "07178000001"
    assert aliyun_number("+85291234567") == "85291234567"
    assert tencent_number("+8613800000001") == "+8613800000001"
    assert from_national("13800000001") == "+8613800000001"
    assert from_national("07178000001") == "+867178000001"
    assert from_national("13800000001", "86") == from_national("+8613800000001")
    assert fit("第一行\n第二行【广告】", 35) == "第一行 第二行[广告]"
    assert fit("", 10) == "-"
