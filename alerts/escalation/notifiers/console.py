"""The console provider: the default without Twilio credentials. It logs every call and SMS and
records them like any provider, so the demo and a fresh install work with no internet.

For the demo it can play the people: a ``script`` maps a phone number to what that person does
(``no-answer``, ``busy``, ``press:1`` after some delay, ...); :meth:`poll` hands the resulting events to
the chain when the (possibly simulated) clock reaches them. With ``timed`` (the demo's simulated people,
:mod:`simulator.people`), :meth:`take_due` hands them over with the instant each happened instead, so
they are applied at that instant and not at the next tick (at 600x a tick is 10 simulated minutes).
"""

from __future__ import annotations

import itertools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from alerts.escalation.links import mask
from alerts.escalation.notifiers.base import (
    CallStatus,
    Keypress,
    ProviderEvent,
    SmsStatus,
    WebhookReply,
    WebhookRequest,
)
from alerts.escalation.templates import Language, Message, render

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Behaviour:
    """What a simulated person does with a call: ``answer`` with ``digits`` (or none: voicemail),
    or end as ``busy`` / ``no-answer`` / ``failed``, after ``after``."""

    outcome: str = "no-answer"
    digits: str | None = None
    after: timedelta = timedelta(seconds=30)


Script = Callable[[str], Behaviour | None]


@dataclass(frozen=True)
class Scheduled:
    """A simulated person's event: due ``at`` (the send plus the person's delay ``after``)."""

    at: datetime
    event: ProviderEvent
    after: timedelta


class ConsoleProvider:
    name = "console"

    def __init__(self, clock: Callable[[], datetime], language: Language = "zh", script: Script | None = None) -> None:
        self._clock = clock
        self.language = language
        self.script = script
        self._ids = itertools.count(1)
        self._pending: list[Scheduled] = []
        self._lock = threading.Lock()
        self.sent: list[tuple[str, str, str]] = []  # (channel, to, text): what a test or the demo can read
        self.timed = False  # the events are taken with their instants by take_due (poll returns none)

    def call(self, attempt_id: int, to: str, message: Message) -> str:
        provider_id = f"console-call-{next(self._ids)}"
        text = render(message, self.language)
        self.sent.append(("voice", to, text))
        log.warning("CALL %s: %s", to, text, extra={"attempt": attempt_id})
        behaviour = self.script(to) if self.script else None
        if behaviour is not None:
            at = self._clock() + behaviour.after
            events: list[ProviderEvent] = []
            if behaviour.outcome == "answer":
                if behaviour.digits:
                    events.append(Keypress(attempt_id, provider_id, behaviour.digits))
                events.append(CallStatus(attempt_id, provider_id, "completed"))
            else:
                events.append(CallStatus(attempt_id, provider_id, behaviour.outcome))
            with self._lock:
                self._pending.extend(Scheduled(at, event, behaviour.after) for event in events)
        return provider_id

    def sms(self, attempt_id: int, to: str, message: Message) -> str:
        provider_id = f"console-sms-{next(self._ids)}"
        text = render(message, self.language)
        self.sent.append(("sms", to, text))
        log.warning("SMS %s: %s", to, mask(text), extra={"attempt": attempt_id})
        with self._lock:
            self._pending.append(Scheduled(self._clock(), SmsStatus(attempt_id, provider_id, "delivered"),
                                           timedelta(0)))
        return provider_id

    def parse(self, request: WebhookRequest) -> list[ProviderEvent]:
        return []

    def reply(self, request: WebhookRequest, message: Message | None) -> WebhookReply:
        return WebhookReply(render(message, self.language) if message else "", "text/plain")

    def poll(self, now: datetime) -> list[ProviderEvent]:
        if self.timed:
            return []
        return [s.event for s in self.take_due(now)]

    def take_due(self, now: datetime | None = None) -> list[Scheduled]:
        """The events due by ``now`` (all of them without ``now``), with their instants, oldest first."""
        with self._lock:
            due = sorted((s for s in self._pending if now is None or s.at <= now), key=lambda s: s.at)
            self._pending = [s for s in self._pending if now is not None and s.at > now]
        return due
