"""The tick's earlier-detection steps: time-window rules (:mod:`alerts.routine`) and the learned daily
rhythm (:mod:`alerts.rhythm`). Each resident row carries the instant the step next looks at it
(``routine_due_at``, ``rhythm_due_at``, partial indexes); the steps claim rows past due like the
inactivity step does, decide with the pure functions and plan the next instant. Activity never has to
touch these columns: a step that wakes too early only plans again.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any

from sqlalchemy import select, union_all
from sqlalchemy.orm import Session

from alerts import alarms, rhythm, routine, rules, wording
from alerts.db import claim, guarded
from alerts.limits import with_grid
from alerts.models import Alarm, AlarmKind, AlarmState, Event, Grid, Resident, SignOfLife

log = logging.getLogger(__name__)

CLAIM_BATCH = 1000
PUSH_BACK = timedelta(minutes=5)
# resident alarms that keep a time-window or rhythm notice quiet: the resident is already being looked at
ROUTINE_QUIET_KINDS = (AlarmKind.INACTIVITY, AlarmKind.PANIC, AlarmKind.ROUTINE)
RHYTHM_QUIET_KINDS = (AlarmKind.INACTIVITY, AlarmKind.PANIC, AlarmKind.ROUTINE, AlarmKind.RHYTHM)


def _open_kinds(session: Session, resident_ids: list[int]) -> dict[int, set[str]]:
    found: dict[int, set[str]] = {}
    for rid, kind in session.execute(select(Alarm.resident_id, Alarm.kind).where(
            Alarm.state != AlarmState.RESOLVED, Alarm.resident_id.in_(resident_ids))):
        if rid is not None:
            found.setdefault(rid, set()).add(kind)
    return found


def _local(instant: datetime, zone: Any) -> str:
    return instant.astimezone(zone).strftime("%H:%M")


# -- time-window rules -------------------------------------------------------------------------------------
def routine_step(session: Session, now: datetime, zone: Any, raised: list[int]) -> int:
    """Judge the windows that have ended; plan the next ones. Returns how many rows were claimed."""
    query = (with_grid(select(Resident, Grid.routine_window))
             .where(Resident.routine_due_at.isnot(None), Resident.routine_due_at <= now)
             .order_by(Resident.routine_due_at).limit(CLAIM_BATCH))
    rows = session.execute(claim(query, session.get_bind().dialect, of=Resident)).all()
    open_kinds = _open_kinds(session, [r.id for r, _ in rows])
    for resident, grid_window in rows:
        guarded(session, "resident", resident.id,
                partial(_routine_resident, session, resident, grid_window, now, zone,
                        bool(open_kinds.get(resident.id, set()) & set(ROUTINE_QUIET_KINDS)), raised),
                partial(setattr, resident, "routine_due_at", now + PUSH_BACK))
    return len(rows)


def _routine_resident(session: Session, resident: Resident, grid_window: str | None, now: datetime, zone: Any,
                      alarm_open: bool, raised: list[int]) -> None:
    assert resident.routine_due_at is not None
    window = routine.effective_window(resident.routine_window, grid_window)
    decision = routine.decide_routine(
        window=window, due=resident.routine_due_at, now=now, zone=zone, last_activity=resident.last_activity_at,
        watch_from=resident.watch_from or resident.created_at, away_until=resident.away_until,
        away_until_activity=resident.away_until_activity, alarm_open=alarm_open)
    resident.routine_due_at = decision.next_due
    if decision.action is not routine.RoutineAction.RAISE:
        return
    assert window is not None
    params = {"start": f"{window.start:%H:%M}", "end": f"{window.end:%H:%M}",
              "last": wording.instant(resident.last_activity_at)}
    alarm_id = alarms.open_alarm(session, AlarmKind.ROUTINE, now, reason=_reason("routine", params, zone),
                                 reason_code="routine", reason_params=params, resident_id=resident.id,
                                 last_activity_at=resident.last_activity_at)
    if alarm_id is not None:
        log.warning("time-window alarm raised", extra={"alarm": alarm_id, "resident": resident.id})
        raised.append(alarm_id)


# -- the learned rhythm ------------------------------------------------------------------------------------
def rhythm_step(session: Session, now: datetime, zone: Any, raised: list[int]) -> int:
    """Relearn stale rhythms (once a local day), warn where today departs, plan the next look."""
    query = (select(Resident).where(Resident.rhythm_due_at.isnot(None), Resident.rhythm_due_at <= now)
             .order_by(Resident.rhythm_due_at).limit(CLAIM_BATCH))
    residents = list(session.scalars(claim(query, session.get_bind().dialect)))
    open_kinds = _open_kinds(session, [r.id for r in residents])
    for resident in residents:
        guarded(session, "resident", resident.id,
                partial(_rhythm_resident, session, resident, now, zone,
                        bool(open_kinds.get(resident.id, set()) & set(RHYTHM_QUIET_KINDS)), raised),
                partial(setattr, resident, "rhythm_due_at", now + PUSH_BACK))
    return len(residents)


def _rhythm_resident(session: Session, resident: Resident, now: datetime, zone: Any, quiet: bool,
                     raised: list[int]) -> None:
    today = now.astimezone(zone).date()
    learned = rhythm.Rhythm.from_dict(resident.rhythm) if resident.rhythm else None
    if learned is None or learned.learned_on < today:
        learned = learn_resident(session, resident.id, today, now, zone)
        resident.rhythm = learned.to_dict() if learned is not None else None
    away = rules.is_away(resident.away_until, resident.away_until_activity, now)
    if learned is not None and not quiet and not away:
        departure = rhythm.check(learned, now, zone, resident.last_activity_at)
        if departure is not None:
            _notice(session, resident, learned, departure, now, zone, raised)
    resident.rhythm_due_at = rhythm.next_check(learned, now, zone, resident.last_activity_at)


def _notice(session: Session, resident: Resident, learned: rhythm.Rhythm, departure: rhythm.Departure,
            now: datetime, zone: Any, raised: list[int]) -> None:
    if departure.kind == "not_up":
        code, params = "rhythm_not_up", dict[str, Any](usual=departure.usual, days=learned.good_days)
    else:
        code, params = "rhythm_silent", dict[str, Any](since=wording.instant(departure.since), usual=departure.usual)
    alarm_id = alarms.open_alarm(session, AlarmKind.RHYTHM, now, reason=_reason(code, params, zone),
                                 reason_code=code, reason_params=params, resident_id=resident.id,
                                 last_activity_at=resident.last_activity_at)
    if alarm_id is not None:
        log.info("rhythm notice raised", extra={"alarm": alarm_id, "resident": resident.id})
        raised.append(alarm_id)


def learn_resident(session: Session, resident_id: int, today: date, now: datetime, zone: Any) -> rhythm.Rhythm | None:
    """Learn one resident's rhythm from their stored activity and signs of life of the last 28 days;
    days with an alarm say nothing of the usual day and are left out."""
    since = now - timedelta(days=rhythm.HISTORY_DAYS + 1)
    activity = union_all(
        select(Event.occurred_at.label("at")).where(Event.resident_id == resident_id, Event.is_activity.is_(True),
                                                    Event.occurred_at >= since),
        select(SignOfLife.at.label("at")).where(SignOfLife.resident_id == resident_id, SignOfLife.at >= since),
    ).subquery()
    instants = list(session.scalars(select(activity.c.at)))
    alarm_days = {opened.astimezone(zone).date() for opened in session.scalars(select(Alarm.opened_at).where(
        Alarm.resident_id == resident_id, Alarm.opened_at >= since,
        Alarm.kind.in_((AlarmKind.INACTIVITY, AlarmKind.PANIC, AlarmKind.ROUTINE))))}
    return rhythm.learn(today, instants, zone, alarm_days)


def _reason(code: str, params: dict[str, Any], zone: Any) -> str:
    """An alarm's reason in the process's language (notify.language), local time (alerts.wording)."""
    return wording.reason(code, params, wording.configured().language, zone)
