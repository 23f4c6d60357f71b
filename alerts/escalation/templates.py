"""Message templates: a template id plus parameters, as domestic Chinese providers require (they send
only pre-registered templates). Providers that send free text (Twilio) render them here."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Language = Literal["zh", "en"]


@dataclass(frozen=True)
class Message:
    template: str
    params: dict[str, str] = field(default_factory=dict)


TEMPLATES: dict[str, dict[Language, str]] = {
    # voice: the resident's check call
    "check_call": {
        "zh": "您好，{name}。这里是守望社区平安服务。我们已经{hours}小时没有检测到您家中的活动。如果您平安，请按1。",
        "en": "Hello {name}, this is the Shouwang community safety service. We have not detected any activity "
              "in your home for {hours} hours. If you are fine, please press 1.",
    },
    # voice: a responder (worker, supervisor) or family
    "alarm_call": {
        "zh": "守望紧急提醒。{name}，地址{address}，{reason}{infra_note}。告警编号{code}。您去处理请按1。",
        "en": "Shouwang alert. {name}, at {address}: {reason}{infra_note}. Alarm {code}. Press 1 if you are "
              "handling it.",
    },
    "alarm_sms": {
        "zh": "【守望】{code} {name}，{address}：{reason}{infra_note}。电话{phone}。回复“1 {code}”表示您去处理。{link}",
        "en": "[Shouwang] {code} {name}, {address}: {reason}{infra_note}. Phone {phone}. Reply \"1 {code}\" if "
              "you are handling it. {link}",
    },
    "maintenance_sms": {
        "zh": "【守望】设备提醒 {code}：{reason}（{name}，{address}）。请安排检修。",
        "en": "[Shouwang] Device notice {code}: {reason} ({name}, {address}). Please arrange a check.",
    },
    "system_sms": {
        "zh": "【守望】系统告警 {code}：{reason}。请立即检查。",
        "en": "[Shouwang] System alarm {code}: {reason}. Please check now.",
    },
    "infrastructure_sms": {
        "zh": "【守望】网络故障 {code}：{reason}。期间这些住户的设备离线不单独告警；住户告警标注“可能是网络故障”。",
        "en": "[Shouwang] Infrastructure incident {code}: {reason}. The devices it covers raise no offline "
              "alarm of their own meanwhile; resident alarms are marked \"possibly infrastructure\".",
    },
    "infrastructure_call": {
        "zh": "守望网络故障提醒。{reason}。告警编号{code}。确认请按1。",
        "en": "Shouwang infrastructure incident. {reason}. Alarm {code}. Press 1 to acknowledge.",
    },
    "system_call": {
        "zh": "守望系统告警。{reason}。告警编号{code}。确认请按1。",
        "en": "Shouwang system alarm. {reason}. Alarm {code}. Press 1 to acknowledge.",
    },
    "rhythm_sms": {
        "zh": "【守望】留意 {code}：{name}（{address}）{reason}。不是告警，方便时请关注一下。{link}",
        "en": "[Shouwang] Notice {code}: {name} ({address}): {reason}. Not an alarm; please look in when you "
              "can. {link}",
    },
    "early_warning_sms": {
        "zh": "【守望】预警 {code}：{name}（{address}）{reason}，请留意。不是告警，方便时请关注一下。{link}",
        "en": "[Shouwang] Early warning {code}: {name} ({address}): {reason}. Not an alarm; please keep an eye on "
              "them. {link}",
    },
    "outcome_sms": {
        "zh": "【守望】{name}的告警{code}已处理：{outcome}。{note}",
        "en": "[Shouwang] Alarm {code} for {name} was closed: {outcome}. {note}",
    },
    "reply_ack": {"zh": "已确认告警{code}，谢谢您。", "en": "Alarm {code} acknowledged, thank you."},
    "reply_family": {"zh": "已记录您在处理{code}，社区仍会跟进。", "en": "Noted that you are handling {code}; "
                     "the community follows up too."},
    "reply_list": {"zh": "您有多个未处理告警：{codes}。请回复“1 编号”，例如“1 {first}”。",
                   "en": "You have several open alarms: {codes}. Reply \"1 <code>\", e.g. \"1 {first}\"."},
    "reply_none": {"zh": "没有需要您确认的未处理告警。", "en": "There is no open alarm for you to acknowledge."},
    "reply_not_yours": {"zh": "抱歉，告警{code}不在您负责的范围内，无法由您确认。如需协助请联系社区中心。",
                        "en": "Sorry, alarm {code} is not in your area, so you cannot acknowledge it. Please "
                              "call the community centre if you can help."},
    "reply_help": {"zh": "回复“1 编号”确认告警，例如“1 A37”。",
                   "en": "Reply \"1 <code>\" to acknowledge, e.g. \"1 A37\"."},
    "call_thanks": {"zh": "谢谢，已记录。", "en": "Thank you, noted."},
    "call_no_input": {"zh": "没有收到按键。再见。", "en": "No key was pressed. Goodbye."},
}

OUTCOME_WORDS: dict[str, dict[Language, str]] = {
    "resident_fine": {"zh": "老人平安", "en": "resident fine"},
    "confirmed_fine_by_phone": {"zh": "老人电话确认平安", "en": "resident confirmed fine by phone"},
    "needed_help": {"zh": "老人需要帮助，已协助", "en": "resident needed help, helped"},
    "taken_to_hospital": {"zh": "已送医", "en": "taken to hospital"},
    "away_with_family": {"zh": "老人在家属处", "en": "resident away with family"},
    "device_fault": {"zh": "设备故障", "en": "device fault"},
    "other": {"zh": "其他", "en": "other"},
    "activity_resumed": {"zh": "检测到活动恢复", "en": "activity resumed"},
    "reporting_again": {"zh": "设备恢复上报", "en": "reporting again"},
    "superseded": {"zh": "已转为正式告警", "en": "taken over by an alarm"},
}


def render(message: Message, language: Language = "zh") -> str:
    """The text of a message. A missing parameter renders empty rather than failing a call."""
    template = TEMPLATES[message.template][language]
    return template.format_map(_Blank(message.params)).strip()


def language_voice(language: Language) -> str:
    return "zh-CN" if language == "zh" else "en-US"


class _Blank(dict[str, str]):
    def __missing__(self, key: str) -> str:
        return ""
