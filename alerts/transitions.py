"""Every change of an alarm, one function per thing that happened (Grafana OnCall's ``resolve_by_*``).

Each door into a transition — the API, the phone page, a keypress, an SMS reply, the tick — calls the
function named for what happened; its effects live here once: the state change, the stop of the chain,
the history row and the audit entry (:func:`alerts.alarms.record`), the restart of the resident's window,
the family's outcome SMS. ``by`` says who, ``channel`` how (``api``, ``phone page``, ``keypress``,
``SMS``); both are on the history and in the audit log.

Functions take the session and ``now`` and do not commit: the caller owns the transaction. A
transition the alarm's state forbids raises :class:`alerts.alarms.AlarmError`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts import alarms, rules
from alerts.escalation.targets import alarm_params
from alerts.escalation.templates import OUTCOME_WORDS, Language
from alerts.limits import resident_limits
from alerts.models import (
    HUMAN_OUTCOMES,
    Alarm,
    AlarmState,
    Attempt,
    AttemptStatus,
    Contact,
    Outcome,
    Resident,
)


@dataclass(frozen=True)
class Effects:
    """What a transition needs beyond the alarm: the global limits (a person's resolution restarts the
    resident's window) and the language of the family's outcome SMS."""

    limits: rules.Limits
    language: Language = "zh"


def _actor(by: str, channel: str) -> str:
    """``李娜 (grid_worker)`` + ``API`` -> ``李娜 (grid_worker, API)``; ``李娜`` + ``SMS`` -> ``李娜 (SMS)``."""
    if by.endswith(")"):
        return f"{by[:-1]}, {channel})"
    return f"{by} ({channel})"


# -- a person has it ---------------------------------------------------------------------------------------
def acknowledged(session: Session, alarm: Alarm, now: datetime, *, by: str, channel: str) -> None:
    """Someone is on it (a keypress, an SMS reply, a tap, the API): the chain stops."""
    alarms.acknowledge(session, alarm, now, by=_actor(by, channel))


def accepted(session: Session, alarm: Alarm, now: datetime, *, by: str, channel: str) -> None:
    """A worker's "I'm going": an acknowledgement that says who is on the way."""
    alarms.accept(session, alarm, now, by=_actor(by, channel))


def arrived(session: Session, alarm: Alarm, now: datetime, *, by: str, channel: str) -> None:
    """On site at the resident's door (the 45-minute service level is measured to here)."""
    alarms.arrive(session, alarm, now, by=_actor(by, channel))


def family_handling(session: Session, alarm: Alarm, now: datetime, *, by: str, channel: str) -> None:
    """A family member said "I'm handling it": shown, and by default the community's steps go on."""
    if alarm.state == AlarmState.RESOLVED:
        raise alarms.AlarmError("alarm_resolved", code=alarm.code)
    if alarm.family_handling_at is None:
        alarm.family_handling_at, alarm.family_handling_by = now, _actor(by, channel)
        alarms.record(session, alarm, now, action="family_handling", actor=_actor(by, channel),
                      detail="family is handling it")


# -- resolutions -------------------------------------------------------------------------------------------
def resolved_by_person(session: Session, alarm: Alarm, now: datetime, *, by: str, channel: str,
                       outcome: Outcome, note: str | None, effects: Effects) -> None:
    """A person closes the alarm with an outcome. For a resident alarm: an outcome that found the resident
    restarts their window from now (the next tick does not raise it again), and the family gets an SMS
    with the outcome."""
    if outcome not in HUMAN_OUTCOMES:
        raise alarms.AlarmError("outcome", choices=", ".join(sorted(HUMAN_OUTCOMES)))
    window_s = None
    if alarm.resident_id is not None:
        resident = session.get(Resident, alarm.resident_id)
        if resident is not None:
            window_s = resident_limits(session, resident, effects.limits).window.total_seconds()
    alarms.resolve(session, alarm, now, by=_actor(by, channel), outcome=outcome, note=note, window_s=window_s)
    _queue_outcome_sms(session, alarm, now, effects.language)


def confirmed_fine_by_phone(session: Session, alarm: Alarm, now: datetime, *, by: str, channel: str,
                            effects: Effects) -> None:
    """The resident pressed 1 on the check call (or replied 1): fine, the alarm closes."""
    resolved_by_person(session, alarm, now, by=by, channel=channel, outcome=Outcome.CONFIRMED_FINE_BY_PHONE,
                       note=None, effects=effects)


def resolved_by_activity(session: Session, alarm: Alarm, now: datetime, *, note: str) -> None:
    """Movement before any responder was called: the resident is moving, the calls stop."""
    alarms.resolve(session, alarm, now, by="shouwang", outcome=Outcome.ACTIVITY_RESUMED, note=note)


def activity_recorded(session: Session, alarm: Alarm, now: datetime, *, activity_at: datetime, note: str) -> None:
    """Movement after responders were called: shown on the alarm, a person still closes it."""
    alarm.activity_seen_at = activity_at
    alarms.record(session, alarm, now, action="activity", actor="shouwang", detail=note)


def resolved_by_source(session: Session, alarm: Alarm, now: datetime, *, outcome: Outcome, note: str) -> None:
    """What raised a maintenance or system alarm is over (device back, battery replaced, watch sees again)."""
    alarms.resolve(session, alarm, now, by="shouwang", outcome=outcome, note=note)


def superseded(session: Session, alarm: Alarm, now: datetime, *, note: str) -> None:
    """A low-key notice taken over by the resident's alarm (the early warning once the inactivity alarm is
    open): it has done its part; closed, so its chain is over and it does not linger beside the alarm."""
    alarms.resolve(session, alarm, now, by="shouwang", outcome=Outcome.SUPERSEDED, note=note)


def hold_released(session: Session, alarm: Alarm, now: datetime, *, by: str, why: str) -> bool:
    """The family hold of a possibly-infrastructure alarm ends now (a person on the centre side said "not
    infrastructure: escalate", or the incident is over): its chain goes on to the family at once.
    Returns False when there was no hold to release."""
    if alarm.state == AlarmState.RESOLVED:
        raise alarms.AlarmError("alarm_resolved", code=alarm.code)
    if alarm.hold_until is None:
        return False
    alarm.hold_until = None  # no hold from now on (an acknowledged incident no longer extends it)
    if alarm.state == AlarmState.OPEN and alarm.step >= 0:
        alarm.next_action_at = now
    alarms.record(session, alarm, now, action="hold_released", actor=by, detail=why)
    return True


def _queue_outcome_sms(session: Session, alarm: Alarm, now: datetime, language: Language) -> None:
    """The family of a resident alarm gets the outcome by SMS (sent by the next escalation run)."""
    if alarm.resident_id is None or alarm.kind not in alarms.CALLING_KINDS:
        return
    words = OUTCOME_WORDS.get(alarm.outcome or "", {}).get(language, alarm.outcome or "")
    params = {**alarm_params(session, alarm, now, language), "outcome": words, "note": alarm.note or ""}
    for contact in session.scalars(select(Contact).where(Contact.resident_id == alarm.resident_id)
                                   .order_by(Contact.priority, Contact.id)):
        session.add(Attempt(alarm_id=alarm.id, step=-1, cycle=alarm.cycle, token=0, target="family",
                            person=contact.name, phone=contact.phone, channel="sms", template="outcome_sms",
                            params=params, created_at=now, claimed_at=None, status=AttemptStatus.PENDING))
