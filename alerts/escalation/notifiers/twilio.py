"""Twilio Programmable Voice and Messaging, through the official ``twilio`` package.

* A call: ``calls.create`` with inline TwiML: ``<Gather numDigits="1">`` around a ``<Say>`` in the
  configured language (zh-CN by default), its ``action`` posting the digit back, and a
  ``status_callback`` for call progress (busy, no-answer, failed, completed advance the chain at once).
* An SMS: ``messages.create`` with a status callback; replies arrive on the inbound-SMS webhook.
* Every webhook is checked with ``twilio.request_validator.RequestValidator`` against the public URL
  Twilio called; a bad or missing ``X-Twilio-Signature`` raises :class:`SignatureError` (HTTP 403).

``api_base`` points the SDK at another host speaking Twilio's REST API (a test double, a proxy);
without it the SDK talks to api.twilio.com.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from twilio.base.exceptions import TwilioException, TwilioRestException
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response
from twilio.request_validator import RequestValidator
from twilio.rest import Client
from twilio.twiml.messaging_response import MessagingResponse
from twilio.twiml.voice_response import Gather, VoiceResponse

from alerts.escalation.notifiers.base import (
    CallStatus,
    InboundSms,
    Keypress,
    NotifyError,
    ProviderEvent,
    SignatureError,
    SmsStatus,
    WebhookReply,
    WebhookRequest,
)
from alerts.escalation.templates import Language, Message, language_voice, render

log = logging.getLogger(__name__)

TWILIO_API = "https://api.twilio.com"
# Twilio error codes that will not succeed on a retry: invalid or unroutable numbers, blocked, opted out
PERMANENT_CODES = frozenset({21211, 21214, 21217, 21219, 21401, 21407, 21408, 21421, 21606, 21610, 21612,
                             21614, 21215, 21216, 13223, 13224, 13225, 13226, 13227})


class _RebasedHttpClient(TwilioHttpClient):
    """Sends the SDK's requests to ``base`` instead of https://api.twilio.com."""

    def __init__(self, base: str, timeout: float) -> None:
        super().__init__(timeout=timeout)
        self.base = base.rstrip("/")

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Response:
        if url.startswith(TWILIO_API):
            url = self.base + url[len(TWILIO_API):]
        return super().request(method, url, *args, **kwargs)


class TwilioProvider:
    name = "twilio"

    def __init__(self, *, account_sid: str, auth_token: str, from_number: str, public_base_url: str,
                 language: Language = "zh", voice: str | None = None, api_base: str | None = None,
                 timeout: float = 10.0) -> None:
        http_client = _RebasedHttpClient(api_base, timeout) if api_base else TwilioHttpClient(timeout=timeout)
        self._client = Client(account_sid, auth_token, http_client=http_client)
        self._validator = RequestValidator(auth_token)
        self.from_number = from_number
        self.base = public_base_url.rstrip("/")
        self.language = language
        self.voice = voice or ("Polly.Zhiyu" if language == "zh" else "Polly.Joanna")

    # -- outgoing ------------------------------------------------------------------------------------
    def call(self, attempt_id: int, to: str, message: Message) -> str:
        twiml = self.call_twiml(attempt_id, message)
        return self._create(lambda: self._client.calls.create(
            to=to, from_=self.from_number, twiml=twiml,
            status_callback=self._url("status", attempt_id), status_callback_method="POST",
            status_callback_event=["initiated", "ringing", "answered", "completed"],
        ).sid)

    def sms(self, attempt_id: int, to: str, message: Message) -> str:
        return self._create(lambda: self._client.messages.create(
            to=to, from_=self.from_number, body=render(message, self.language),
            status_callback=self._url("sms-status", attempt_id),
        ).sid)

    def call_twiml(self, attempt_id: int, message: Message) -> str:
        """The TwiML of a call: the message inside a one-digit Gather, said twice, then goodbye."""
        response = VoiceResponse()
        gather = Gather(num_digits=1, action=self._url("gather", attempt_id), method="POST", timeout=8)
        text = render(message, self.language)
        gather.say(text, language=language_voice(self.language), voice=self.voice)
        gather.pause(length=1)
        gather.say(text, language=language_voice(self.language), voice=self.voice)
        response.append(gather)
        response.say(render(Message("call_no_input"), self.language), language=language_voice(self.language),
                     voice=self.voice)
        return str(response)

    def _create(self, send: Any) -> str:
        try:
            return str(send())
        except TwilioRestException as exc:
            permanent = exc.code in PERMANENT_CODES or (400 <= exc.status < 500 and exc.status != 429)
            raise NotifyError(f"twilio {exc.status} code {exc.code}: {exc.msg}", permanent=permanent) from exc
        except (TwilioException, OSError) as exc:
            raise NotifyError(f"twilio unreachable: {exc}", permanent=False) from exc

    def _url(self, kind: str, attempt_id: int) -> str:
        return f"{self.base}/webhooks/twilio/{kind}?{urlencode({'attempt': attempt_id})}"

    # -- webhooks ------------------------------------------------------------------------------------
    def parse(self, request: WebhookRequest) -> list[ProviderEvent]:
        signature = {k.lower(): v for k, v in request.headers.items()}.get("x-twilio-signature", "")
        if not signature or not self._validator.validate(request.url, request.params, signature):
            raise SignatureError("X-Twilio-Signature does not verify")
        p = request.params
        attempt = _attempt_of(request.url)
        if request.kind == "status":
            return [CallStatus(attempt, p.get("CallSid"), p.get("CallStatus", ""))]
        if request.kind == "gather":
            digits = p.get("Digits", "")
            return [Keypress(attempt, p.get("CallSid"), digits)] if digits else []
        if request.kind == "sms-status":
            return [SmsStatus(attempt, p.get("MessageSid"), p.get("MessageStatus", ""))]
        if request.kind == "sms":
            return [InboundSms(p.get("From", ""), p.get("Body", ""), p.get("MessageSid"))]
        return []

    def reply(self, request: WebhookRequest, message: Message | None) -> WebhookReply:
        if request.kind == "sms":
            response = MessagingResponse()
            if message is not None:
                response.message(render(message, self.language))
            return WebhookReply(str(response), "application/xml")
        voice = VoiceResponse()
        if request.kind == "gather" and message is not None:
            voice.say(render(message, self.language), language=language_voice(self.language), voice=self.voice)
        return WebhookReply(str(voice), "application/xml")

    def poll(self, now: datetime) -> list[ProviderEvent]:
        return []


def _attempt_of(url: str) -> int | None:
    query = url.split("?", 1)[1] if "?" in url else ""
    for pair in query.split("&"):
        key, _, value = pair.partition("=")
        if key == "attempt" and value.isdigit():
            return int(value)
    return None
