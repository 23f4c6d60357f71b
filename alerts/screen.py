"""What the community map screen shows: each resident's colour, the open alarms, the KPIs, and whether
the watch is blind. A read model over the database; the colour rule is pure (:func:`colour`)."""

from __future__ import annotations

import statistics
from datetime import datetime, time, tzinfo
from typing import Any, cast

from sqlalchemy import ColumnElement, func, select, true
from sqlalchemy.orm import Session, selectinload

from alerts import rules, wording
from alerts.alarms import NOTICE_KINDS
from alerts.models import Alarm, AlarmKind, AlarmState, Device, Resident
from alerts.views import alarm_row, resident_rows

RESIDENT_ALARMS = (AlarmKind.INACTIVITY, AlarmKind.PANIC, AlarmKind.ROUTINE, AlarmKind.RHYTHM,
                   AlarmKind.EARLY_WARNING)
# what the KPIs count: the alarms, not the low-key notices (alerts.alarms.NOTICE_KINDS)
KPI_ALARMS = tuple(k for k in RESIDENT_ALARMS if k not in NOTICE_KINDS)
SEVERITY_ORDER = {"critical": 0, "high": 1, "low": 2}


def colour(status: str, alarm: dict[str, Any] | None, blind: bool) -> tuple[str, bool, bool]:
    """(colour, flashing, phone mark) of a marker: the most urgent state that holds (SPEC section 5).

    red: responders being called and nobody acknowledged yet (a panic alarm at once, flashing);
    blue: acknowledged, someone is on it; amber: early warning, or the check call to the resident in
    progress (phone mark); grey: devices offline or the watch is blind; green: active.
    """
    if alarm is not None and alarm["kind"] in NOTICE_KINDS:  # a low-key notice, never red
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
            "kpis": kpis(session, now, zone, scope)}


COLOUR_RANK = {"red": 0, "blue": 1, "amber": 2, "grey": 3, "green": 4}


def _urgency(alarm: dict[str, Any]) -> tuple[int, int, datetime]:
    """The most urgent state wins (SPEC section 5: red > blue > amber), whatever the kind; between two
    of the same colour a panic first (it flashes), a notice last, then the older alarm."""
    shade, _, _ = colour("active", alarm, False)
    kind = 0 if alarm["kind"] == AlarmKind.PANIC else 2 if alarm["kind"] in NOTICE_KINDS else 1
    return COLOUR_RANK[shade], kind, alarm["opened_at"]


def _seconds(later: Any, earlier: Any, dialect: str) -> ColumnElement[float]:
    """``later - earlier`` in seconds, as SQL."""
    if dialect == "postgresql":
        return cast(ColumnElement[float], func.extract("epoch", later - earlier))
    # julianday is a float of days: rounded to the millisecond, 85 s stays 85 s and not 85.0000016
    return func.round((func.julianday(later) - func.julianday(earlier)) * 86400.0, 3)


def kpis(session: Session, now: datetime, zone: tzinfo, scope: ColumnElement[bool] | None = None) -> dict[str, Any]:
    """The screen's figures as SQL aggregates over the residents of ``scope`` (a WHERE clause on Resident):
    no statement grows with the number of residents."""
    local_midnight = datetime.combine(now.astimezone(zone).date(), time(0), zone)
    month_start = local_midnight.replace(day=1)
    dialect = session.get_bind().dialect.name
    visible = select(Resident.id).where(scope if scope is not None else true())

    def theirs(column: Any) -> ColumnElement[bool]:  # everyone's (no scope): no join with the residents
        return column.isnot(None) if scope is None else column.in_(visible)

    residents, active_today = session.execute(
        select(func.count(), func.count().filter(Resident.last_activity_at >= local_midnight))
        .select_from(Resident).where(scope if scope is not None else true())).one()
    devices_offline = session.scalar(select(func.count()).select_from(Device).where(
        Device.online.is_(False), theirs(Device.resident_id))) or 0
    open_count = session.scalar(select(func.count()).select_from(Alarm).where(
        Alarm.state != AlarmState.RESOLVED, theirs(Alarm.resident_id))) or 0
    month = (Alarm.kind.in_(KPI_ALARMS), Alarm.opened_at >= month_start, theirs(Alarm.resident_id))
    called = Alarm.responders_called_at.isnot(None)
    ack_60 = _seconds(Alarm.acknowledged_at, Alarm.responders_called_at, dialect) <= 60
    site_45 = _seconds(Alarm.arrived_at, Alarm.responders_called_at, dialect) <= 45 * 60
    alarms_month, red, within_60, on_site = session.execute(select(
        func.count(), func.count().filter(called),
        func.count().filter(called, Alarm.acknowledged_at.isnot(None), ack_60),
        func.count().filter(called, Alarm.arrived_at.isnot(None), site_45),
    ).where(*month)).one()
    to_ack = _seconds(Alarm.acknowledged_at, Alarm.opened_at, dialect)
    acked = (*month, Alarm.acknowledged_at.isnot(None))
    if dialect == "postgresql":
        median = session.scalar(select(func.percentile_cont(0.5).within_group(to_ack)).where(*acked))
    else:  # SQLite has no percentile: the month's acknowledged alarms, one number each
        values = list(session.scalars(select(to_ack).where(*acked)))
        median = statistics.median(values) if values else None
    return {
        "residents": residents,
        "active_today": active_today,
        "open_alarms": open_count,
        "devices_offline": devices_offline,
        "alarms_this_month": alarms_month,
        "median_ack_seconds": float(median) if median is not None else None,
        "ack_within_60s_share": within_60 / red if red else None,
        "on_site_45min_share": on_site / red if red else None,
    }
