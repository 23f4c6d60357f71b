"""Alarm state machine: open -> acknowledged -> resolved (or open -> resolved), with who and when.

These are the primitives; the named transitions that callers use are in :mod:`alerts.transitions`.
Every change goes through :func:`record`, which writes the alarm's history row and the audit entry
together, so one audit trail shows every change whatever door it came through.
Functions take the session and ``now`` and do not commit: the caller owns the transaction.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from alerts.db import insert_ignoring_conflicts
from alerts.models import (
    HUMAN_OUTCOMES,
    Alarm,
    AlarmKind,
    AlarmState,
    AlarmTransition,
    AuditEntry,
    EscalationPolicy,
    Outcome,
    Resident,
    Severity,
    table_of,
)
from alerts.refusals import Refusal

SEVERITY = {
    AlarmKind.PANIC: Severity.CRITICAL,
    AlarmKind.INACTIVITY: Severity.HIGH,
    AlarmKind.SYSTEM: Severity.HIGH,
    AlarmKind.INFRASTRUCTURE: Severity.HIGH,
    AlarmKind.DEVICE_OFFLINE: Severity.LOW,
    AlarmKind.LOW_BATTERY: Severity.LOW,
    AlarmKind.CLOCK_SKEW: Severity.LOW,
    AlarmKind.ROUTINE: Severity.HIGH,
    AlarmKind.RHYTHM: Severity.LOW,
    AlarmKind.EARLY_WARNING: Severity.LOW,
}
# alarms about a resident (one open per resident and kind); a person's "fine" restarts their window
RESIDENT_KINDS = (AlarmKind.INACTIVITY, AlarmKind.PANIC, AlarmKind.ROUTINE, AlarmKind.RHYTHM,
                  AlarmKind.EARLY_WARNING)
# low-key notices about a resident: amber, an SMS at most, never a call, never family; movement ends them
NOTICE_KINDS = (AlarmKind.RHYTHM, AlarmKind.EARLY_WARNING)
# the resident alarms whose chain calls people and whose outcome the family hears
CALLING_KINDS = (AlarmKind.INACTIVITY, AlarmKind.PANIC, AlarmKind.ROUTINE)


class AlarmError(Refusal):
    """A transition that the alarm's state does not allow (e.g. acknowledging a resolved alarm)."""


def open_key(kind: AlarmKind, *, resident_id: int | None = None, device_id: int | None = None,
             system_key: str | None = None) -> str:
    """The uniqueness key of an open alarm: one per resident and kind, per device, per system key."""
    if kind in RESIDENT_KINDS and resident_id is not None:
        return f"{kind}:r{resident_id}"
    if device_id is not None:
        return f"{kind}:d{device_id}"
    return f"{kind}:{system_key}"


def open_alarm(
    session: Session,
    kind: AlarmKind,
    now: datetime,
    *,
    reason: str,
    reason_code: str | None = None,
    reason_params: dict[str, Any] | None = None,
    resident_id: int | None = None,
    device_id: int | None = None,
    system_key: str | None = None,
    last_activity_at: datetime | None = None,
    devices_offline: bool = False,
) -> int | None:
    """Open an alarm unless one with the same key is open. Returns the new id, or None if one was.

    ``INSERT ... ON CONFLICT DO NOTHING`` on the unique ``open_key``: the database, not this process,
    decides, so two processes never open two.
    """
    key = open_key(kind, resident_id=resident_id, device_id=device_id, system_key=system_key)
    table = table_of(Alarm)
    statement = insert_ignoring_conflicts(table, session.get_bind().dialect, ["open_key"]).values(
        kind=kind, severity=SEVERITY[kind], state=AlarmState.OPEN, open_key=key, resident_id=resident_id,
        device_id=device_id, system_key=system_key, reason=reason, reason_code=reason_code,
        reason_params=reason_params, devices_offline=devices_offline,
        opened_at=now, last_activity_at=last_activity_at, auto_resolved=False,
    ).returning(table.c.id)
    alarm_id = session.execute(statement).scalar()
    if alarm_id is not None:
        _write(session, alarm_id, now, action="opened", actor="shouwang", detail=reason)
        # the escalation policy is copied in now: an edit never changes a running chain
        session.execute(update(Alarm).where(Alarm.id == alarm_id).values(
            policy=snapshot_policy(session, kind), next_action_at=now))
    return alarm_id


POLICY_FOR_KIND = {
    AlarmKind.INACTIVITY: "resident", AlarmKind.PANIC: "resident", AlarmKind.DEVICE_OFFLINE: "maintenance",
    AlarmKind.LOW_BATTERY: "maintenance", AlarmKind.CLOCK_SKEW: "maintenance", AlarmKind.SYSTEM: "system",
    AlarmKind.ROUTINE: "routine", AlarmKind.RHYTHM: "rhythm", AlarmKind.INFRASTRUCTURE: "infrastructure",
    AlarmKind.EARLY_WARNING: "early_warning",
}


