"""The administrator's operations on the organisation and the residents' data.

Each function takes the session and ``now``, changes rows and writes nothing else: it does not
commit (the request owns the session) and it does not write the audit log (the caller knows who is
asking). Errors are :class:`AdminError` (bad input), :class:`NotFound` and :class:`Conflict`.

Coordinates come with a datum (:mod:`alerts.registry.geo`) and are stored as WGS-84. A resident's stored
deadline ``due_at`` follows the rules of :func:`alerts.rules.decide_due`: NULL while away until next
activity (or while an inactivity alarm is open), ``away_until + window`` while away with an end date,
and otherwise ``max(last activity, watch_from) + window``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from alerts import dwell, routine, rules
from alerts.limits import refresh_due, refresh_grid, resident_limits
from alerts.models import (
    Alarm,
    AlarmTransition,
    ApiToken,
    Attempt,
    AuditEntry,
    Base,
    Community,
    Contact,
    Device,
    DeviceKind,
    Event,
    Gateway,
    Grid,
    MicroGrid,
    QuarantinedMessage,
    Resident,
    Worker,
    WorkerRole,
)
from alerts.refusals import Refusal
from alerts.registry import geo

M = TypeVar("M", bound=Base)


class AdminError(Refusal, ValueError):
    """The request cannot be carried out as asked (HTTP 422); worded through :mod:`alerts.refusals`."""


class NotFound(AdminError):
    pass


class Conflict(AdminError):
    """A unique key is taken (HTTP 409)."""


@dataclass(frozen=True)
class Point:
    latitude: float
    longitude: float
    datum: geo.Datum = geo.Datum.WGS84

    def wgs84(self) -> tuple[float, float]:
        if not (-90 <= self.latitude <= 90 and -180 <= self.longitude <= 180):
            raise AdminError("out_of_range", latitude=self.latitude, longitude=self.longitude)
        return geo.to_wgs84(self.latitude, self.longitude, self.datum)


_NAMES = {"communities": "community", "grids": "grid", "micro_grids": "micro_grid", "residents": "resident",
          "devices": "device", "contacts": "contact", "workers": "worker", "quarantine": "quarantined"}


def get(session: Session, model: type[M], row_id: int) -> M:
    row = session.get(model, row_id)
    if row is None:
        raise NotFound("no_row", what=Refusal("row_" + _NAMES.get(model.__tablename__, "other")), id=row_id)
    return row


def hours_to_s(value: float | None) -> int | None:
    if value is None:
        return None
    if value <= 0:
        raise AdminError("hours_positive")
    return int(value * 3600)


# -- communities, grids, micro-grids ---------------------------------------------------------------------
def create_community(session: Session, name: str, point: Point | None = None) -> Community:
    if session.scalars(select(Community).where(Community.name == name)).first() is not None:
        raise Conflict("community_exists", name=name)
    community = Community(name=name)
    if point is not None:
        community.latitude, community.longitude = point.wgs84()
    session.add(community)
    session.flush()
    return community


def default_community(session: Session, community_id: int | None = None) -> Community:
    """The given community, or the only one there is."""
    if community_id is not None:
        return get(session, Community, community_id)
    found = session.scalars(select(Community).limit(2)).all()
    if len(found) != 1:
        raise AdminError("name_community", how=Refusal("communities_several" if found else "communities_none"))
    return found[0]


def save_grid(session: Session, grid: Grid | None, fields: dict[str, Any], now: datetime,
              default: rules.Limits) -> Grid:
    """Create (``grid`` None) or update a grid. ``fields``: name, community_id, window_hours,
    early_warning_hours (only those given change). A changed window moves its residents' deadlines."""
    if grid is None:
        community = default_community(session, fields.get("community_id"))
        grid = Grid(community_id=community.id, name=fields.get("name") or "")
        session.add(grid)
    elif "community_id" in fields and fields["community_id"] is not None:
        grid.community_id = default_community(session, fields["community_id"]).id
    if "name" in fields:
        grid.name = _required(fields["name"], "name")
    if "window_hours" in fields:
        grid.inactivity_window_s = hours_to_s(fields["window_hours"])
    if "routine" in fields:
        grid.routine_window = routine_window(fields["routine"])
    if "early_warning_hours" in fields:
        grid.early_warning_s = hours_to_s(fields["early_warning_hours"])
    set_dwell(grid, fields)
    _unique(session, Grid, grid, Grid.community_id == grid.community_id, Grid.name == grid.name,
            what=Refusal("grid_named", name=grid.name))
    session.flush()
    if {"window_hours", "early_warning_hours", "routine", *DWELL_FIELDS} & set(fields):
        refresh_grid(session, grid.id, default, now)
    return grid


