"""The centre's one-click responses: dispatch the grid worker now, call the family now."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts import alarms as alarm_ops
from alerts.escalation import policy as esc
from alerts.escalation.targets import ChainSettings, alarm_params
from alerts.models import (
    Alarm,
    AlarmState,
    Attempt,
    AttemptStatus,
    Contact,
)

log = logging.getLogger(__name__)


def dispatch_now(session: Session, alarm: Alarm, now: datetime, *, by: str) -> None:
    """Skip ahead to the first step that calls responders (the grid worker), starting now."""
    if alarm.state != AlarmState.OPEN or alarm.policy is None:
        return
    policy = esc.policy_from_dict(alarm.policy)
    first = next((i for i in range(len(policy.steps)) if esc.calls_responders(policy, i)), None)
    if first is None:
        return
    # make the chain believe the step before the first responder step has just run out
    alarm.step = first - 1 if first > 0 else len(policy.steps) - 1
    alarm.step_started_at = now - policy.steps[alarm.step].wait
    alarm.next_action_at = now
    alarm_ops.record(session, alarm, now, action="dispatch", actor=by, detail="dispatch the grid worker now")


def call_family_now(session: Session, alarm: Alarm, now: datetime, *, by: str, settings: ChainSettings) -> int:
    """Call every family contact of the alarm's resident now, outside the chain's steps."""
    if alarm.resident_id is None:
        return 0
    params = alarm_params(session, alarm, now, settings.language)
    count = 0
    for contact in session.scalars(select(Contact).where(Contact.resident_id == alarm.resident_id)
                                   .order_by(Contact.priority, Contact.id)):
        session.add(Attempt(alarm_id=alarm.id, step=-1, cycle=alarm.cycle, token=0, target="family",
                            person=contact.name, phone=contact.phone, channel="voice", template="alarm_call",
                            params=params, created_at=now, claimed_at=None, status=AttemptStatus.PENDING))
        count += 1
    alarm_ops.record(session, alarm, now, action="call_family", actor=by, detail=f"calling {count} family contact(s)")
    return count