def snapshot_policy(session: Session, kind: str) -> dict[str, Any] | None:
    """The definition an alarm of ``kind`` copies when it opens (None if the database has none)."""
    name = POLICY_FOR_KIND[AlarmKind(kind)]
    cache: dict[str, Any] = session.info.setdefault("policy_cache", {})
    if name not in cache:
        cache[name] = session.scalar(select(EscalationPolicy.definition).where(EscalationPolicy.name == name))
    return cache[name]


def find_open(session: Session, kind: AlarmKind, *, resident_id: int | None = None,
              device_id: int | None = None, system_key: str | None = None) -> Alarm | None:
    key = open_key(kind, resident_id=resident_id, device_id=device_id, system_key=system_key)
    return session.scalars(select(Alarm).where(Alarm.open_key == key)).first()


def acknowledge(session: Session, alarm: Alarm, now: datetime, *, by: str, action: str = "acknowledged",
                detail: str | None = None) -> None:
    if alarm.state == AlarmState.RESOLVED:
        raise AlarmError("alarm_resolved", code=alarm.code)
    if alarm.state == AlarmState.ACKNOWLEDGED:
        if action != "acknowledged":  # accepted or arrived after an acknowledgement: still on the record
            record(session, alarm, now, action=action, actor=by, detail=detail)
        return
    alarm.state = AlarmState.ACKNOWLEDGED
    alarm.acknowledged_at = now
    alarm.acknowledged_by = by
    alarm.next_action_at = None  # a person has it: the chain stops
    record(session, alarm, now, action=action, actor=by, detail=detail)


def accept(session: Session, alarm: Alarm, now: datetime, *, by: str) -> None:
    """A worker taps "I'm going": an acknowledgement that says who is on the way."""
    acknowledge(session, alarm, now, by=by, action="accepted", detail="on the way")
    if alarm.accepted_at is None:
        alarm.accepted_at = now


def arrive(session: Session, alarm: Alarm, now: datetime, *, by: str) -> None:
    """On site (the 45-minute service level is measured to here). Arriving acknowledges too."""
    if alarm.state == AlarmState.RESOLVED:
        raise AlarmError("alarm_resolved", code=alarm.code)
    if alarm.arrived_at is None:
        acknowledge(session, alarm, now, by=by, action="arrived")
        alarm.arrived_at, alarm.arrived_by = now, by


def resolve(session: Session, alarm: Alarm, now: datetime, *, by: str, outcome: Outcome,
            note: str | None = None, window_s: float | None = None) -> None:
    """Close the alarm with an outcome. A person's resolution of a resident alarm restarts the
    inactivity window from now (``window_s`` is the resident's window): the next tick does not raise
    it again. Taken to hospital or away with family marks the resident away until next activity."""
    if alarm.state == AlarmState.RESOLVED:
        raise AlarmError("alarm_resolved", code=alarm.code)
    alarm.state = AlarmState.RESOLVED
    alarm.open_key = None
    alarm.next_action_at = None
    alarm.resolved_at = now
    alarm.resolved_by = by
    alarm.outcome = outcome
    alarm.note = note
    alarm.auto_resolved = outcome not in HUMAN_OUTCOMES
    record(session, alarm, now, action="resolved", actor=by, detail=f"{outcome}" + (f": {note}" if note else ""))
    if alarm.resident_id is None or alarm.kind not in RESIDENT_KINDS:
        return
    if outcome in (Outcome.TAKEN_TO_HOSPITAL, Outcome.AWAY_WITH_FAMILY):
        session.execute(update(Resident).where(Resident.id == alarm.resident_id)
                        .values(away_until_activity=True, due_at=None))
    elif outcome in HUMAN_OUTCOMES and window_s is not None:
        restart_window(session, alarm.resident_id, now, window_s)


def restart_window(session: Session, resident_id: int, now: datetime, window_s: float) -> None:
    """A sign of life from a person: the inactivity window runs again from ``now``."""
    resident = session.get(Resident, resident_id)
    if resident is None:
        return
    resident.watch_from = now
    start = max(t for t in (resident.last_activity_at, now) if t is not None)
    resident.due_at = start + timedelta(seconds=window_s)


def record(session: Session, alarm: Alarm, now: datetime, *, action: str, actor: str, detail: str | None) -> None:
    """A change or a noted fact: on the alarm's history and in the audit log, together."""
    _write(session, alarm.id, now, action=action, actor=actor, detail=detail)


def _write(session: Session, alarm_id: int, now: datetime, *, action: str, actor: str, detail: str | None) -> None:
    session.add(AlarmTransition(alarm_id=alarm_id, at=now, action=action, actor=actor, detail=detail))
    session.add(AuditEntry(at=now, actor=actor, action=f"alarm.{action}", target=f"alarm:{alarm_id}",
                           detail={"detail": detail} if detail else {}))