def delete_grid(session: Session, grid: Grid) -> None:
    """A grid with micro-grids cannot go: move or delete them first (their residents would lose
    their grid worker without anyone noticing)."""
    if session.scalar(select(func.count()).select_from(MicroGrid).where(MicroGrid.grid_id == grid.id)):
        raise Conflict("grid_has_micro_grids", name=grid.name)
    session.execute(update(Worker).where(Worker.grid_id == grid.id).values(grid_id=None))
    session.delete(grid)
    session.flush()


def save_micro_grid(session: Session, micro: MicroGrid | None, fields: dict[str, Any], now: datetime,
                    default: rules.Limits) -> MicroGrid:
    """Create (``micro`` None) or update a micro-grid; moved to another grid, its residents' deadlines
    follow the new grid's window."""
    if micro is None:
        micro = MicroGrid(grid_id=get(session, Grid, _required(fields.get("grid_id"), "grid_id")).id,
                          name=fields.get("name") or "")
        session.add(micro)
    elif fields.get("grid_id") is not None:
        micro.grid_id = get(session, Grid, fields["grid_id"]).id
    if "name" in fields:
        micro.name = _required(fields["name"], "name")
    _unique(session, MicroGrid, micro, MicroGrid.grid_id == micro.grid_id, MicroGrid.name == micro.name,
            what=Refusal("micro_grid_named", name=micro.name))
    session.flush()
    session.execute(update(Worker).where(Worker.micro_grid_id == micro.id).values(grid_id=micro.grid_id))
    if fields.get("grid_id") is not None:
        for resident in session.scalars(select(Resident).where(Resident.micro_grid_id == micro.id)):
            refresh_due(session, resident, default, now)
    return micro


def delete_micro_grid(session: Session, micro: MicroGrid) -> None:
    if session.scalar(select(func.count()).select_from(Resident).where(Resident.micro_grid_id == micro.id)):
        raise Conflict("micro_grid_has_residents", name=micro.name)
    session.execute(update(Worker).where(Worker.micro_grid_id == micro.id).values(micro_grid_id=None))
    session.delete(micro)
    session.flush()


# -- residents -------------------------------------------------------------------------------------------
RESIDENT_FIELDS = frozenset({"ref", "name", "birth_year", "address", "phone", "micro_grid_id", "consent_at",
                             "window_hours", "early_warning_hours", "routine", "latitude", "longitude", "datum",
                             "bathroom_dwell_hours", "bathroom_door_dwell_hours"})


