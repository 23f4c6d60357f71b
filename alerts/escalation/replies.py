"""The provider's events: call and SMS statuses advance the chain, a keypress or an SMS reply
acknowledges (or confirms the resident fine, or says the family is handling it) through the same
transitions as the API and the phone page (:mod:`alerts.transitions`)."""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from alerts import alarms as alarm_ops
from alerts import scope, transitions
from alerts.escalation import policy as esc
from alerts.escalation.notifiers.base import CallStatus, InboundSms, Keypress, ProviderEvent, SmsStatus
from alerts.escalation.targets import ChainSettings
from alerts.escalation.templates import Message
from alerts.models import (
    Alarm,
    AlarmState,
    Attempt,
    AttemptStatus,
    Contact,
    Resident,
    Worker,
)

log = logging.getLogger(__name__)

CODE = re.compile(r"\bA(\d+)\b", re.IGNORECASE)


def handle_events(engine: Engine, events: Sequence[ProviderEvent], now: datetime,
                  settings: ChainSettings) -> Message | None:
    """Apply the provider's events; returns the reply to say or send back (for an SMS), if any."""
    reply: Message | None = None
    for event in events:
        with Session(engine, expire_on_commit=False) as session, session.begin():
            if isinstance(event, CallStatus | SmsStatus):
                _status(session, event, now)
            elif isinstance(event, Keypress):
                reply = _keypress(session, event, now, settings)
            elif isinstance(event, InboundSms):
                reply = _inbound_sms(session, event, now, settings)
    return reply


def _find_attempt(session: Session, attempt_id: int | None, provider_id: str | None) -> Attempt | None:
    attempt = session.get(Attempt, attempt_id, with_for_update=True) if attempt_id is not None else None
    if attempt is None and provider_id:
        attempt = session.scalars(select(Attempt).where(Attempt.provider_id == provider_id)).first()
    return attempt


def _status(session: Session, event: CallStatus | SmsStatus, now: datetime) -> None:
    attempt = _find_attempt(session, event.attempt_id, event.provider_id)
    if attempt is None:
        log.warning("status for an unknown attempt", extra={"provider_id": event.provider_id})
        return
    if attempt.status in esc.VOICE_ENDED | esc.SMS_ENDED | {AttemptStatus.SKIPPED}:
        return  # statuses may arrive out of order; the first end stands
    attempt.status = event.status
    if esc.AttemptView(attempt.channel, event.status).ended:
        attempt.ended_at = now
        alarm = session.get(Alarm, attempt.alarm_id)
        if alarm is not None:  # on the alarm's history and the live stream: "call 李娜: no-answer"
            noun = "call" if attempt.channel == "voice" else "SMS"
            alarm_ops.record(session, alarm, now, action="attempt", actor=attempt.person,
                           detail=f"{noun} {attempt.person} ({attempt.target}): {event.status}")
        maybe_step_over(session, attempt.alarm_id, now)


def _keypress(session: Session, event: Keypress, now: datetime, settings: ChainSettings) -> Message | None:
    attempt = _find_attempt(session, event.attempt_id, event.provider_id)
    if attempt is None:
        return None
    attempt.digits = event.digits[:10]
    meaning = esc.classify_keypress(attempt.target, event.digits)
    alarm = session.get(Alarm, attempt.alarm_id, with_for_update=True)
    if meaning is None or alarm is None:
        return None
    _apply(session, alarm, meaning, attempt.person, f"{attempt.target}, keypress", now, settings)
    return Message("call_thanks")


def effects(settings: ChainSettings) -> transitions.Effects:
    """What the alarm transitions need of the chain's settings: the global limits and the language."""
    return transitions.Effects(limits=settings.limits, language=settings.language)


def _apply(session: Session, alarm: Alarm, meaning: str, by: str, channel: str, now: datetime,
           settings: ChainSettings) -> None:
    """What a keypress or an SMS reply means, through the transition named for it."""
    if alarm.state == AlarmState.RESOLVED:
        return
    if meaning == "confirmed_fine":
        transitions.confirmed_fine_by_phone(session, alarm, now, by=by, channel=channel, effects=effects(settings))
    elif meaning == "acknowledged":
        transitions.acknowledged(session, alarm, now, by=by, channel=channel)
    elif meaning == "family_handling":
        transitions.family_handling(session, alarm, now, by=by, channel=channel)


