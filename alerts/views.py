"""Read models for the API: residents with their current state, alarms with their history."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from alerts import rules, wording
from alerts.limits import limits_of, residents_with_limits
from alerts.models import Alarm, AlarmState, Attempt, Device, Resident


def resident_rows(session: Session, now: datetime, default: rules.Limits, resident_id: int | None = None,
                  scope: ColumnElement[bool] | None = None) -> list[dict[str, Any]]:
    query = residents_with_limits().order_by(Resident.id)
    if resident_id is not None:
        query = query.where(Resident.id == resident_id)
    if scope is not None:
        query = query.where(scope)
    rows = session.execute(query).all()
    # the same residents as a subquery: no statement grows with the number of residents
    visible = select(Resident.id)
    if resident_id is not None:
        visible = visible.where(Resident.id == resident_id)
    if scope is not None:
        visible = visible.where(scope)
    open_kinds: dict[int, set[str]] = defaultdict(set)
    for rid, kind in session.execute(select(Alarm.resident_id, Alarm.kind).where(
            Alarm.state != AlarmState.RESOLVED, Alarm.resident_id.in_(visible))):
        if rid is not None:
            open_kinds[rid].add(kind)
    devices: dict[int, list[Device]] = defaultdict(list)
    for device in session.scalars(select(Device).where(Device.resident_id.in_(visible))):
        assert device.resident_id is not None
        devices[device.resident_id].append(device)
    result = []
    for resident, g_win, g_warn in rows:
        limits = limits_of(default, resident, g_win, g_warn)
        status = rules.resident_status(
            now=now, last_activity=resident.last_activity_at, watch_from=resident.watch_from, limits=limits,
            away_until=resident.away_until, away_until_activity=resident.away_until_activity,
            open_alarm_kinds=frozenset(open_kinds[resident.id]),
            devices_online=[d.online for d in devices[resident.id]],
        )
        result.append({
            "id": resident.id, "ref": resident.external_ref, "name": resident.name, "address": resident.address,
            "latitude": resident.latitude, "longitude": resident.longitude, "phone": resident.phone,
            "micro_grid_id": resident.micro_grid_id, "status": status.value,
            "last_activity_at": resident.last_activity_at, "due_at": resident.due_at,
            "window_hours": limits.window.total_seconds() / 3600,
            "away_until": resident.away_until, "away_until_activity": resident.away_until_activity,
            "consent_at": resident.consent_at,
            "devices": [device_row(d) for d in devices[resident.id]],
        })
    return result


def device_row(device: Device) -> dict[str, Any]:
    return {"id": device.id, "external_id": device.external_id, "kind": device.kind, "room": device.room,
            "online": device.online,
            "battery": device.battery, "last_seen_at": device.last_seen_at, "availability": device.availability,
            "clock_skew_count": device.clock_skew_count or 0, "last_clock_skew_at": device.last_clock_skew_at}


def alarm_row(alarm: Alarm, with_history: bool = False, words: wording.Wording | None = None) -> dict[str, Any]:
    """An alarm as the API and the screens show it. What a person reads (``reason``, who acted, the
    outcome, the history) is worded in ``words`` (default: the process's, from ``notify.language``);
    ``reason_code``/``reason_params`` and ``outcome`` are for programs."""
    words = words or wording.configured()
    row = alarm_fields(alarm, alarm.resident.name if alarm.resident is not None else None, words)
    if with_history:
        lang = words.language
        row["transitions"] = [{"at": t.at, "action": t.action, "actor": wording.actor(t.actor, lang),
                               "detail": wording.detail(t.detail, lang)} for t in alarm.transitions]
    return row


def alarm_fields(alarm: Any, resident_name: str | None, words: wording.Wording | None = None) -> dict[str, Any]:
    """:func:`alarm_row` without the history, from the model or from a row of the alarms table's columns
    (the screen model reads rows, not objects)."""
    words = words or wording.configured()
    lang = words.language
    return {
        "id": alarm.id, "code": f"A{alarm.id}", "kind": alarm.kind, "severity": alarm.severity, "state": alarm.state,
        "resident_id": alarm.resident_id, "device_id": alarm.device_id, "system_key": alarm.system_key,
        "reason": wording.alarm_reason(alarm.reason_code, alarm.reason_params, alarm.reason, words),
        "reason_code": alarm.reason_code, "reason_params": alarm.reason_params,
        "devices_offline": alarm.devices_offline, "opened_at": alarm.opened_at,
        "last_activity_at": alarm.last_activity_at, "activity_seen_at": alarm.activity_seen_at,
        "acknowledged_at": alarm.acknowledged_at, "acknowledged_by": wording.actor(alarm.acknowledged_by, lang),
        "resolved_at": alarm.resolved_at, "resolved_by": wording.actor(alarm.resolved_by, lang),
        "outcome": alarm.outcome, "outcome_text": wording.outcome(alarm.outcome, lang),
        "note": alarm.note, "auto_resolved": alarm.auto_resolved,
        "step": alarm.step + 1 if alarm.step >= 0 else None, "round": alarm.cycle + 1,
        "responders_called_at": alarm.responders_called_at, "next_action_at": alarm.next_action_at,
        "family_handling_at": alarm.family_handling_at,
        "family_handling_by": wording.actor(alarm.family_handling_by, lang),
        "accepted_at": alarm.accepted_at, "arrived_at": alarm.arrived_at,
        "arrived_by": wording.actor(alarm.arrived_by, lang),
        "resident_name": resident_name,
        "possibly_infrastructure": alarm.possibly_infrastructure, "incident_id": alarm.incident_id,
        "hold_until": alarm.hold_until, "scope": alarm.scope,
    }


def attempt_row(attempt: Attempt) -> dict[str, Any]:
    return {"id": attempt.id, "step": attempt.step + 1 if attempt.step >= 0 else None, "round": attempt.cycle + 1,
            "target": attempt.target, "person": attempt.person, "phone": attempt.phone, "channel": attempt.channel,
            "template": attempt.template, "status": attempt.status, "created_at": attempt.created_at,
            "sent_at": attempt.sent_at, "ended_at": attempt.ended_at, "provider_id": attempt.provider_id,
            "digits": attempt.digits, "skip_reason": attempt.skip_reason, "error": attempt.error,
            "tries": attempt.tries}