def save_resident(session: Session, resident: Resident | None, fields: dict[str, Any], now: datetime,
                  default: rules.Limits) -> Resident:
    """Create (``resident`` None) or update a resident from the given ``fields`` (see
    ``RESIDENT_FIELDS``; ``latitude``/``longitude`` are in ``datum``, WGS-84 by default). A new
    resident's window starts now: a home that never reports still falls due."""
    unknown = set(fields) - RESIDENT_FIELDS
    if unknown:
        raise AdminError("unknown_fields", fields=", ".join(sorted(unknown)))
    created = resident is None
    if resident is None:
        resident = Resident(name=_required(fields.get("name"), "name"), created_at=now, watch_from=now,
                            address="", away_until_activity=False)
        session.add(resident)
    if "ref" in fields:
        resident.external_ref = fields["ref"] or None
        if resident.external_ref:
            _unique(session, Resident, resident, Resident.external_ref == resident.external_ref,
                    what=Refusal("resident_ref", ref=resident.external_ref))
    if "name" in fields:
        resident.name = _required(fields["name"], "name")
    for key in ("birth_year", "phone", "consent_at"):
        if key in fields:
            setattr(resident, key, fields[key])
    if "address" in fields:
        resident.address = fields["address"] or ""
    if "micro_grid_id" in fields:
        resident.micro_grid_id = get(session, MicroGrid, fields["micro_grid_id"]).id \
            if fields["micro_grid_id"] is not None else None
    if "window_hours" in fields:
        resident.inactivity_window_s = hours_to_s(fields["window_hours"])
    if "routine" in fields:
        resident.routine_window = routine_window(fields["routine"])
    if "early_warning_hours" in fields:
        resident.early_warning_s = hours_to_s(fields["early_warning_hours"])
    set_dwell(resident, fields)
    if "latitude" in fields or "longitude" in fields:
        set_position(resident, fields.get("latitude"), fields.get("longitude"),
                     geo.Datum.parse(str(fields.get("datum") or "wgs84")))
    session.flush()
    if created:
        resident.due_at = None  # watched from now: refresh_due sets the first deadline
    refresh_due(session, resident, default, now)
    return resident


def routine_window(text: str | None) -> str | None:
    """A time-window rule as stored ("07:00-10:00"), checked; empty or None removes it."""
    try:
        window = routine.parse_window(text)
    except routine.WindowError as exc:
        raise AdminError.of(exc) from exc
    return str(window) if window else None


# the dwell limits of a grid or a resident (alerts.dwell), in hours; None removes one
DWELL_FIELDS = {"bathroom_dwell_hours": "bathroom_dwell_s", "bathroom_door_dwell_hours": "bathroom_door_dwell_s"}


def set_dwell(row: Grid | Resident, fields: dict[str, Any]) -> None:
    for name, column in DWELL_FIELDS.items():
        if name in fields:
            setattr(row, column, hours_to_s(fields[name]))


def set_position(resident: Resident, lat: float | None, lon: float | None, datum: geo.Datum) -> None:
    if (lat is None) != (lon is None):
        raise AdminError("both_coordinates")
    if lat is None or lon is None:
        resident.latitude = resident.longitude = None
        return
    resident.latitude, resident.longitude = Point(lat, lon, datum).wgs84()




def set_away(session: Session, resident: Resident, until: datetime | None, until_activity: bool, now: datetime,
             default: rules.Limits) -> None:
    """Mark a resident away, with an end date or until next activity. No alarm is raised meanwhile;
    with an end date the window restarts when it ends (``due_at = until + window``), until next
    activity there is no deadline at all (the next activity ends away mode and sets one)."""
    if until_activity == (until is not None):
        raise AdminError("away_one_end")
    if until is not None and until <= now:
        raise AdminError("away_in_past")
    if until_activity:
        resident.away_until, resident.away_until_activity, resident.due_at = None, True, None
        return
    assert until is not None
    resident.away_until, resident.away_until_activity = until, False
    resident.due_at = until + resident_limits(session, resident, default).window


def clear_away(session: Session, resident: Resident, now: datetime, default: rules.Limits) -> None:
    """End away mode now: the window restarts from now, like a person's confirmation."""
    resident.away_until, resident.away_until_activity = None, False
    resident.watch_from = now
    resident.due_at = now + resident_limits(session, resident, default).window


def is_away(resident: Resident, now: datetime) -> bool:
    return rules.is_away(resident.away_until, resident.away_until_activity, now)


