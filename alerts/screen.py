"""What the community map screen shows: each resident's colour, the open alarms, the KPIs, and whether
the watch is blind. A read model over the database; the colour rule is pure (:func:`colour`)."""

from __future__ import annotations

import statistics
from datetime import datetime, time, timedelta, tzinfo
from typing import Any

from sqlalchemy import ColumnElement, func, select, true
from sqlalchemy.orm import Session, selectinload

from alerts import rules, wording
from alerts.models import Alarm, AlarmKind, AlarmState, Device
from alerts.views import alarm_row, resident_rows

RESIDENT_ALARMS = (AlarmKind.INACTIVITY, AlarmKind.PANIC, AlarmKind.ROUTINE, AlarmKind.RHYTHM)
SEVERITY_ORDER = {"critical": 0, "high": 1, "low": 2}


def colour(status: str, alarm: dict[str, Any] | None, blind: bool) -> tuple[str, bool, bool]:
    """(colour, flashing, phone mark) of a marker: the most urgent state that holds (SPEC section 5).

    red: responders being called and nobody acknowledged yet (a panic alarm at once, flashing);
    blue: acknowledged, someone is on it; amber: early warning, or the check call to the resident in
    progress (phone mark); grey: devices offline or the watch is blind; green: active.
    """
    if alarm is not None and alarm["kind"] == AlarmKind.RHYTHM:  # a low-key notice, never red
        return ("amber", False, False) if alarm["state"] == AlarmState.OPEN else ("blue", False, False)
    if alarm is not None and alarm["state"] == AlarmState.OPEN:
        if alarm["kind"] == AlarmKind.PANIC:
            return "red", True, False
        if alarm["responders_called_at"] is not None:
            return "red", False, False
        return "amber", False, True
    if alarm is not None and alarm["state"] == AlarmState.ACKNOWLEDGED:
        return "blue", False, False
    if status == "warning":
        return "amber", False, False
    if status == "offline" or blind:
        return "grey", False, False
    return "green", False, False


def screen_state(session: Session, now: datetime, limits: rules.Limits, zone: tzinfo,
                 scope: ColumnElement[bool] | None = None, alarm_scope: ColumnElement[bool] | None = None,
                 words: wording.Wording | None = None) -> dict[str, Any]:
    residents = resident_rows(session, now, limits, scope=scope)
    open_alarms = [alarm_row(a, words=words) for a in session.scalars(
        select(Alarm).options(selectinload(Alarm.resident))
        .where(Alarm.state != AlarmState.RESOLVED, alarm_scope if alarm_scope is not None else true())
        .order_by(Alarm.opened_at))]
    blind = [a for a in open_alarms if a["kind"] == AlarmKind.SYSTEM]
    by_resident: dict[int, dict[str, Any]] = {}
    for alarm in open_alarms:
        if alarm["kind"] in RESIDENT_ALARMS and alarm["resident_id"] is not None:
            current = by_resident.get(alarm["resident_id"])
            if current is None or _urgency(alarm) < _urgency(current):
                by_resident[alarm["resident_id"]] = alarm
    markers = []
    for r in residents:
        worst = by_resident.get(r["id"])
        shade, flashing, phone = colour(r["status"], worst, bool(blind))
        markers.append({
            "id": r["id"], "name": r["name"], "latitude": r["latitude"], "longitude": r["longitude"],
            "colour": shade, "flashing": flashing, "phone": phone, "status": r["status"],
            "away": r["status"] == "away" or bool(r["away_until_activity"]),
            "last_activity_at": r["last_activity_at"], "alarm_id": worst["id"] if worst else None,
        })
    open_alarms.sort(key=lambda a: (SEVERITY_ORDER.get(a["severity"], 9), a["opened_at"]))
    return {"now": now, "markers": markers, "alarms": open_alarms, "system": blind,
            "kpis": kpis(session, now, zone, residents, scope)}


COLOUR_RANK = {"red": 0, "blue": 1, "amber": 2, "grey": 3, "green": 4}


def _urgency(alarm: dict[str, Any]) -> tuple[int, int, datetime]:
    """The most urgent state wins (SPEC section 5: red > blue > amber), whatever the kind; between two
    of the same colour a panic first (it flashes), a rhythm notice last, then the older alarm."""
    shade, _, _ = colour("active", alarm, False)
    kind = 0 if alarm["kind"] == AlarmKind.PANIC else 2 if alarm["kind"] == AlarmKind.RHYTHM else 1
    return COLOUR_RANK[shade], kind, alarm["opened_at"]


def kpis(session: Session, now: datetime, zone: tzinfo, residents: list[dict[str, Any]],
         scope: ColumnElement[bool] | None = None) -> dict[str, Any]:
    local_midnight = datetime.combine(now.astimezone(zone).date(), time(0), zone)
    month_start = local_midnight.replace(day=1)
    ids = [r["id"] for r in residents]
    devices_offline = session.scalar(select(func.count()).select_from(Device).where(
        Device.online.is_(False), Device.resident_id.in_(ids))) or 0
    month = list(session.scalars(select(Alarm).where(
        Alarm.kind.in_(RESIDENT_ALARMS), Alarm.opened_at >= month_start, Alarm.resident_id.in_(ids))))
    to_ack = [(a.acknowledged_at - a.opened_at).total_seconds() for a in month if a.acknowledged_at]
    red = [(a, a.responders_called_at) for a in month if a.responders_called_at is not None]
    within_60 = [a for a, called in red if a.acknowledged_at and a.acknowledged_at - called <= timedelta(seconds=60)]
    on_site = [a for a, called in red if a.arrived_at and a.arrived_at - called <= timedelta(minutes=45)]
    open_count = session.scalar(select(func.count()).select_from(Alarm).where(
        Alarm.state != AlarmState.RESOLVED, Alarm.resident_id.in_(ids))) or 0
    return {
        "residents": len(residents),
        "active_today": sum(1 for r in residents if r["last_activity_at"] and r["last_activity_at"] >= local_midnight),
        "open_alarms": open_count,
        "devices_offline": devices_offline,
        "alarms_this_month": len(month),
        "median_ack_seconds": statistics.median(to_ack) if to_ack else None,
        "ack_within_60s_share": len(within_60) / len(red) if red else None,
        "on_site_45min_share": len(on_site) / len(red) if red else None,
    }
