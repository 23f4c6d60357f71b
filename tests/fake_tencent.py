"""A local stand-in for Tencent Cloud's SMS API (sms 2021-01-11) that the official SDK talks to: it checks
the TC3-HMAC-SHA256 signature the SDK computes (from scratch), answers ``SendSms`` as Tencent does, and
posts the status and reply callbacks to Shouwang.

The SDK is pointed here through ``notify.tencent.endpoint`` and ``protocol = "http"``.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx2 as httpx

from tests.fake_http import FakeServer, post_json

SECRET_ID = "AKIDfakeTencentSecretId000000000"
SECRET_KEY = "fakeTencentSecretKey000000000000"
SDK_APP_ID = "1400000001"
SIGN_NAME = "守望社区"
MAX_PARAM = 12


def _hmac(key: bytes, text: str) -> bytes:
    return hmac.new(key, text.encode(), hashlib.sha256).digest()


def tc3_signature(secret_key: str, date: str, service: str, timestamp: str, canonical: str) -> str:
    scope = f"{date}/{service}/tc3_request"
    to_sign = f"TC3-HMAC-SHA256\n{timestamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
    key = _hmac(_hmac(_hmac(("TC3" + secret_key).encode(), date), service), "tc3_request")
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


@dataclass
class TcSms:
    serial_no: str
    to: str  # E.164, as Tencent takes it
    template_id: str
    params: list[str]
    context: str
    played: bool = False


@dataclass
class FakeTencent(FakeServer):
    """``behaviour[e164]``: ``no-receipt`` (the status callback never comes), ``invalid`` (refused for
    good), ``limit-once`` (the first send hits Tencent's frequency limit)."""

    app_url: str = ""
    token: str = ""
    behaviour: dict[str, str] = field(default_factory=dict)
    messages: list[TcSms] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _limited: set[str] = field(default_factory=set)

    def answer(self, handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, Any]:
        return 200, {"Response": self._handle(handler, body)}  # errors too: 200 and Response.Error

    @property
    def endpoint(self) -> str:
        return self.host

    def _handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> dict[str, Any]:
        request_id = f"fake-{next(self._ids):08d}"
        refused = self._check_signature(handler, body)
        if refused:
            with self._lock:
                self.rejected.append(refused)
            return {"Error": {"Code": "AuthFailure.SignatureFailure", "Message": refused}, "RequestId": request_id}
        if handler.headers.get("X-TC-Action") != "SendSms" or handler.headers.get("X-TC-Version") != "2021-01-11":
            return {"Error": {"Code": "InvalidAction", "Message": "unknown action"}, "RequestId": request_id}
        request = json.loads(body)
        if request.get("SmsSdkAppId") != SDK_APP_ID or request.get("SignName") != SIGN_NAME:
            return {"Error": {"Code": "FailedOperation.SignatureIncorrectOrUnapproved", "Message": "sign"},
                    "RequestId": request_id}
        params = request.get("TemplateParamSet") or []
        if any(len(p) > MAX_PARAM or not p for p in params):
            return {"Error": {"Code": "InvalidParameterValue.TemplateParameterLengthLimit",
                              "Message": "a template parameter is too long"}, "RequestId": request_id}
        statuses = []
        for number in request.get("PhoneNumberSet") or []:
            what = self.behaviour.get(number, "")
            serial = f"2433:{next(self._ids):012d}"
            if not number.startswith("+"):
                code, message = "InvalidParameterValue.IncorrectPhoneNumber", "number must be E.164"
            elif what == "invalid":
                code, message = "InvalidParameterValue.IncorrectPhoneNumber", "invalid number"
            elif what == "limit-once" and number not in self._limited:
                self._limited.add(number)
                code, message = "LimitExceeded.PhoneNumberThirtySecondLimit", "30 s limit"
            else:
                code, message = "Ok", "send success"
                with self._lock:
                    self.messages.append(TcSms(serial, number, str(request.get("TemplateId")), list(params),
                                               str(request.get("SessionContext") or "")))
            statuses.append({"SerialNo": serial, "PhoneNumber": number, "Fee": 1, "Code": code, "Message": message,
                             "SessionContext": request.get("SessionContext") or "", "IsoCode": "CN"})
        return {"SendStatusSet": statuses, "RequestId": request_id}

    @staticmethod
    def _check_signature(handler: BaseHTTPRequestHandler, body: bytes) -> str | None:
        authorization = handler.headers.get("Authorization", "")
        algorithm, _, rest = authorization.partition(" ")
        if algorithm != "TC3-HMAC-SHA256":
            return f"unsupported algorithm {algorithm!r}"
        fields = dict(part.strip().split("=", 1) for part in rest.split(",") if "=" in part)
        secret_id, date, service, _ = [*fields.get("Credential", "").split("/"), "", "", "", ""][:4]
        if secret_id != SECRET_ID or service != "sms":
            return "unknown secret id or service"
        timestamp = handler.headers.get("X-TC-Timestamp", "")
        if not timestamp.isdigit() or abs(int(timestamp) - time.time()) > 300:
            return "timestamp too far off"
        if datetime.fromtimestamp(int(timestamp), UTC).strftime("%Y-%m-%d") != date:
            return "date does not match the timestamp"
        if fields.get("SignedHeaders") != "content-type;host":
            return "unexpected signed headers"
        canonical = (f"{handler.command}\n/\n\ncontent-type:{handler.headers.get('Content-Type', '')}\n"
                     f"host:{handler.headers.get('Host', '')}\n\ncontent-type;host\n{hashlib.sha256(body).hexdigest()}")
        expected = tc3_signature(SECRET_KEY, date, service, timestamp, canonical)
        if not hmac.compare_digest(expected, fields.get("Signature", "")):
            return "signature does not match"
        return None

    # -- callbacks ---------------------------------------------------------------------------------------
    def play(self) -> int:
        messages = self.unplayed(self.messages)
        receipts = [{"user_receive_time": "2026-11-23 22:00:05", "nationcode": "86", "mobile": m.to.removeprefix("+86"),
                     "report_status": "SUCCESS", "errmsg": "DELIVRD", "description": "用户短信送达成功",
                     "sid": m.serial_no} for m in messages if self.behaviour.get(m.to) != "no-receipt"]
        if receipts:
            self.callback("sms-status", receipts)
        return len(messages)

    def sms_from(self, sender: str, text: str) -> httpx.Response:
        """A person replies by SMS: Tencent's reply callback."""
        return self.callback("sms-reply", {"extend": "", "mobile": sender.removeprefix("+86"), "nationcode": "86",
                                           "sign": SIGN_NAME, "text": text, "time": int(time.time())})

    def callback(self, kind: str, payload: Any, token: str | None = None) -> httpx.Response:
        url = f"{self.app_url}/webhooks/tencent/{self.token if token is None else token}/{kind}"
        return post_json(url, payload)