# -- devices, contacts -----------------------------------------------------------------------------------
def save_device(session: Session, device: Device | None, fields: dict[str, Any], now: datetime,
                offline_after: timedelta) -> Device:
    """Create or update a device (external_id, kind, name, room, resident_id, gateway_id). A device never heard from is
    offline once ``offline_after`` has passed since it was added, like one loaded from a file."""
    if device is None:
        device = Device(external_id=_required(fields.get("external_id"), "external_id"), created_at=now,
                        online=True, offline_due_at=now + offline_after, kind=DeviceKind.MOTION, name="")
        session.add(device)
    elif "external_id" in fields:
        device.external_id = _required(fields["external_id"], "external_id")
    _unique(session, Device, device, Device.external_id == device.external_id,
            what=Refusal("device_id", id=device.external_id))
    if fields.get("kind") is not None:
        device.kind = device_kind(fields["kind"])
    if "name" in fields:
        device.name = fields["name"] or ""
    if "room" in fields:
        device.room = device_room(fields["room"])
    if "resident_id" in fields:
        device.resident_id = get(session, Resident, fields["resident_id"]).id \
            if fields["resident_id"] is not None else None
    if "gateway_id" in fields:
        device.gateway_id = get(session, Gateway, fields["gateway_id"]).id \
            if fields["gateway_id"] is not None else None
    session.flush()
    return device


def device_kind(value: str) -> DeviceKind:
    try:
        return DeviceKind(value)
    except ValueError:
        raise AdminError("device_kind", kind=value, choices=", ".join(k.value for k in DeviceKind)) from None


def device_room(value: str | None) -> str | None:
    """A device's room as stored (bathroom, bedroom, ...; its Chinese name is understood); empty: unknown."""
    try:
        room = dwell.parse_room(value)
    except dwell.RoomError:
        raise AdminError("room", text=value, choices=dwell.ROOM_CHOICES_WORDED) from None
    return room.value if room else None


def delete_device(session: Session, device: Device) -> None:
    """Its events and its maintenance alarms go with it."""
    _delete_alarms(session, Alarm.device_id == device.id)
    session.execute(delete(Event).where(Event.device_id == device.id))
    session.delete(device)
    session.flush()


def save_contact(session: Session, contact: Contact | None, fields: dict[str, Any]) -> Contact:
    if contact is None:
        resident = get(session, Resident, _required(fields.get("resident_id"), "resident_id"))
        priority = fields.get("priority") or 1 + (session.scalar(
            select(func.max(Contact.priority)).where(Contact.resident_id == resident.id)) or 0)
        contact = Contact(resident_id=resident.id, name=_required(fields.get("name"), "name"),
                          phone=_phone(_required(fields.get("phone"), "phone")), priority=priority,
                          relation=fields.get("relation") or "family")
        session.add(contact)
    for key in ("name", "relation", "priority"):
        if fields.get(key) is not None:
            setattr(contact, key, fields[key])
    if fields.get("phone") is not None:
        contact.phone = _phone(fields["phone"])
    session.flush()
    return contact


# -- workers ---------------------------------------------------------------------------------------------
def save_worker(session: Session, worker: Worker | None, fields: dict[str, Any]) -> Worker:
    """Create or update a worker: a grid worker needs a grid, a micro-grid worker a micro-grid (its grid
    follows), a supervisor the community. The PIN is the caller's business (it is hashed in ``api``)."""
    if worker is None:
        worker = Worker(name=_required(fields.get("name"), "name"), phone=_phone(_required(fields.get("phone"),
                        "phone")), role=_role(_required(fields.get("role"), "role")), active=True)
        session.add(worker)
    if fields.get("name") is not None:
        worker.name = fields["name"]
    if fields.get("phone") is not None:
        worker.phone = _phone(fields["phone"])
    if fields.get("role") is not None:
        worker.role = _role(fields["role"])
    if fields.get("active") is not None:
        worker.active = bool(fields["active"])
    for key in ("grid_id", "micro_grid_id", "community_id"):
        if key in fields:
            setattr(worker, key, fields[key])
    with session.no_autoflush:  # the places named are checked before the row is written
        _place_worker(session, worker)
        _unique(session, Worker, worker, Worker.phone == worker.phone, what=Refusal("worker_phone", phone=worker.phone))
    session.flush()
    return worker


