"""What a person reads about an alarm, in the configured language (``notify.language``, zh by default),
in local time on a 24-hour clock: the reason (from the code and parameters stored on the alarm), who
acted (``李娜 (grid_worker, keypress)`` -> ``李娜（网格员、按键）``), the history details and outcomes.

The screen, the phone page (through :mod:`alerts.views`), the SMS and the spoken call (through the
stored ``reason``) all word an alarm here. Times in reason parameters are ISO-8601 UTC instants; they
are turned into local time only when worded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from alerts.escalation.templates import OUTCOME_WORDS, Language

DEFAULT_ZONE = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class Wording:
    """The reader's language and time zone."""

    language: Language = "zh"
    zone: tzinfo = DEFAULT_ZONE


_configured = Wording()


def configure(language: Language, zone: tzinfo) -> None:
    """The process's wording (the runtime sets it from ``notify.language`` and ``timezone``): what the
    read models use when a caller does not pass one."""
    global _configured
    _configured = Wording(language, zone)


def configured() -> Wording:
    return _configured


def local_time(instant: datetime | str | None, zone: tzinfo, seconds: bool = False) -> str:
    """``2026-12-01 07:40`` (24-hour clock, local time) from an aware instant or its ISO text."""
    if instant is None:
        return ""
    if isinstance(instant, str):
        instant = datetime.fromisoformat(instant)
    return instant.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def instant(value: datetime | None) -> str | None:
    """A reason parameter's form of an instant: ISO-8601 UTC."""
    return value.isoformat() if value is not None else None


# -- reasons -----------------------------------------------------------------------------------------------
REASONS: dict[str, dict[Language, str]] = {
    "inactivity": {"zh": "已{hours}小时无活动（时限{window}小时）",
                   "en": "no activity for {hours} h (window {window} h)"},
    "inactivity.last": {"zh": "；最后活动{last}", "en": "; last activity {last}"},
    "inactivity.no_data": {"zh": "；无数据：设备离线", "en": "; no data: devices offline"},
    "panic": {"zh": "{at}按下紧急按钮", "en": "panic button pressed at {at}"},
    "device_reported_offline": {"zh": "设备{device}于{at}报告离线", "en": "device {device} reported offline at {at}"},
    "device_silent": {"zh": "设备{device}自{since}起无消息", "en": "device {device} silent since {since}"},
    "device_never_heard": {"zh": "设备{device}从未上报", "en": "device {device} never reported"},
    "low_battery": {"zh": "设备{device}电量{battery}%（低于{threshold}%）",
                    "en": "device {device} battery at {battery} % (below {threshold} %)"},
    "routine": {"zh": "{start}至{end}之间无活动", "en": "no activity between {start} and {end}"},
    "dwell_bathroom": {"zh": "自{since}起在卫生间已超过{hours}小时，其他房间无活动",
                       "en": "in the bathroom since {since}, more than {hours} h, no activity in any other room"},
    "dwell_bathroom_door": {"zh": "卫生间门自{since}关闭已超过{hours}小时，门内有活动，其他房间无活动",
                            "en": "bathroom door closed since {since}, more than {hours} h, motion inside, no "
                                  "activity in any other room"},
    "rhythm_not_up": {"zh": "尚未起床：平时{usual}前起床（已学习{days}天）；今天04:00以来无活动",
                      "en": "not up yet: usually up by {usual} ({days} days learned); no activity today since 04:00"},
    "rhythm_silent": {"zh": "自{since}起无活动：远超学习到的白天最长安静时间（{usual}分钟）",
                      "en": "silent since {since}: far longer than the longest daytime silence learned ({usual} min)"},
    "early_warning": {"zh": "已{hours}小时无活动（预警）", "en": "no activity for {hours} h (early warning)"},
    "clock_skew": {"zh": "设备{device}时钟超前：{hours}小时内{count}次上报来自未来（超前{minutes}分钟以上）",
                   "en": "device {device} clock runs ahead: {count} reports from the future in {hours} h "
                         "(more than {minutes} min ahead)"},
    "broker_lost": {"zh": "监护失明：接收进程{consumer}于{since}与MQTT服务器断开连接",
                    "en": "the watch is blind: consumer {consumer} lost the MQTT broker at {since}"},
    # infrastructure incidents and the other blind states (alerts.infrastructure, alerts.blind)
    "infrastructure": {"zh": "可能是网络故障：{group}有{silent}户（共{reporting}户在上报）同时失去联系，"
                             "最后消息{since}；涉及{homes}户、{devices}台设备",
                       "en": "possible infrastructure outage: {silent} of {reporting} homes of {group} silent "
                             "together, last heard {since}; {homes} homes, {devices} devices"},
    "gateway_offline": {"zh": "可能是网络故障：网关{group}于{since}报告离线；涉及{homes}户、{devices}台设备",
                        "en": "possible infrastructure outage: gateway {group} reported offline at {since}; "
                              "{homes} homes, {devices} devices"},
    "scheduler_stale": {"zh": "监护失明：{ago}秒内没有任何进程运行规则（由{process}发现）",
                        "en": "the watch is blind: no rule tick in any process for {ago} s (seen by {process})"},
    "ingest_behind": {"zh": "监护失明：接收进程{consumer}滞后{lag}秒（消息已收到、未保存；上限{limit}秒）",
                      "en": "the watch is blind: ingest {consumer} is {lag} s behind (messages received and not "
                            "stored; limit {limit} s)"},
    "database_outage": {"zh": "监护曾失明：进程{process}自{since}至{until}无法连接数据库（约{seconds}秒）",
                        "en": "the watch was blind: database unreachable from process {process} from {since} to "
                              "{until} (about {seconds} s)"},
}


