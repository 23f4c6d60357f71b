"""Tencent Cloud SMS (腾讯云短信), through the official SDK ``tencentcloud-sdk-python-sms`` (API 2021-01-11).

* An SMS: ``SendSms`` with the SDK app id (``SmsSdkAppId``), the approved signature, the registered
  template id and the template parameters as an ordered list (``TemplateParamSet``); the number is
  E.164 (+86...), ``SessionContext`` carries our attempt id, ``SerialNo`` is the provider id.
* Callbacks (configured in the SMS console): the status callback (a JSON array of receipts, matched by
  ``sid`` = ``SerialNo``) and the reply callback (one JSON object: ``mobile``, ``nationcode``,
  ``text``). Tencent does not sign them: the callback URL carries a secret token and the source address
  may be checked (:func:`verify_push`). A reply to an SMS is sent as an SMS of its own.

Voice is not offered here: a deployment with Tencent SMS calls through Aliyun or Twilio.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from tencentcloud.common import credential
from tencentcloud.common.exception.tencent_cloud_sdk_exception import TencentCloudSDKException
from tencentcloud.common.profile.client_profile import ClientProfile
from tencentcloud.common.profile.http_profile import HttpProfile
from tencentcloud.sms.v20210111 import models, sms_client

from alerts.escalation.notifiers import base
from alerts.escalation.notifiers.mapping import (
    REPLY_TEMPLATES,
    SMS_TEMPLATES,
    TemplateMap,
    from_national,
    tencent_number,
)
from alerts.escalation.templates import Message
from config.settings import TencentSettings

log = logging.getLogger(__name__)

KINDS = ("sms-status", "sms-reply")
PERMANENT_PREFIXES = ("AuthFailure", "InvalidParameter", "UnauthorizedOperation", "UnsupportedOperation",
                      "FailedOperation.PhoneNumberInBlacklist", "FailedOperation.TemplateIncorrectOrUnapproved",
                      "FailedOperation.SignatureIncorrectOrUnapproved", "FailedOperation.MissingTemplateToModify",
                      "FailedOperation.ContainSensitiveWord", "FailedOperation.InsufficientBalanceInSmsPackage",
                      "MissingParameter")


class TencentSmsProvider:
    name = "tencent"

    def __init__(self, settings: TencentSettings, *, token: str, allow: list[str] | None = None) -> None:
        self.settings = settings
        self.token = token
        self.allow = list(allow or [])
        self.templates = TemplateMap("tencent", settings.templates, (*SMS_TEMPLATES, *REPLY_TEMPLATES),
                                     settings.param_max_length)
        http = HttpProfile(protocol=settings.protocol, endpoint=settings.endpoint,
                           reqTimeout=max(int(settings.timeout.total_seconds()), 1))
        self._client = sms_client.SmsClient(credential.Credential(settings.secret_id, settings.secret_key),
                                            settings.region, ClientProfile(httpProfile=http))

    def call(self, attempt_id: int, to: str, message: Message) -> str:
        raise base.NotifyError("Tencent Cloud is configured for SMS only (notify.voice)", permanent=True)

    def sms(self, attempt_id: int, to: str, message: Message) -> str:
        if message.template not in self.templates:
            raise base.NotifyError(f"no registered tencent SMS template for {message.template}", permanent=True)
        request = models.SendSmsRequest()
        request.SmsSdkAppId = self.settings.sdk_app_id
        request.SignName = self.settings.sign_name
        request.TemplateId = self.templates.code(message.template)
        request.TemplateParamSet = [value for _, value in self.templates.params(message)]
        request.PhoneNumberSet = [tencent_number(to)]
        request.SessionContext = str(attempt_id)
        try:
            response = self._client.SendSms(request)
        except TencentCloudSDKException as exc:
            code = str(exc.get_code() or "")
            permanent = code.startswith(PERMANENT_PREFIXES)
            raise base.NotifyError(f"tencent {code}: {exc.get_message()}", permanent=permanent) from exc
        except Exception as exc:  # network errors
            raise base.NotifyError(f"tencent unreachable: {type(exc).__name__}: {exc}", permanent=False) from exc
        statuses = response.SendStatusSet or []
        if not statuses:
            raise base.NotifyError("tencent answered without a send status", permanent=False)
        status = statuses[0]
        if str(status.Code) != "Ok":
            code = str(status.Code)
            raise base.NotifyError(f"tencent {code}: {status.Message}", permanent=code.startswith(PERMANENT_PREFIXES))
        return str(status.SerialNo)

    def parse(self, request: base.WebhookRequest) -> list[base.ProviderEvent]:
        events: list[base.ProviderEvent] = []
        for item in base.push_items(request, self.token, self.allow, KINDS, "tencent"):
            if request.kind == "sms-status":
                status = "delivered" if str(item.get("report_status", "")).upper() == "SUCCESS" else "undelivered"
                events.append(base.SmsStatus(_attempt(item), str(item.get("sid") or "") or None, status))
            else:
                sender = from_national(str(item.get("mobile", "")), str(item.get("nationcode") or "86"))
                events.append(base.InboundSms(sender, str(item.get("text", ""))))
        return events

    def reply(self, request: base.WebhookRequest, message: Message | None) -> base.WebhookReply:
        if request.kind == "sms-reply" and message is not None:
            try:
                data = json.loads(request.body or b"{}")
                item = data[0] if isinstance(data, list) else data
                sender = from_national(str(item.get("mobile", "")), str(item.get("nationcode") or "86"))
                self.sms(0, sender, message)
            except (base.NotifyError, ValueError, IndexError, AttributeError) as exc:
                log.warning("could not answer an SMS reply", extra={"error": str(exc)})
        return base.WebhookReply(json.dumps({"result": 0, "errmsg": "OK"}), "application/json")

    def poll(self, now: datetime) -> list[base.ProviderEvent]:
        return []


def _attempt(item: dict[str, Any]) -> int | None:
    """Our attempt id, where the receipt carries the SessionContext back (``ext``); else None and the
    receipt is matched by its ``sid``."""
    ext = item.get("ext")
    context = ext.get("session_context") if isinstance(ext, dict) else item.get("session_context")
    text = str(context or "")
    return int(text) if text.isdigit() and int(text) > 0 else None
