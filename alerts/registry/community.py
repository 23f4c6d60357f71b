"""Load a community (grids, micro-grids, workers, residents with devices and contacts) from a dict,
as read from a TOML file by ``shouwang load``. Idempotent: names and external ids are the keys, so
loading the same file twice changes nothing. The full CSV import and admin come with the screens.

A newly loaded resident's window starts at load time: a home that never reports still raises its
alarm (absence of data is not evidence of safety).

A file the loader refuses raises :class:`CommunityFileError`, a :class:`~alerts.refusals.Refusal`: the
technician reads it in ``notify.language`` (``shouwang load`` words it; the CSV import passes it on).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any, TypeVar

from sqlalchemy import select
from sqlalchemy.orm import Session

from alerts import dwell, routine, rules
from alerts.limits import refresh_due, refresh_grid
from alerts.models import (
    AuditEntry,
    Base,
    Community,
    Contact,
    Device,
    DeviceKind,
    Gateway,
    GatewayKind,
    Grid,
    MicroGrid,
    Resident,
    Worker,
    WorkerRole,
)
from alerts.refusals import Refusal

M = TypeVar("M", bound=Base)


class CommunityFileError(Refusal, ValueError):
    """What is wrong in a community file (a code of :data:`alerts.refusals.REFUSALS`)."""


def load_community(session: Session, data: dict[str, Any], now: datetime, default: rules.Limits,
                   actor: str = "loader", offline_after: timedelta = timedelta(hours=2)) -> dict[str, int]:
    """Create or update everything in ``data``; returns counts of what was created."""
    counts = {"grids": 0, "micro_grids": 0, "workers": 0, "residents": 0, "devices": 0, "contacts": 0,
              "gateways": 0}
    info = data.get("community") or {}
    if not info.get("name"):
        raise CommunityFileError("community_name")
    community = session.scalars(select(Community).where(Community.name == info["name"])).first()
    if community is None:
        community = Community(name=info["name"])
        session.add(community)
    community.latitude, community.longitude = info.get("latitude"), info.get("longitude")
    session.flush()
    try:
        micro_grids = _grids(session, community, data.get("grids", []), counts, now, default)
        for item in data.get("gateways", []):
            _gateway(session, community, item, now, counts)
        for item in data.get("workers", []):
            _worker(session, community, item, micro_grids, counts)
        for item in data.get("residents", []):
            _resident(session, item, micro_grids, now, default, counts, offline_after)
    except KeyError as exc:  # an entry without a field it needs (a grid's name, a contact's phone, ...)
        raise CommunityFileError("community_missing", key=str(exc.args[0])) from exc
    session.add(AuditEntry(at=now, actor=actor, action="community.load", target=f"community:{community.id}",
                           detail=counts))
    return counts


def _grids(session: Session, community: Community, grids: list[dict[str, Any]], counts: dict[str, int],
           now: datetime, default: rules.Limits) -> dict[str, MicroGrid]:
    found: dict[str, MicroGrid] = {}
    for item in grids:
        grid = _get_or_add(session, counts, "grids", Grid, community_id=community.id, name=item["name"])
        window, warning = _hours(item.get("window_hours")), _hours(item.get("early_warning_hours"))
        named = Refusal("community_grid", name=item["name"])
        routine_window, dwell_s = _routine(item.get("routine"), named), _dwell(item, named)
        changed = grid.id is not None and (grid.inactivity_window_s, grid.early_warning_s, grid.routine_window,
                                           grid.bathroom_dwell_s, grid.bathroom_door_dwell_s) != (
            window, warning, routine_window, *dwell_s)
        grid.inactivity_window_s, grid.early_warning_s, grid.routine_window = window, warning, routine_window
        grid.bathroom_dwell_s, grid.bathroom_door_dwell_s = dwell_s
        session.flush()
        if changed:
            refresh_grid(session, grid.id, default, now)
        for sub in item.get("micro_grids", []):
            micro = _get_or_add(session, counts, "micro_grids", MicroGrid, grid_id=grid.id, name=sub["name"])
            session.flush()
            found[f"{grid.name}/{micro.name}"] = micro
    return found


def _worker(session: Session, community: Community, item: dict[str, Any], micro_grids: dict[str, MicroGrid],
            counts: dict[str, int]) -> None:
    try:
        role = WorkerRole(item["role"])
    except ValueError:
        raise CommunityFileError("community_entry", what=Refusal("community_worker", name=item.get("name")),
                                 why=Refusal("worker_role", value=item["role"],
                                             choices=", ".join(r.value for r in WorkerRole))) from None
    worker = session.scalars(select(Worker).where(Worker.phone == item["phone"])).first()
    if worker is None:
        worker = Worker(phone=item["phone"], name=item["name"], role=role)
        session.add(worker)
        counts["workers"] += 1
    worker.name, worker.role, worker.community_id = item["name"], role, community.id
    if "micro_grid" in item:
        micro = _micro(micro_grids, item["micro_grid"])
        worker.micro_grid_id, worker.grid_id = micro.id, micro.grid_id
    elif "grid" in item:
        grid = session.scalars(select(Grid).where(Grid.community_id == community.id,
                                                  Grid.name == item["grid"])).first()
        if grid is None:
            raise CommunityFileError("community_no_grid", name=item["name"], grid=item["grid"])
        worker.grid_id = grid.id


def _resident(session: Session, item: dict[str, Any], micro_grids: dict[str, MicroGrid], now: datetime,
              default: rules.Limits, counts: dict[str, int], offline_after: timedelta) -> None:
    ref = item.get("ref")
    if not ref:
        raise CommunityFileError("community_ref", name=item.get("name"))
    resident = session.scalars(select(Resident).where(Resident.external_ref == ref)).first()
    if resident is None:
        resident = Resident(external_ref=ref, name=item["name"], created_at=now, watch_from=now)
        session.add(resident)
        counts["residents"] += 1
    resident.name = item["name"]
    resident.birth_year = item.get("birth_year")
    resident.address = item.get("address", "")
    resident.latitude, resident.longitude = item.get("latitude"), item.get("longitude")
    resident.phone = item.get("phone")
    resident.inactivity_window_s = _hours(item.get("window_hours"))
    resident.early_warning_s = _hours(item.get("early_warning_hours"))
    named = Refusal("community_resident", ref=ref)
    resident.routine_window = _routine(item.get("routine"), named)
    resident.bathroom_dwell_s, resident.bathroom_door_dwell_s = _dwell(item, named)
    consent = item.get("consent")
    resident.consent_at = consent if isinstance(consent, date) or consent is None else date.fromisoformat(consent)
    if "micro_grid" in item:
        resident.micro_grid_id = _micro(micro_grids, item["micro_grid"]).id
    if item.get("away_until_activity"):
        resident.away_until_activity, resident.due_at = True, None
    elif item.get("away_until"):
        until = item["away_until"]
        resident.away_until = until if isinstance(until, datetime) else datetime.fromisoformat(until)
        if resident.away_until.tzinfo is None:
            raise CommunityFileError("community_away_zone", ref=ref)
    session.flush()
    refresh_due(session, resident, default, now)  # the resident's, the grid's or the default window
    for dev in item.get("devices", []):
        device = session.scalars(select(Device).where(Device.external_id == dev["id"])).first()
        if device is None:
            # a device never heard from is offline once the offline limit has passed since install
            device = Device(external_id=dev["id"], created_at=now, online=True, offline_due_at=now + offline_after)
            session.add(device)
            counts["devices"] += 1
        device.kind = _kind(dev)
        device.name = dev.get("name", "")
        device.room = _room(dev.get("room"), Refusal("community_device", id=dev["id"]))
        device.resident_id = resident.id
        if dev.get("gateway"):
            device.gateway_id = _gateway(session, None, {"id": dev["gateway"]}, now, counts, create_only=True).id
    existing = {c.phone for c in resident.contacts}
    for position, contact in enumerate(item.get("contacts", []), start=1):
        if contact["phone"] in existing:
            continue
        resident.contacts.append(Contact(name=contact["name"], phone=contact["phone"],
                                         relation=contact.get("relation", "family"),
                                         priority=contact.get("priority", position)))
        counts["contacts"] += 1


def _gateway(session: Session, community: Community | None, item: dict[str, Any], now: datetime,
             counts: dict[str, int], create_only: bool = False) -> Gateway:
    """A gateway by its external id (Zigbee2MQTT: the bridge's base topic), created when new. A device
    naming a gateway the file does not list creates it with no more than its id."""
    external_id = str(item.get("id") or "")
    if not external_id:
        raise CommunityFileError("community_gateway_id", item=item)
    gateway = session.scalars(select(Gateway).where(Gateway.external_id == external_id)).first()
    if gateway is None:
        gateway = Gateway(external_id=external_id, created_at=now, online=True, name="",
                          kind=GatewayKind.OTHER)
        session.add(gateway)
        counts["gateways"] += 1
    elif create_only:
        return gateway
    if not create_only:
        try:
            gateway.kind = GatewayKind(item.get("kind", gateway.kind or GatewayKind.OTHER))
        except ValueError:
            raise CommunityFileError("community_gateway_kind", id=external_id,
                                     choices=", ".join(k.value for k in GatewayKind)) from None
        gateway.name = item.get("name", gateway.name or "")
        if community is not None:
            gateway.community_id = community.id
    session.flush()
    return gateway
def _get_or_add(session: Session, counts: dict[str, int], what: str, model: type[M], **keys: Any) -> M:
    """The row with these key values, or a new one (counted under ``what``)."""
    row = session.scalars(select(model).filter_by(**keys)).first()
    if row is None:
        row = model(**keys)
        session.add(row)
        counts[what] += 1
    return row


def _routine(text: str | None, what: Refusal) -> str | None:
    try:
        window = routine.parse_window(text)
    except routine.WindowError as exc:
        raise CommunityFileError("community_entry", what=what, why=exc) from exc
    return str(window) if window else None


def _dwell(item: dict[str, Any], what: Refusal) -> tuple[int | None, int | None]:
    """The dwell limits of a grid or resident entry (``bathroom_dwell_hours``, ``bathroom_door_dwell_hours``)."""
    found = []
    for name in ("bathroom_dwell_hours", "bathroom_door_dwell_hours"):
        value = item.get(name)
        if value is not None and (not isinstance(value, int | float) or value <= 0):
            raise CommunityFileError("community_dwell", what=what, name=name, value=value)
        found.append(_hours(value))
    return found[0], found[1]


def _room(text: str | None, what: Refusal) -> str | None:
    try:
        room = dwell.parse_room(text)
    except dwell.RoomError:
        raise CommunityFileError("community_entry", what=what,
                                 why=Refusal("room", text=text, choices=dwell.ROOM_CHOICES_WORDED)) from None
    return room.value if room else None


def _kind(dev: dict[str, Any]) -> DeviceKind:
    try:
        return DeviceKind(dev.get("kind", "motion"))
    except ValueError:
        raise CommunityFileError("community_entry", what=Refusal("community_device", id=dev["id"]),
                                 why=Refusal("device_kind", kind=dev.get("kind"),
                                             choices=", ".join(k.value for k in DeviceKind))) from None


def _micro(micro_grids: dict[str, MicroGrid], name: str) -> MicroGrid:
    if name not in micro_grids:
        raise CommunityFileError("community_no_micro_grid", name=name)
    return micro_grids[name]


def _hours(value: float | None) -> int | None:
    return None if value is None else int(float(value) * 3600)
