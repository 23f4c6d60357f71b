"""Alibaba Cloud (阿里云) SMS and voice, through the official SDKs ``alibabacloud-dysmsapi20170525`` and
``alibabacloud-dyvmsapi20170525``.

* An SMS: ``SendSms`` with the approved signature, the registered template code and its parameters as
  JSON; ``OutId`` carries our attempt id, the answer's ``BizId`` is the provider id.
* A call: ``IvrCall`` speaks the registered TTS template (``StartCode`` + ``StartTtsParams``), played
  ``play_times`` times, and collects one key: ``MenuKeyMap`` answers key 1 with the ``call_thanks``
  template. ``OutId`` carries our attempt id, the answer's ``CallId`` is the provider id.
* What comes back is pushed by Aliyun's HTTP batch push (HTTP批量推送), one URL per message type, each
  a JSON array: ``SmsReport`` (delivery receipts), ``SmsUp`` (replies: "1 A37") and ``VoiceReport`` (the
  call's result, with the key pressed in ``dtmf``: the IVR call collects one key, so the first digit
  counts). Aliyun does not sign these: the push URL carries a secret token,
  and optionally the source address is checked (:func:`verify_push`); docs/escalation.md says what that
  protects. A reply to an SMS is sent as an SMS of its own (the push's answer cannot carry one).

``sms_endpoint`` / ``voice_endpoint`` / ``protocol`` point the SDK elsewhere (a local test double).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from alibabacloud_dysmsapi20170525 import models as sms_models
from alibabacloud_dysmsapi20170525.client import Client as SmsClient
from alibabacloud_dyvmsapi20170525 import models as vms_models
from alibabacloud_dyvmsapi20170525.client import Client as VoiceClient
from alibabacloud_tea_openapi.exceptions import AlibabaCloudException
from alibabacloud_tea_openapi.utils_models import Config
from darabonba.runtime import RuntimeOptions

from alerts.escalation.notifiers import base
from alerts.escalation.notifiers.mapping import (
    REPLY_TEMPLATES,
    SMS_TEMPLATES,
    VOICE_TEMPLATES,
    TemplateMap,
    aliyun_number,
    from_national,
)
from alerts.escalation.templates import Message
from config.settings import AliyunSettings

log = logging.getLogger(__name__)

KINDS = ("sms-report", "sms-up", "voice-report")
# SendSms / IvrCall answer codes that will not succeed on a retry
PERMANENT_CODES = frozenset({
    "isv.MOBILE_NUMBER_ILLEGAL", "isv.MOBILE_COUNT_OVER_LIMIT", "isv.SMS_TEMPLATE_ILLEGAL",
    "isv.SMS_SIGNATURE_ILLEGAL", "isv.TEMPLATE_MISSING_PARAMETERS", "isv.INVALID_PARAMETERS",
    "isv.PARAM_LENGTH_LIMIT", "isv.BLACK_KEY_CONTROL_LIMIT", "isv.PARAM_NOT_SUPPORT_URL", "isv.INVALID_JSON_PARAM",
    "isv.SMS_CONTENT_ILLEGAL", "isv.SMS_SIGN_ILLEGAL", "isv.DENY_IP_RANGE", "isv.OUT_OF_SERVICE",
    "isv.ACCOUNT_NOT_EXISTS", "isv.ACCOUNT_ABNORMAL", "isv.BLACK_LIST", "isv.CALLEE_ILLEGAL",
    "isv.TTS_TEMPLATE_ILLEGAL", "isv.SHOW_NUMBER_ILLEGAL", "InvalidAccessKeyId.NotFound",
    "SignatureDoesNotMatch", "Forbidden.NoPermission",
})
# VoiceReport status_code -> our call status (Aliyun's 呼叫状态码)
CALL_STATUS = {
    "200000": "completed",  # heard the whole message
    "200001": "completed",  # hung up before the end
    "200008": "completed",  # answered, no key in time
    "200002": "busy",
    "200003": "no-answer",
    "200005": "no-answer",  # unreachable or rejected
    "200004": "failed",  # invalid number
    "200007": "failed",  # out of service area
    "200010": "failed",  # switched off
    "200011": "failed",  # suspended
}


class AliyunProvider:
    name = "aliyun"

    def __init__(self, settings: AliyunSettings, *, voice: bool, sms: bool, token: str,
                 allow: list[str] | None = None) -> None:
        self.settings = settings
        self.token = token
        self.allow = list(allow or [])
        limit = settings.param_max_length
        self.voice_templates = TemplateMap("aliyun", settings.templates, VOICE_TEMPLATES if voice else (), limit)
        self.sms_templates = TemplateMap("aliyun", settings.templates, (*SMS_TEMPLATES, *REPLY_TEMPLATES)
                                         if sms else (), limit)
        timeout_ms = int(settings.timeout.total_seconds() * 1000)
        self._runtime = RuntimeOptions(read_timeout=timeout_ms, connect_timeout=timeout_ms, autoretry=False)
        self._sms = SmsClient(self._config(settings.sms_endpoint)) if sms else None
        self._voice = VoiceClient(self._config(settings.voice_endpoint)) if voice else None

    def _config(self, endpoint: str) -> Config:
        timeout_ms = int(self.settings.timeout.total_seconds() * 1000)
        return Config(access_key_id=self.settings.access_key_id, access_key_secret=self.settings.access_key_secret,
                      endpoint=endpoint, protocol=self.settings.protocol, region_id="cn-hangzhou",
                      read_timeout=timeout_ms, connect_timeout=timeout_ms)

    # -- outgoing ------------------------------------------------------------------------------------
    def call(self, attempt_id: int, to: str, message: Message) -> str:
        voice, templates = _registered(self._voice, self.voice_templates, message, "voice (notify.voice)", "TTS")
        request = vms_models.IvrCallRequest(
            called_number=aliyun_number(to), called_show_number=self.settings.show_number,
            start_code=templates.code(message.template), start_tts_params=_json(templates.params(message)),
            menu_key_map=[vms_models.IvrCallRequestMenuKeyMap(key="1", code=templates.code("call_thanks"))],
            play_times=self.settings.play_times, timeout=self.settings.key_timeout * 1000, out_id=str(attempt_id))
        body = self._send(lambda: voice.ivr_call_with_options(request, self._runtime))
        return str(body.get("CallId") or "")

    def sms(self, attempt_id: int, to: str, message: Message) -> str:
        client, templates = _registered(self._sms, self.sms_templates, message, "SMS (notify.sms)", "SMS")
        request = sms_models.SendSmsRequest(
            phone_numbers=aliyun_number(to), sign_name=self.settings.sign_name,
            template_code=templates.code(message.template), template_param=_json(templates.params(message)),
            out_id=str(attempt_id))
        body = self._send(lambda: client.send_sms_with_options(request, self._runtime))
        return str(body.get("BizId") or "")

    def _send(self, send: Any) -> dict[str, Any]:
        try:
            response = send()
        except AlibabaCloudException as exc:
            status = exc.status_code or 0
            permanent = exc.code in PERMANENT_CODES or (400 <= status < 500 and status != 429
                                                        and "Throttling" not in str(exc.code))
            raise base.NotifyError(f"aliyun {status} {exc.code}: {exc.message}", permanent=permanent) from exc
        except Exception as exc:  # the SDK wraps network errors in several types
            raise base.NotifyError(f"aliyun unreachable: {type(exc).__name__}: {exc}", permanent=False) from exc
        body = response.body.to_map() if response.body is not None else {}
        code = str(body.get("Code", ""))
        if code != "OK":  # Aliyun answers a refused request with 200 and a code
            permanent = code in PERMANENT_CODES
            raise base.NotifyError(f"aliyun {code}: {body.get('Message', '')}", permanent=permanent)
        return body

    # -- pushes --------------------------------------------------------------------------------------
    def parse(self, request: base.WebhookRequest) -> list[base.ProviderEvent]:
        events: list[base.ProviderEvent] = []
        for item in base.push_items(request, self.token, self.allow, KINDS, "aliyun"):
            events.extend(self._events(request.kind, item))
        return events

    def _events(self, kind: str, item: dict[str, Any]) -> list[base.ProviderEvent]:
        attempt = _int(item.get("out_id"))
        if kind == "sms-report":
            success = item.get("success") in (True, "true", "True", 1)
            return [base.SmsStatus(attempt, _str(item.get("biz_id")), "delivered" if success else "undelivered")]
        if kind == "sms-up":
            return [base.InboundSms(from_national(str(item.get("phone_number", ""))), str(item.get("content", "")),
                               _str(item.get("sequence_id")))]
        call_id = _str(item.get("call_id"))
        events: list[base.ProviderEvent] = []
        digits = str(item.get("dtmf") or "").strip()
        if digits:
            events.append(base.Keypress(attempt, call_id, digits[:1]))
        # an unknown code still ends the call, as failed
        events.append(base.CallStatus(attempt, call_id, CALL_STATUS.get(str(item.get("status_code", "")), "failed")))
        return events

    def reply(self, request: base.WebhookRequest, message: Message | None) -> base.WebhookReply:
        if request.kind == "sms-up" and message is not None:
            self.send_reply(request, message)
        return base.WebhookReply(json.dumps({"code": 0, "msg": "成功"}, ensure_ascii=False), "application/json")

    def send_reply(self, request: base.WebhookRequest, message: Message) -> None:
        """Answer an SMS reply with an SMS of its own (not an attempt of any alarm: it is logged)."""
        try:
            items = json.loads(request.body or b"[]")
            sender = from_national(str((items[0] if isinstance(items, list) else items).get("phone_number", "")))
            self.sms(0, sender, message)
        except (base.NotifyError, ValueError, IndexError, AttributeError) as exc:
            log.warning("could not answer an SMS reply", extra={"error": str(exc)})

    def poll(self, now: datetime) -> list[base.ProviderEvent]:
        return []


def _json(params: list[tuple[str, str]]) -> str:
    return json.dumps(dict(params), ensure_ascii=False, separators=(",", ":"))


def _int(value: Any) -> int | None:
    text = str(value or "")
    return int(text) if text.isdigit() and int(text) > 0 else None


def _str(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _registered(client: Any, templates: TemplateMap, message: Message, channel: str,
                kind: str) -> tuple[Any, TemplateMap]:
    """The channel's client and template map, if it is configured and the message's template registered."""
    if client is None:
        raise base.NotifyError(f"aliyun {channel} is not configured", permanent=True)
    if message.template not in templates:
        raise base.NotifyError(f"no registered aliyun {kind} template for {message.template}", permanent=True)
    return client, templates
