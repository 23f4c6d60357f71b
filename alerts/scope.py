"""Who may see and act on which residents and alarms: THE rule, as SQL, used by the API (every route)
and by the phone channels (an SMS reply, a keypress), so every door applies the same scope.

The centre (admin, operator, screen, a community supervisor) sees everything; a grid worker sees the
residents of their grid, a micro-grid worker those of their micro-grid; an alarm is visible with its
resident (or the resident of its device); system alarms only to the centre. On the phone, a person the
alarm's chain called may also acknowledge it.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import ColumnElement, select, true
from sqlalchemy.orm import Session

from alerts.models import Alarm, Attempt, Device, MicroGrid, Resident

CENTRE = frozenset({"admin", "operator", "screen", "supervisor"})  # see every resident


@dataclass(frozen=True)
class Reach:
    """What the scope needs of a person: their role and grid / micro-grid."""

    role: str
    grid_id: int | None = None
    micro_grid_id: int | None = None


def resident_scope(reach: Reach) -> ColumnElement[bool]:
    """The residents a person may see, as a WHERE clause on Resident."""
    if reach.role in CENTRE:
        return true()
    if reach.role == "grid_worker" and reach.grid_id is not None:
        return Resident.micro_grid_id.in_(select(MicroGrid.id).where(MicroGrid.grid_id == reach.grid_id))
    if reach.role == "micro_grid_worker" and reach.micro_grid_id is not None:
        return Resident.micro_grid_id == reach.micro_grid_id
    return Resident.id.is_(None)  # nobody


def alarm_scope(reach: Reach) -> ColumnElement[bool]:
    """The alarms a person may see: those of visible residents (and their devices); system alarms only
    for the centre."""
    if reach.role in CENTRE:
        return true()
    visible = select(Resident.id).where(resident_scope(reach))
    devices = select(Device.id).where(Device.resident_id.in_(visible))
    return Alarm.resident_id.in_(visible) | Alarm.device_id.in_(devices)


def called(phone: str) -> ColumnElement[bool]:
    """The alarms whose chain called or texted this phone number."""
    return Alarm.id.in_(select(Attempt.alarm_id).where(Attempt.phone == phone))


def may_acknowledge(session: Session, alarm_id: int, reach: Reach, phone: str) -> bool:
    """A worker may acknowledge an alarm of their scope, or one whose chain called them."""
    found = session.scalar(select(Alarm.id).where(Alarm.id == alarm_id, alarm_scope(reach) | called(phone)))
    return found is not None
