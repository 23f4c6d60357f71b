"""A local stand-in for Alibaba Cloud's SMS (dysmsapi) and voice (dyvmsapi) APIs that the official SDKs
talk to, and that plays the people: it checks the ACS3-HMAC-SHA256 signature the SDK computes (from
scratch, not with the SDK's code), answers ``SendSms`` and ``IvrCall`` as Aliyun does, and pushes
``VoiceReport`` (with the key pressed), ``SmsReport`` and ``SmsUp`` to Shouwang's push URLs.

Nothing of Shouwang is patched: the SDKs are pointed here through ``notify.aliyun.sms_endpoint`` /
``voice_endpoint`` and ``protocol = "http"``.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any, ClassVar
from urllib.parse import parse_qsl, quote, urlsplit

import httpx2 as httpx

from tests.fake_http import FakeServer, post_json

ACCESS_KEY_ID = "LTAI5tFakeAccessKey00"
ACCESS_KEY_SECRET = "fakeAliyunSecret0123456789abcdef"
SIGN_NAME = "守望社区"
SHOW_NUMBER = "057100000000"
STATUS = {"completed": "200000", "busy": "200002", "no-answer": "200003", "failed": "200004"}


def national(e164: str) -> str:
    """How Aliyun writes a number: mainland mobiles as 11 digits, landlines with 0, others without +."""
    digits = e164.lstrip("+")
    if digits.startswith("86"):
        rest = digits[2:]
        return rest if len(rest) == 11 and rest.startswith("1") else "0" + rest
    return digits


def acs3_signature(method: str, path: str, query: dict[str, str], headers: dict[str, str], signed: list[str],
                   payload_hash: str, secret: str) -> str:
    canonical_query = "&".join(f"{k}={quote(query[k], safe='~')}" for k in sorted(query))
    canonical_headers = "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in signed)
    canonical = f"{method}\n{path or '/'}\n{canonical_query}\n{canonical_headers}\n{';'.join(signed)}\n{payload_hash}"
    to_sign = f"ACS3-HMAC-SHA256\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    return hmac.new(secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()


@dataclass
class AliCall:
    call_id: str
    to: str  # as Aliyun received it (national form)
    start_code: str
    params: dict[str, str]
    out_id: str
    menu: dict[str, str]  # key -> template code
    played: bool = False


@dataclass
class AliSms:
    biz_id: str
    to: str
    template_code: str
    params: dict[str, str]
    out_id: str
    played: bool = False


@dataclass
class FakeAliyun(FakeServer):
    """``behaviour[e164]``: ``press:1``, ``no-answer``, ``busy``, ``failed`` (calls); ``no-receipt``
    (an SMS whose receipt never comes); ``drop-once`` (the first request for it gets no answer: the
    connection closes); ``invalid`` (Aliyun refuses the number for good)."""

    app_url: str = ""
    token: str = ""
    behaviour: dict[str, str] = field(default_factory=dict)
    calls: list[AliCall] = field(default_factory=list)
    messages: list[AliSms] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)  # why requests were refused (bad signature, ...)
    pushes: list[tuple[str, int]] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _dropped: set[str] = field(default_factory=set)

    content_type: ClassVar[str] = "application/json;charset=utf-8"

    def answer(self, handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, Any] | None:
        status, answer = self._handle(handler, body)
        return None if status == 0 else (status, answer)  # 0: drop, no answer at all

    @property
    def endpoint(self) -> str:
        return self.host

    def _what(self, number: str) -> str:
        for e164, what in self.behaviour.items():
            if national(e164) == number:
                return what
        return "no-answer"

    # -- the API the SDKs call -------------------------------------------------------------------------
    def _handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, dict[str, Any]]:
        request_id = f"FAKE-{next(self._ids):08d}"
        url = urlsplit(handler.path)
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        headers = {k.lower(): v for k, v in handler.headers.items()}
        refused = self._check_signature(handler.command, url.path, query, headers, body)
        if refused:
            with self._lock:
                self.rejected.append(refused)
            return 400, {"Code": "SignatureDoesNotMatch", "Message": refused, "RequestId": request_id}
        action, version = headers.get("x-acs-action", ""), headers.get("x-acs-version", "")
        if version != "2017-05-25":
            return 400, {"Code": "InvalidVersion", "Message": version, "RequestId": request_id}
        number = query.get("PhoneNumbers") or query.get("CalledNumber") or ""
        what = self._what(number)
        if what == "drop-once" and number not in self._dropped:
            self._dropped.add(number)
            return 0, {}
        if what == "invalid":
            return 200, {"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": f"invalid number {number}",
                         "RequestId": request_id}
        if action == "SendSms":
            for name in ("SignName", "TemplateCode", "TemplateParam"):
                if not query.get(name):
                    return 400, {"Code": "MissingParameter", "Message": name, "RequestId": request_id}
            if query["SignName"] != SIGN_NAME:
                return 200, {"Code": "isv.SMS_SIGNATURE_ILLEGAL", "Message": "sign", "RequestId": request_id}
            params = json.loads(query["TemplateParam"])
            too_long = [k for k, v in params.items() if len(v) > 35 or "\n" in v or not v]
            if too_long:  # what Aliyun does with a variable over its limit
                return 200, {"Code": "isv.PARAM_LENGTH_LIMIT", "Message": ",".join(too_long), "RequestId": request_id}
            biz_id = f"{next(self._ids):06d}^0"
            with self._lock:
                self.messages.append(AliSms(biz_id, number, query["TemplateCode"], params, query.get("OutId", "")))
            return 200, {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": request_id}
        if action == "IvrCall":
            if query.get("CalledShowNumber") != SHOW_NUMBER or not query.get("StartCode"):
                return 200, {"Code": "isv.SHOW_NUMBER_ILLEGAL", "Message": "show number", "RequestId": request_id}
            menu = {query[k]: query[k.replace(".Key", ".Code")] for k in query if k.startswith("MenuKeyMap.")
                    and k.endswith(".Key")}
            call_id = f"{next(self._ids):012d}^{next(self._ids):010d}"
            params = json.loads(query.get("StartTtsParams") or "{}")
            with self._lock:
                self.calls.append(AliCall(call_id, number, query["StartCode"], params, query.get("OutId", ""), menu))
            return 200, {"Code": "OK", "Message": "OK", "CallId": call_id, "RequestId": request_id}
        return 404, {"Code": "InvalidAction.NotFound", "Message": action, "RequestId": request_id}

    @staticmethod
    def _check_signature(method: str, path: str, query: dict[str, str], headers: dict[str, str],
                         body: bytes) -> str | None:
        authorization = headers.get("authorization", "")
        algorithm, _, rest = authorization.partition(" ")
        if algorithm != "ACS3-HMAC-SHA256":
            return f"unsupported signature algorithm {algorithm!r}"
        fields = dict(part.split("=", 1) for part in rest.split(",") if "=" in part)
        if fields.get("Credential") != ACCESS_KEY_ID:
            return "unknown access key"
        if hashlib.sha256(body).hexdigest() != headers.get("x-acs-content-sha256"):
            return "payload hash does not match"
        signed = fields.get("SignedHeaders", "").split(";")
        if not {"host", "x-acs-action", "x-acs-date", "x-acs-signature-nonce"} <= set(signed):
            return "required headers are not signed"
        expected = acs3_signature(method, path, query, headers, signed, headers["x-acs-content-sha256"],
                                  ACCESS_KEY_SECRET)
        if not hmac.compare_digest(expected, fields.get("Signature", "")):
            return "signature does not match"
        return None

    # -- playing the people ----------------------------------------------------------------------------
    def play(self) -> int:
        """Everyone called so far does what their behaviour says; SMS get their receipts."""
        calls, messages = self.unplayed(self.calls), self.unplayed(self.messages)
        for call in calls:
            what = self._what(call.to)
            report: dict[str, Any] = {"call_id": call.call_id, "out_id": call.out_id, "callee": call.to,
                                      "caller": SHOW_NUMBER, "start_time": "2026-11-23 22:00:00",
                                      "end_time": "2026-11-23 22:00:30", "duration": "30", "status_msg": ""}
            if what.startswith("press:"):
                report.update(status_code="200000", dtmf=what.split(":", 1)[1])
            else:
                report.update(status_code=STATUS.get(what, "200003"), duration="0", dtmf="")
            self.push("voice-report", [report])
        receipts = [{"phone_number": m.to, "send_time": "2026-11-23 22:00:00", "report_time": "2026-11-23 22:00:05",
                     "success": True, "err_code": "DELIVERED", "err_msg": "用户接收成功", "sms_size": "1",
                     "biz_id": m.biz_id, "out_id": m.out_id} for m in messages if self._what(m.to) != "no-receipt"]
        if receipts:
            self.push("sms-report", receipts)  # the batch push: several receipts in one request
        return len(calls) + len(messages)

    def sms_from(self, sender: str, content: str) -> httpx.Response:
        """A person replies by SMS: Aliyun's SmsUp push."""
        return self.push("sms-up", [{"phone_number": national(sender), "send_time": "2026-11-23 22:05:00",
                                     "content": content, "sign_name": SIGN_NAME, "dest_code": "1234",
                                     "sequence_id": next(self._ids)}])

    def push(self, kind: str, items: list[dict[str, Any]], token: str | None = None) -> httpx.Response:
        url = f"{self.app_url}/webhooks/aliyun/{self.token if token is None else token}/{kind}"
        response = post_json(url, items)
        with self._lock:
            self.pushes.append((kind, response.status_code))
        return response