def reason(code: str, params: Mapping[str, Any], language: Language, zone: tzinfo) -> str:
    """The text of an alarm's reason."""
    p = dict(params)
    for key in ("at", "since", "last", "until"):
        if isinstance(p.get(key), str):
            p[key] = local_time(p[key], zone, seconds=code == "panic")
    if code in ("inactivity", "routine"):
        template = REASONS[code][language]
        text = template.format(**p) if code == "routine" else template.format(
            hours=f"{float(p['hours']):.1f}", window=f"{float(p['window']):g}")
        if p.get("last"):
            text += REASONS["inactivity.last"][language].format(last=p["last"])
        if p.get("devices_offline"):
            text += REASONS["inactivity.no_data"][language]
        return text
    return REASONS[code][language].format(**p)


def alarm_reason(code: str | None, params: Mapping[str, Any] | None, stored: str, words: Wording) -> str:
    """An alarm's reason in the reader's words; the stored text for alarms from before reason codes."""
    if not code or code not in REASONS:
        return stored
    try:
        return reason(code, params or {}, words.language, words.zone)
    except (KeyError, ValueError, TypeError):
        return stored


# -- people and how they acted -------------------------------------------------------------------------
ROLES: dict[str, dict[Language, str]] = {
    "grid_worker": {"zh": "网格员", "en": "grid worker"},
    "micro_grid_worker": {"zh": "微网格员", "en": "micro-grid worker"},
    "supervisor": {"zh": "中心主管", "en": "supervisor"},
    "operator": {"zh": "中心值班员", "en": "operator"},
    "admin": {"zh": "管理员", "en": "admin"},
    "screen": {"zh": "大屏", "en": "screen"},
    "family": {"zh": "家属", "en": "family"},
    "resident": {"zh": "老人", "en": "resident"},
    "unknown": {"zh": "未知号码", "en": "unknown number"},
    "keypress": {"zh": "按键", "en": "keypress"},
    "SMS": {"zh": "短信", "en": "SMS"},
    "sms": {"zh": "短信", "en": "SMS"},
    "API": {"zh": "中心平台", "en": "API"},
    "phone page": {"zh": "手机页面", "en": "phone page"},
    "link": {"zh": "短信链接", "en": "SMS link"},
}
SYSTEM_ACTOR = {"zh": "守望系统", "en": "Shouwang"}


def role(word: str, language: Language) -> str:
    return ROLES.get(word.strip(), {}).get(language, word.strip())


def actor(text: str | None, language: Language) -> str | None:
    """``李娜 (grid_worker, keypress)`` -> ``李娜（网格员、按键）`` (zh) / ``李娜 (grid worker, keypress)``."""
    if not text:
        return text
    if text == "shouwang":
        return SYSTEM_ACTOR[language]
    match = re.fullmatch(r"(.*?)\s*\(([^()]*)\)", text)
    if match is None:
        return text
    name, inner = match.groups()
    words = [role(w, language) for w in inner.split(",") if w.strip()]
    if language == "zh":
        return f"{name}（{'、'.join(words)}）"
    return f"{name} ({', '.join(words)})"


def outcome(code: str | None, language: Language) -> str | None:
    if not code:
        return code
    return OUTCOME_WORDS.get(code, {}).get(language) or MORE_OUTCOMES.get(code, {}).get(language) or code


MORE_OUTCOMES: dict[str, dict[Language, str]] = {
    "device_back": {"zh": "设备恢复在线", "en": "device back online"},
    "battery_ok": {"zh": "电池已更换", "en": "battery replaced"},
    "system_recovered": {"zh": "系统已恢复", "en": "system recovered"},
}


