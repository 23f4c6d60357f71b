"""A local stand-in for Twilio's REST API that the official ``twilio`` package talks to, and that plays
the people being called: it reads the TwiML of each call, "presses" a digit or does not answer, is
busy or fails, and posts correctly signed status and Gather callbacks back to Shouwang.

Nothing of Shouwang is patched: the SDK is pointed here through ``notify.twilio_api_base``.
"""

from __future__ import annotations

import base64
import itertools
import threading
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlencode

import httpx2 as httpx
from twilio.request_validator import RequestValidator

from tests.fake_http import FakeServer

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "f" * 32
FROM = "+8657100000000"


@dataclass
class FakeCall:
    sid: str
    to: str
    twiml: str
    status_callback: str
    played: bool = False

    def gather(self) -> ET.Element:
        root = ET.fromstring(self.twiml)
        node = root.find("Gather")
        assert node is not None, self.twiml
        return node

    def said(self) -> str:
        return " ".join(s.text or "" for s in self.gather().iter("Say"))


@dataclass
class FakeMessage:
    sid: str
    to: str
    body: str
    status_callback: str | None
    played: bool = False


@dataclass
class FakeTwilio(FakeServer):
    """Record calls and SMS; ``behaviour[number]`` says what the person at that number does:
    ``press:1`` (answers, presses 1), ``voicemail`` (completed, no digit), ``no-answer``, ``busy``,
    ``failed``; ``invalid`` makes the REST call fail for good (21211), ``down`` fail with a 503."""

    behaviour: dict[str, str] = field(default_factory=dict)
    calls: list[FakeCall] = field(default_factory=list)
    messages: list[FakeMessage] = field(default_factory=list)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    _ids: Any = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, handler: BaseHTTPRequestHandler, body: bytes) -> tuple[int, Any]:
        return self._handle(handler.path, handler.headers.get("Authorization", ""), dict(parse_qsl(body.decode())))

    @property
    def url(self) -> str:
        return f"http://{self.host}"

    # -- the REST API the SDK calls ----------------------------------------------------------------------
    def _handle(self, path: str, authorization: str, form: dict[str, str]) -> tuple[int, dict[str, Any]]:
        expected = "Basic " + base64.b64encode(f"{ACCOUNT_SID}:{AUTH_TOKEN}".encode()).decode()
        if authorization != expected:
            return 401, {"code": 20003, "message": "Authenticate", "status": 401}
        with self._lock:
            self.requests.append((path, form))
        to = form.get("To", "")
        what = self.behaviour.get(to, "no-answer")
        if what == "invalid":
            return 400, {"code": 21211, "message": f"The 'To' number {to} is not a valid phone number.",
                         "more_info": "https://www.twilio.com/docs/errors/21211", "status": 400}
        if what == "down":
            return 503, {"code": 20500, "message": "Service unavailable", "status": 503}
        if path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Calls.json":
            sid = f"CA{next(self._ids):032d}"
            with self._lock:
                self.calls.append(FakeCall(sid, to, form["Twiml"], form["StatusCallback"]))
            return 201, {"sid": sid, "account_sid": ACCOUNT_SID, "to": to, "from": form.get("From"),
                         "status": "queued", "direction": "outbound-api"}
        if path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json":
            sid = f"SM{next(self._ids):032d}"
            with self._lock:
                self.messages.append(FakeMessage(sid, to, form["Body"], form.get("StatusCallback")))
            return 201, {"sid": sid, "account_sid": ACCOUNT_SID, "to": to, "from": form.get("From"),
                         "body": form["Body"], "status": "queued", "direction": "outbound-api"}
        return 404, {"code": 20404, "message": "not found", "status": 404}

    # -- playing the people ----------------------------------------------------------------------------
    def play(self) -> int:
        """Let everyone called so far do what their behaviour says; deliver the SMS. Returns how many."""
        calls, messages = self.unplayed(self.calls), self.unplayed(self.messages)
        for call in calls:
            what = self.behaviour.get(call.to, "no-answer")
            if what.startswith("press:"):
                self.post(call.gather().attrib["action"], {"CallSid": call.sid, "To": call.to, "From": FROM,
                                                           "Digits": what.split(":", 1)[1]})
                self.post(call.status_callback, self._status(call, "completed"))
            elif what == "voicemail":
                self.post(call.status_callback, self._status(call, "in-progress"))
                self.post(call.status_callback, self._status(call, "completed"))
            else:
                self.post(call.status_callback, self._status(call, what))
        for message in messages:
            if message.status_callback:
                self.post(message.status_callback, {"MessageSid": message.sid, "MessageStatus": "delivered",
                                                    "To": message.to, "From": FROM, "AccountSid": ACCOUNT_SID})
        return len(calls) + len(messages)

    def _status(self, call: FakeCall, status: str) -> dict[str, str]:
        return {"CallSid": call.sid, "CallStatus": status, "To": call.to, "From": FROM, "AccountSid": ACCOUNT_SID,
                "Direction": "outbound-api"}

    def sms_from(self, app_url: str, sender: str, body: str) -> str:
        """A person texts our number: Twilio posts the inbound-SMS webhook. Returns the TwiML reply."""
        response = self.post(f"{app_url}/webhooks/twilio/sms", {
            "MessageSid": f"SM{next(self._ids):032d}", "From": sender, "To": FROM, "Body": body,
            "AccountSid": ACCOUNT_SID, "NumMedia": "0"})
        return response.text

    @staticmethod
    def post(url: str, params: dict[str, str], signature: str | None = None) -> httpx.Response:
        """POST a callback signed as Twilio signs it (or with the ``signature`` given)."""
        sign = RequestValidator(AUTH_TOKEN).compute_signature(url, params) if signature is None else signature
        headers = {"X-Twilio-Signature": sign} if sign else {}
        response = httpx.post(url, content=urlencode(params), headers={
            **headers, "Content-Type": "application/x-www-form-urlencoded"}, timeout=10)
        return response