def _place_worker(session: Session, worker: Worker) -> None:
    if worker.role == WorkerRole.MICRO_GRID_WORKER:
        micro = get(session, MicroGrid, _required(worker.micro_grid_id, "micro_grid_id"))
        worker.grid_id = micro.grid_id
    elif worker.role == WorkerRole.GRID_WORKER:
        worker.micro_grid_id = None
        get(session, Grid, _required(worker.grid_id, "grid_id"))
    else:
        worker.grid_id = worker.micro_grid_id = None
    if worker.grid_id is not None:
        worker.community_id = get(session, Grid, worker.grid_id).community_id
    elif worker.community_id is None:
        worker.community_id = default_community(session).id
    else:
        get(session, Community, worker.community_id)


def delete_worker(session: Session, worker: Worker) -> None:
    session.execute(delete(ApiToken).where(ApiToken.worker_id == worker.id))
    session.delete(worker)
    session.flush()


def _role(value: str) -> WorkerRole:
    try:
        return WorkerRole(value)
    except ValueError:
        raise AdminError("worker_role", value=value, choices=", ".join(r.value for r in WorkerRole)) from None


# -- the quarantine --------------------------------------------------------------------------------------
def adopt_device(session: Session, quarantine_id: int, resident_id: int, kind: str, now: datetime,
                 offline_after: timedelta) -> tuple[Device, int]:
    """Create the device an ``unknown_device`` message came from, for ``resident_id``, and mark every
    quarantined message of that device adopted. Returns the device and how many rows were marked.
    Messages already refused are not replayed: the device's next message counts."""
    held = get(session, QuarantinedMessage, quarantine_id)
    if held.reason != "unknown_device" or not held.device_external_id:
        raise AdminError("not_unknown_device", id=quarantine_id, reason=held.reason)
    resident = get(session, Resident, resident_id)
    device = session.scalars(select(Device).where(Device.external_id == held.device_external_id)).first()
    if device is not None and device.resident_id not in (None, resident.id):
        raise Conflict("device_taken", device=held.device_external_id, resident=device.resident_id)
    device = save_device(session, device, {"external_id": held.device_external_id, "kind": kind,
                                           "resident_id": resident.id}, now, offline_after)
    marked = session.execute(
        update(QuarantinedMessage)
        .where(QuarantinedMessage.device_external_id == held.device_external_id,
               QuarantinedMessage.reason == "unknown_device", QuarantinedMessage.adopted_at.is_(None))
        .values(adopted_at=now)
    )
    return device, _rowcount(marked)


# -- personal data: export and delete --------------------------------------------------------------------
def export_resident(session: Session, resident_id: int) -> dict[str, Any]:
    """Everything Shouwang holds on one resident, as JSON-ready data: the resident, devices,
    contacts, alarms with their transitions and call/SMS attempts, the stored events, and the audit
    entries about them (who viewed or changed the record)."""
    resident = get(session, Resident, resident_id)
    micro = session.get(MicroGrid, resident.micro_grid_id) if resident.micro_grid_id else None
    grid = session.get(Grid, micro.grid_id) if micro else None
    devices = session.scalars(select(Device).where(Device.resident_id == resident.id).order_by(Device.id)).all()
    contacts = session.scalars(select(Contact).where(Contact.resident_id == resident.id)
                               .order_by(Contact.priority, Contact.id)).all()
    alarms = session.scalars(select(Alarm).where(Alarm.resident_id == resident.id).order_by(Alarm.id)).all()
    events = session.scalars(select(Event).where(Event.resident_id == resident.id)
                             .order_by(Event.occurred_at, Event.id)).all()
    audit = session.scalars(select(AuditEntry).where(AuditEntry.target == f"resident:{resident.id}")
                            .order_by(AuditEntry.id)).all()
    return {
        "resident": _row(resident, exclude={"micro_grid_id"}) | {
            "grid": grid.name if grid else None, "micro_grid": micro.name if micro else None},
        "devices": [_row(d, exclude={"resident_id"}) for d in devices],
        "contacts": [_row(c, exclude={"resident_id"}) for c in contacts],
        "alarms": [_alarm(session, a) for a in alarms],
        "events": [_row(e, exclude={"resident_id", "delivery_key"}) for e in events],
        "audit": [_row(a) for a in audit],
    }