# -- the history of an alarm -------------------------------------------------------------------------------
STATUSES: dict[str, dict[Language, str]] = {
    "completed": {"zh": "已接听", "en": "completed"}, "busy": {"zh": "占线", "en": "busy"},
    "no-answer": {"zh": "无人接听", "en": "no answer"}, "failed": {"zh": "失败", "en": "failed"},
    "canceled": {"zh": "已取消", "en": "canceled"}, "delivered": {"zh": "已送达", "en": "delivered"},
    "undelivered": {"zh": "未送达", "en": "undelivered"}, "sent": {"zh": "已发送", "en": "sent"},
}
WHY: dict[str, dict[Language, str]] = {
    "alarm opened": {"zh": "告警产生", "en": "alarm opened"},
    "the wait ran out": {"zh": "等待超时", "en": "the wait ran out"},
    "every attempt ended unanswered": {"zh": "所有联系均未应答", "en": "every attempt ended unanswered"},
}
STEP_NAMES: dict[str, dict[Language, str]] = {
    "check call to the resident": {"zh": "给老人打确认电话", "en": "check call to the resident"},
    "grid worker and first family contact": {"zh": "网格员和第一位家属", "en": "grid worker and first family contact"},
    "micro-grid worker and next family contact": {"zh": "微网格员和下一位家属",
                                                  "en": "micro-grid worker and next family contact"},
    "centre supervisor": {"zh": "中心主管", "en": "centre supervisor"},
    "SMS to the grid worker (daily while open)": {"zh": "短信通知网格员（未处理时每日提醒）",
                                                  "en": "SMS to the grid worker (daily while open)"},
}
FIXED: dict[str, dict[Language, str]] = {
    "on the way": {"zh": "正在前往", "en": "on the way"},
    "dispatch the grid worker now": {"zh": "立即派网格员", "en": "dispatch the grid worker now"},
    "consumer reconnected to the broker": {"zh": "接收进程已重新连接MQTT服务器",
                                           "en": "consumer reconnected to the broker"},
}
PATTERNS: list[tuple[re.Pattern[str], dict[Language, str]]] = [
    (re.compile(r"movement at (?P<at>.+)"), {"zh": "{at}检测到活动", "en": "movement at {at}"}),
    (re.compile(r"heard from at (?P<at>.+)"), {"zh": "{at}重新收到消息", "en": "heard from at {at}"}),
    (re.compile(r"battery at (?P<n>\d+) %"), {"zh": "电量{n}%", "en": "battery at {n} %"}),
    (re.compile(r"calling (?P<n>\d+) family contact\(s\)"), {"zh": "正在呼叫{n}位家属",
                                                              "en": "calling {n} family contact(s)"}),
    (re.compile(r"step (?P<step>\d+) \((?P<name>.+)\), round (?P<round>\d+): (?P<why>.+)"),
     {"zh": "第{step}步（{name}），第{round}轮：{why}", "en": "step {step} ({name}), round {round}: {why}"}),
    (re.compile(r"(?P<noun>call|SMS) (?P<person>.+) \((?P<target>[a-z_]+)\): (?P<status>[a-z-]+)"),
     {"zh": "{noun}{person}（{target}）：{status}", "en": "{noun} {person} ({target}): {status}"}),
]
NOUNS = {"call": {"zh": "呼叫", "en": "call"}, "SMS": {"zh": "短信", "en": "SMS"}}


def detail(text: str | None, language: Language) -> str | None:
    """A history entry's detail in the reader's words (the tick and the chain write them in English)."""
    if not text:
        return text
    if text in FIXED:
        return FIXED[text][language]
    for pattern, template in PATTERNS:
        match = pattern.fullmatch(text)
        if match is None:
            continue
        fields = match.groupdict()
        if "why" in fields:
            fields["why"] = WHY.get(fields["why"], {}).get(language, fields["why"])
            fields["name"] = STEP_NAMES.get(fields["name"], {}).get(language, fields["name"])
        if "noun" in fields:
            fields["noun"] = NOUNS[fields["noun"]][language]
            fields["target"] = role(fields["target"], language)
            fields["status"] = STATUSES.get(fields["status"], {}).get(language, fields["status"])
        return template[language].format(**fields)
    head, sep, note = text.partition(": ")  # a resolution: "resident_fine: note"
    if head in OUTCOME_WORDS or head in MORE_OUTCOMES:
        worded = outcome(head, language) or head
        return f"{worded}{'：' if language == 'zh' else ': '}{detail(note, language)}" if sep else worded
    return text
