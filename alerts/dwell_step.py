"""The tick's dwell step (:mod:`alerts.dwell`): claim the residents whose ``dwell_due_at`` has passed, read
their activity since the last activity outside the bathroom, decide with the pure functions, plan the next
look. A dwell alarm is a ``routine`` alarm (the same policy and alarm path as the time-window rule) with a
``dwell_*`` reason code. Movement in the bathroom is the very situation it is about, so only activity
elsewhere ends it (the generic activity step leaves it alone): while one is open the step looks every
``OPEN_RECHECK`` and resolves it as "activity resumed" (before responders were called; after, the activity
is noted on the alarm and a person closes it).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from alerts import alarms, dwell, infrastructure, rules, transitions, wording
from alerts.db import claim, guarded
from alerts.limits import with_grid
from alerts.models import Alarm, AlarmKind, AlarmState, Device, Event, Grid, Resident, SignOfLife

log = logging.getLogger(__name__)

CLAIM_BATCH = 1000
PUSH_BACK = timedelta(minutes=5)
OPEN_RECHECK = timedelta(minutes=1)
STAY_ROWS = 1000  # the newest bathroom activity read per look (a PIR reports at most about once a minute)
DWELL_CODES = ("dwell_bathroom", "dwell_bathroom_door")
# resident alarms that keep a dwell limit quiet (as for the time-window rule): already being looked at
QUIET_KINDS = frozenset({AlarmKind.INACTIVITY, AlarmKind.PANIC, AlarmKind.ROUTINE})
# a device outside the bathroom: of another room, or of none (an event of a deleted device counts as outside)
OUTSIDE = or_(Device.room.is_(None), Device.room != dwell.Room.BATHROOM.value)


def is_dwell_alarm() -> Any:
    """The SQL condition "this alarm is a dwell alarm" (for the generic activity step to leave it alone)."""
    return (Alarm.kind == AlarmKind.ROUTINE) & Alarm.reason_code.isnot(None) & Alarm.reason_code.in_(DWELL_CODES)


def dwell_step(session: Session, now: datetime, zone: Any, raised: list[int], resolved: list[int]) -> int:
    """Look at the residents whose dwell look is due. Returns how many rows were claimed."""
    query = (with_grid(select(Resident, Grid.bathroom_dwell_s, Grid.bathroom_door_dwell_s))
             .where(Resident.dwell_due_at.isnot(None), Resident.dwell_due_at <= now)
             .order_by(Resident.dwell_due_at).limit(CLAIM_BATCH))
    rows = session.execute(claim(query, session.get_bind().dialect, of=Resident)).all()
    open_alarms: dict[int, list[Alarm]] = {}
    if rows:
        for alarm in session.scalars(select(Alarm).where(Alarm.state != AlarmState.RESOLVED,
                                                         Alarm.resident_id.in_([r.id for r, _, _ in rows]))):
            open_alarms.setdefault(alarm.resident_id or 0, []).append(alarm)
    before = len(raised)
    for resident, grid_bathroom_s, grid_door_s in rows:
        limits = dwell.effective_limits(resident.bathroom_dwell_s, resident.bathroom_door_dwell_s,
                                        grid_bathroom_s, grid_door_s)
        guarded(session, "resident", resident.id,
                partial(_look, session, resident, limits, open_alarms.get(resident.id, []), now, zone, raised,
                        resolved),
                partial(setattr, resident, "dwell_due_at", now + PUSH_BACK))
    infrastructure.mark_raised(session, raised[before:], now)  # inside an incident: possibly infrastructure
    return len(rows)


def _look(session: Session, resident: Resident, limits: dwell.DwellLimits, open_alarms: list[Alarm],
          now: datetime, zone: Any, raised: list[int], resolved: list[int]) -> None:
    dwelling = [a for a in open_alarms if a.kind == AlarmKind.ROUTINE and a.reason_code in DWELL_CODES]
    if limits.shortest is None and not dwelling:
        resident.dwell_due_at = None
        return
    activity = recent_activity(session, resident.id)
    for alarm in dwelling:  # also after the limit was removed: the open alarm still ends by activity elsewhere
        _activity_elsewhere(session, alarm, activity, now, zone, resolved)
    still_open = [a for a in open_alarms if a.state != AlarmState.RESOLVED]
    decision = dwell.decide_dwell(
        limits=limits, activity=activity, now=now, watch_from=resident.watch_from or resident.created_at,
        away_until=resident.away_until, away_until_activity=resident.away_until_activity,
        alarm_open=any(a.kind in QUIET_KINDS for a in still_open),
        sensed_elsewhere=session.scalar(select(Device.id).where(Device.resident_id == resident.id, OUTSIDE)
                                        .limit(1)) is not None)
    resident.dwell_due_at = decision.next_due
    if any(a.reason_code in DWELL_CODES for a in still_open):
        resident.dwell_due_at = now + OPEN_RECHECK
    if decision.action is not dwell.DwellAction.RAISE:
        return
    assert decision.code is not None and decision.since is not None and decision.limit is not None
    params = {"room": dwell.Room.BATHROOM.value, "since": wording.instant(decision.since),
              "hours": f"{decision.limit.total_seconds() / 3600:g}"}
    alarm_id = alarms.open_alarm(
        session, AlarmKind.ROUTINE, now, reason=wording.reason(decision.code, params, wording.configured().language,
                                                               zone),
        reason_code=decision.code, reason_params=params, resident_id=resident.id,
        last_activity_at=resident.last_activity_at)
    if alarm_id is not None:
        log.warning("dwell alarm raised", extra={"alarm": alarm_id, "resident": resident.id})
        raised.append(alarm_id)
        resident.dwell_due_at = now + OPEN_RECHECK


def _activity_elsewhere(session: Session, alarm: Alarm, activity: list[dwell.Activity], now: datetime, zone: Any,
                        resolved: list[int]) -> None:
    """Activity outside the bathroom since the alarm: the resident left it."""
    elsewhere = max((a.at for a in activity if not a.bathroom), default=None)
    seen = max((t for t in (alarm.activity_seen_at, alarm.last_activity_at) if t is not None), default=None)
    action = rules.on_activity_during_alarm(
        snapshot=seen, activity_at=elsewhere, responders_called_at=alarm.responders_called_at,
        acknowledged=alarm.state == AlarmState.ACKNOWLEDGED)
    if elsewhere is None or action is rules.ActivityAction.IGNORE:
        return
    note = f"movement outside the bathroom at {elsewhere.astimezone(zone):%H:%M}"
    if action is rules.ActivityAction.AUTO_RESOLVE:
        transitions.resolved_by_activity(session, alarm, now, note=note)
        resolved.append(alarm.id)
    else:
        transitions.activity_recorded(session, alarm, now, activity_at=elsewhere, note=note)


def recent_activity(session: Session, resident_id: int) -> list[dwell.Activity]:
    """The resident's last activity elsewhere (a device of another room or of none, a deleted device, a sign
    of life) and the bathroom activity after it, oldest first."""
    last_event = session.scalar(
        select(Event.occurred_at).outerjoin(Device, Device.id == Event.device_id)
        .where(Event.resident_id == resident_id, Event.is_activity.is_(True), OUTSIDE)
        .order_by(Event.occurred_at.desc()).limit(1))
    last_sign = session.scalar(select(SignOfLife.at).where(SignOfLife.resident_id == resident_id)
                               .order_by(SignOfLife.at.desc()).limit(1))
    elsewhere = max((t for t in (last_event, last_sign) if t is not None), default=None)
    inside = (select(Event.occurred_at, Event.kind, Event.value).join(Device, Device.id == Event.device_id)
              .where(Event.resident_id == resident_id, Event.is_activity.is_(True),
                     Device.room == dwell.Room.BATHROOM.value))
    if elsewhere is not None:
        inside = inside.where(Event.occurred_at > elsewhere)
    rows = session.execute(inside.order_by(Event.occurred_at.desc()).limit(STAY_ROWS)).all()
    if len(rows) == STAY_ROWS:  # a long stay: keep its first instant (when it began)
        first = session.execute(inside.order_by(Event.occurred_at).limit(1)).first()
        rows = [*rows, first] if first is not None else rows
    activity = [dwell.Activity(at, True, kind, value == "closed" if kind == "door" else None)
                for at, kind, value in rows]
    if elsewhere is not None:
        activity.append(dwell.Activity(elsewhere, False))
    return sorted(activity, key=lambda a: a.at)