def _alarm(session: Session, alarm: Alarm) -> dict[str, Any]:
    attempts = session.scalars(select(Attempt).where(Attempt.alarm_id == alarm.id).order_by(Attempt.id)).all()
    transitions = session.scalars(select(AlarmTransition).where(AlarmTransition.alarm_id == alarm.id)
                                  .order_by(AlarmTransition.id)).all()
    return _row(alarm, exclude={"resident_id", "open_key", "escalation_token"}) | {
        "code": alarm.code,
        "transitions": [_row(t, exclude={"alarm_id"}) for t in transitions],
        "attempts": [_row(a, exclude={"alarm_id"}) for a in attempts],
    }


def _row(row: Any, exclude: frozenset[str] | set[str] = frozenset()) -> dict[str, Any]:
    return {c.key: _json(getattr(row, c.key)) for c in row.__table__.columns if c.key not in exclude}


def _json(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def delete_resident(session: Session, resident_id: int) -> dict[str, int]:
    """Delete a resident and everything personal: contacts, events, alarms (with their transitions and
    the calls and SMS of their chains); devices stay as hardware, unlinked. Earlier audit entries about
    the resident keep who did what and when but lose their detail. Returns counts (no personal data)
    for the audit entry the caller writes."""
    resident = get(session, Resident, resident_id)
    devices = list(session.scalars(select(Device.id).where(Device.resident_id == resident.id)))
    counts = {
        "devices_unlinked": len(devices),
        "contacts": _rowcount(session.execute(delete(Contact).where(Contact.resident_id == resident.id))),
        "events": _rowcount(session.execute(delete(Event).where(Event.resident_id == resident.id))),
        "alarms": _delete_alarms(session, Alarm.resident_id == resident.id),
    }
    session.execute(update(Device).where(Device.resident_id == resident.id).values(resident_id=None))
    session.execute(update(AuditEntry).where(AuditEntry.target == f"resident:{resident.id}")
                    .values(detail={"redacted": "resident deleted"}))
    session.expunge(resident)
    session.execute(delete(Resident).where(Resident.id == resident_id))
    return counts


def _delete_alarms(session: Session, where: Any) -> int:
    ids = list(session.scalars(select(Alarm.id).where(where)))
    if not ids:
        return 0
    session.execute(delete(Attempt).where(Attempt.alarm_id.in_(ids)))
    session.execute(delete(AlarmTransition).where(AlarmTransition.alarm_id.in_(ids)))
    session.execute(delete(Alarm).where(Alarm.id.in_(ids)))
    return len(ids)


# -- helpers ---------------------------------------------------------------------------------------------
def _required(value: Any, name: str) -> Any:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise AdminError("required", name=name)
    return value.strip() if isinstance(value, str) else value


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def _phone(value: str) -> str:
    return value.replace(" ", "").replace("-", "")


def _unique(session: Session, model: type[Any], row: Any, *where: Any, what: Refusal) -> None:
    query = select(model.id).where(*where)
    if row.id is not None:
        query = query.where(model.id != row.id)
    with session.no_autoflush:
        if session.scalars(query.limit(1)).first() is not None:
            raise Conflict("exists", what=what)
