"""The one narrow interface to a phone provider, and the events its callbacks turn into.

Nothing outside a provider module knows which provider it is: place a call that reads a message and
asks for one digit, send an SMS, and turn the provider's webhook requests into :data:`ProviderEvent`.
A message is a template id plus parameters (:class:`alerts.escalation.templates.Message`), because domestic
Chinese providers only send pre-registered templates.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from alerts.escalation.templates import Message

log = logging.getLogger(__name__)


class NotifyError(Exception):
    """A call or SMS that the provider refused. ``permanent`` ones (an invalid number) are recorded and
    never retried; transient ones (a timeout, 5xx, rate limit) are retried with backoff."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class SignatureError(Exception):
    """A webhook request whose signature does not verify: answered with 403, nothing changes."""


@dataclass(frozen=True)
class CallStatus:
    attempt_id: int | None
    provider_id: str | None
    status: str  # queued, ringing, in-progress, completed, busy, no-answer, failed, canceled


@dataclass(frozen=True)
class Keypress:
    attempt_id: int | None
    provider_id: str | None
    digits: str


@dataclass(frozen=True)
class SmsStatus:
    attempt_id: int | None
    provider_id: str | None
    status: str  # queued, sent, delivered, undelivered, failed


@dataclass(frozen=True)
class InboundSms:
    sender: str
    body: str
    provider_id: str | None = None


ProviderEvent = CallStatus | Keypress | SmsStatus | InboundSms


@dataclass(frozen=True)
class WebhookRequest:
    """A provider's HTTP callback, as the web layer received it."""

    kind: str  # the route's last segment: status, gather, sms, sms-status (Twilio); sms-report, sms-up,
    # voice-report (Aliyun); sms-status, sms-reply (Tencent)
    url: str  # the full public URL the provider called (what it signed)
    params: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""  # the raw body (Aliyun and Tencent push JSON)
    token: str | None = None  # the secret path segment of a push URL (/webhooks/<provider>/<token>/<kind>)
    client: str | None = None  # the address the request came from


@dataclass(frozen=True)
class WebhookReply:
    body: str
    media_type: str


def verify_push(request: WebhookRequest, token: str, allow: Sequence[str]) -> None:
    """What can be checked of an unsigned push (Aliyun, Tencent): the shared secret in its URL, and,
    if configured, that it comes from an allowed network. Raises :class:`SignatureError`."""
    if not token or not request.token or not hmac.compare_digest(request.token.encode(), token.encode()):
        raise SignatureError("the push URL's token is wrong")
    if allow:
        try:
            source = ipaddress.ip_address(request.client or "")
        except ValueError as exc:
            raise SignatureError("the push's source address is unknown") from exc
        if not any(source in ipaddress.ip_network(network, strict=False) for network in allow):
            raise SignatureError(f"pushes from {source} are not allowed (notify.webhook_allow)")


def push_items(request: WebhookRequest, token: str, allow: Sequence[str], kinds: Sequence[str],
               provider: str) -> list[dict[str, Any]]:
    """An unsigned JSON push (Aliyun, Tencent), checked (:func:`verify_push`, a known kind) and read as a
    list of objects; a body that is not JSON is logged and gives nothing."""
    verify_push(request, token, allow)
    if request.kind not in kinds:
        raise SignatureError(f"no such {provider} push: {request.kind}")
    try:
        data = json.loads(request.body or b"[]")
    except ValueError:
        log.warning("push is not JSON", extra={"provider": provider, "kind": request.kind})
        return []
    items = data if isinstance(data, list) else [data]
    return [item for item in items if isinstance(item, dict)]


class Provider(Protocol):
    name: str

    def call(self, attempt_id: int, to: str, message: Message) -> str:
        """Place a call that reads ``message`` and gathers one digit; returns the provider's call id."""
        ...

    def sms(self, attempt_id: int, to: str, message: Message) -> str:
        """Send an SMS; returns the provider's message id."""
        ...

    def parse(self, request: WebhookRequest) -> list[ProviderEvent]:
        """Verify (raise :class:`SignatureError`) and parse a webhook request."""
        ...

    def reply(self, request: WebhookRequest, message: Message | None) -> WebhookReply:
        """The HTTP answer to a webhook request, saying ``message`` if there is one."""
        ...

    def poll(self, now: datetime) -> list[ProviderEvent]:
        """Events that arrive without a webhook (the console provider's simulated people)."""
        ...