@dataclass(frozen=True)
class Sender:
    kind: str  # a worker role, family, resident or unknown
    name: str
    resident_id: int | None = None
    reach: scope.Reach | None = None  # a worker's role and grid / micro-grid


def _inbound_sms(session: Session, event: InboundSms, now: datetime, settings: ChainSettings) -> Message:
    """"1 A37" acknowledges alarm A37; a bare "1" the open alarm sent to this person, and with several
    open the reply lists them instead of guessing. A worker may acknowledge only what the API would let
    them (:mod:`alerts.scope`: their grid / micro-grid, the supervisor everything) or an alarm whose chain
    called them; anyone else gets a polite refusal."""
    words = event.body.strip().split()
    if not words or words[0] not in ("1", "１"):
        return Message("reply_help")
    sender_phone = _normalise(event.sender)
    sender = _who(session, sender_phone)
    if sender.kind == "unknown":
        log.warning("SMS reply from an unknown number", extra={"sender": sender_phone})
        return Message("reply_none")
    candidates = session.scalars(select(Alarm).where(scope.called(sender_phone), Alarm.state == AlarmState.OPEN)
                                 .order_by(Alarm.id.desc())).all()
    code = CODE.search(event.body)
    alarm: Alarm | None
    if code:
        alarm = session.get(Alarm, int(code.group(1)), with_for_update=True)
        if alarm is None or alarm.state != AlarmState.OPEN:
            return Message("reply_none")
        allowed = alarm in candidates or (sender.reach is not None and
                                          scope.may_acknowledge(session, alarm.id, sender.reach, sender_phone))
        if not allowed:
            log.warning("SMS acknowledgement refused: not this person's alarm",
                        extra={"alarm": alarm.id, "sender_kind": sender.kind})
            return Message("reply_not_yours", {"code": alarm.code})
    elif len(candidates) > 1:
        codes = "、".join(a.code for a in candidates[:10])
        return Message("reply_list", {"codes": codes, "first": candidates[0].code})
    elif candidates:
        alarm = session.get(Alarm, candidates[0].id, with_for_update=True)
    else:
        return Message("reply_none")
    assert alarm is not None
    if sender.kind in ("resident", "family") and alarm.resident_id != sender.resident_id:
        return Message("reply_not_yours", {"code": alarm.code})
    meaning = {"resident": "confirmed_fine", "family": "family_handling"}.get(sender.kind, "acknowledged")
    _apply(session, alarm, meaning, sender.name, f"{sender.kind}, SMS", now, settings)
    return Message("reply_family" if meaning == "family_handling" else "reply_ack", {"code": alarm.code})


def _who(session: Session, phone: str) -> Sender:
    worker = session.scalars(select(Worker).where(Worker.phone == phone, Worker.active.is_(True))).first()
    if worker is not None:
        return Sender(worker.role, worker.name, reach=scope.Reach(worker.role, worker.grid_id, worker.micro_grid_id))
    contact = session.scalars(select(Contact).where(Contact.phone == phone)).first()
    if contact is not None:
        return Sender("family", contact.name, contact.resident_id)
    resident = session.scalars(select(Resident).where(Resident.phone == phone)).first()
    if resident is not None:
        return Sender("resident", resident.name, resident.id)
    return Sender("unknown", phone)


def _normalise(phone: str) -> str:
    return re.sub(r"[\s\-()]", "", phone)


def maybe_step_over(session: Session, alarm_id: int, now: datetime) -> None:
    """Every attempt of the current step ended unanswered: let the chain advance at once."""
    alarm = session.get(Alarm, alarm_id)
    if alarm is None or alarm.state != AlarmState.OPEN or alarm.step < 0:
        return
    attempts = session.scalars(select(Attempt).where(Attempt.alarm_id == alarm_id,
                                                     Attempt.token == alarm.escalation_token,
                                                     Attempt.step >= 0)).all()
    if esc.ended_unanswered([esc.AttemptView(a.channel, a.status) for a in attempts]):
        alarm.next_action_at = now
