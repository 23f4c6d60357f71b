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

from sqlalchemy import func, select, union_all
from sqlalchemy.orm import Session

from alerts import alarms, infrastructure, rhythm, routine, rules, transitions, wording
from alerts.db import claim, guarded
from alerts.limits import limits_of, residents_with_limits, with_grid
from alerts.models import Alarm, AlarmKind, AlarmState, Event, Grid, Resident, SignOfLife

log = logging.getLogger(__name__)

CLAIM_BATCH = 1000
PUSH_BACK = timedelta(minutes=5)
# resident alarms that keep a time-window or rhythm notice quiet: the resident is already being looked at
ROUTINE_QUIET_KINDS = (AlarmKind.INACTIVITY, AlarmKind.PANIC, AlarmKind.ROUTINE)
RHYTHM_QUIET_KINDS = (AlarmKind.INACTIVITY, AlarmKind.PANIC, AlarmKind.ROUTINE, AlarmKind.RHYTHM,
                      AlarmKind.EARLY_WARNING)


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
    before = len(raised)
    for resident, grid_window in rows:
        guarded(session, "resident", resident.id,
                partial(_routine_resident, session, resident, grid_window, now, zone,
                        bool(open_kinds.get(resident.id, set()) & set(ROUTINE_QUIET_KINDS)), raised),
                partial(setattr, resident, "routine_due_at", now + PUSH_BACK))
    infrastructure.mark_raised(session, raised[before:], now)  # inside an incident: possibly infrastructure
    return len(rows)


def _outage_covered(session: Session, now: datetime) -> set[int]:
    """Residents whose homes an open infrastructure incident covers: their silence says nothing of their day,
    so no low-key notice is sent (the incident's own SMS has told the grid worker; the fixed window still
    watches, its alarm marked possibly infrastructure)."""
    return infrastructure.covered(session, now, timedelta(0))[1]


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
    covered = _outage_covered(session, now) if residents else set()
    for resident in residents:
        guarded(session, "resident", resident.id,
                partial(_rhythm_resident, session, resident, now, zone,
                        bool(open_kinds.get(resident.id, set()) & set(RHYTHM_QUIET_KINDS)) or resident.id in covered,
                        raised),
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


# -- the fixed window's early warning (opt-in; ``early_warning_due_at``, the same pattern) ------------------
def early_warning_step(session: Session, now: datetime, default: rules.Limits, zone: Any, raised: list[int]) -> int:
    """Open the early-warning notice where a silence reached the early-warning stage (once per silence),
    close it when the resident's alarm took over, plan the next look (:func:`alerts.rules.decide_early_warning`).
    Only while the ``early_warning`` policy is switched on (it is off by default): off, nothing is claimed."""
    definition = alarms.snapshot_policy(session, AlarmKind.EARLY_WARNING)
    if not definition or not definition.get("enabled", True):
        return 0
    query = (residents_with_limits().where(Resident.early_warning_due_at.isnot(None),
                                           Resident.early_warning_due_at <= now)
             .order_by(Resident.early_warning_due_at).limit(CLAIM_BATCH))
    rows = session.execute(claim(query, session.get_bind().dialect, of=Resident)).all()
    if not rows:
        return 0
    ids = [r.id for r, _, _ in rows]
    open_kinds = _open_kinds(session, ids)
    for rid in _outage_covered(session, now).intersection(ids):
        open_kinds.setdefault(rid, set()).add(AlarmKind.INFRASTRUCTURE.value)
    warned = {rid: at for rid, at in session.execute(
        select(Alarm.resident_id, func.max(Alarm.opened_at))
        .where(Alarm.kind == AlarmKind.EARLY_WARNING, Alarm.resident_id.in_(ids)).group_by(Alarm.resident_id))}
    for resident, grid_window, grid_warning in rows:
        guarded(session, "resident", resident.id,
                partial(_early_warning_resident, session, resident, default, grid_window, grid_warning, now, zone,
                        frozenset(open_kinds.get(resident.id, set())), warned.get(resident.id), raised),
                partial(setattr, resident, "early_warning_due_at", now + PUSH_BACK))
    return len(rows)


def _early_warning_resident(session: Session, resident: Resident, default: rules.Limits, grid_window: int | None,
                            grid_warning: int | None, now: datetime, zone: Any, open_kinds: frozenset[str],
                            last_warned: datetime | None, raised: list[int]) -> None:
    decision = rules.decide_early_warning(
        now=now, last_activity=resident.last_activity_at, watch_from=resident.watch_from,
        created_at=resident.created_at, limits=limits_of(default, resident, grid_window, grid_warning),
        away_until=resident.away_until, away_until_activity=resident.away_until_activity,
        last_warned=last_warned, open_alarm_kinds=open_kinds)
    resident.early_warning_due_at = decision.next_due
    if decision.action is rules.EarlyAction.SUPERSEDE:
        notice = alarms.find_open(session, AlarmKind.EARLY_WARNING, resident_id=resident.id)
        alarm = session.scalars(select(Alarm).where(
            Alarm.resident_id == resident.id, Alarm.kind.in_(rules.ALARM_KINDS),
            Alarm.state != AlarmState.RESOLVED)).first()
        if notice is not None and alarm is not None:
            transitions.superseded(session, notice, now, note=f"alarm {alarm.code} took over")
    elif decision.action is rules.EarlyAction.RAISE:
        assert decision.start is not None
        params = {"hours": f"{round((now - decision.start).total_seconds() / 3600, 1):g}"}
        alarm_id = alarms.open_alarm(session, AlarmKind.EARLY_WARNING, now,
                                     reason=_reason("early_warning", params, zone), reason_code="early_warning",
                                     reason_params=params, resident_id=resident.id,
                                     last_activity_at=resident.last_activity_at)
        if alarm_id is not None:
            log.info("early-warning notice raised", extra={"alarm": alarm_id, "resident": resident.id})
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
