"""Request and response bodies of the administration API (``api/routes/admin.py``)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

from alerts.models import DeviceKind, WorkerRole
from alerts.registry.geo import Datum

MAX_WINDOW_HOURS = 24 * 31  # a month: a longer absence is away mode
ID = "Shouwang's id"
TIME = "UTC, ISO 8601"
DATUM = Field(Datum.WGS84, description="the datum of latitude/longitude: wgs84 (GPS), gcj02 (Amap, Tencent, "
              "most Chinese map pickers) or bd09 (Baidu); stored converted to WGS-84")


class CommunityIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    latitude: float | None = Field(None, ge=-90, le=90, description="the community's centre (the screen's map)")
    longitude: float | None = Field(None, ge=-180, le=180, description="the community's centre")
    datum: Datum = DATUM


class CommunityOut(BaseModel):
    id: int = Field(description=ID)
    name: str
    latitude: float | None = Field(description="WGS-84")
    longitude: float | None = Field(description="WGS-84")


ROUTINE = ("time-window rule, HH:MM-HH:MM in local time (e.g. 07:00-10:00): no activity inside it raises a "
           "'routine' alarm at its end; null or empty: none")


DWELL = ("dwell limit in hours (alerts/dwell.py): the resident in the bathroom that long with no activity in any "
         "other room raises a 'routine' alarm; null: none")
DOOR_DWELL = ("dwell limit in hours: the bathroom door closed that long with motion inside and no activity in any "
              "other room raises a 'routine' alarm; null: none")
ROOM = "bathroom, bedroom, kitchen, living_room or entrance (or its Chinese name); null: unknown"


class GridIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    community_id: int | None = Field(None, description="needed only when there is more than one community")
    window_hours: float | None = Field(None, gt=0, le=MAX_WINDOW_HOURS,
                                      description="inactivity window for the grid's residents (hours)")
    early_warning_hours: float | None = Field(None, gt=0, le=MAX_WINDOW_HOURS,
                                             description="silence before a warning (no call), in hours")
    routine: str | None = Field(None, max_length=11, description=ROUTINE)
    bathroom_dwell_hours: float | None = Field(None, gt=0, le=MAX_WINDOW_HOURS, description=DWELL)
    bathroom_door_dwell_hours: float | None = Field(None, gt=0, le=MAX_WINDOW_HOURS, description=DOOR_DWELL)


class GridPatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    community_id: int | None = Field(None, description="move the grid to this community")
    window_hours: float | None = Field(None, gt=0, le=MAX_WINDOW_HOURS, description="null removes the override")
    early_warning_hours: float | None = Field(None, gt=0, le=MAX_WINDOW_HOURS, description="null removes it")
    routine: str | None = Field(None, max_length=11, description=ROUTINE)
    bathroom_dwell_hours: float | None = Field(None, gt=0, le=MAX_WINDOW_HOURS, description=DWELL)
    bathroom_door_dwell_hours: float | None = Field(None, gt=0, le=MAX_WINDOW_HOURS, description=DOOR_DWELL)


class GridOut(BaseModel):
    id: int = Field(description=ID)
    community_id: int = Field(description="the community it belongs to")
    name: str
    window_hours: float | None = Field(description="the grid's inactivity window; null: the default")
    early_warning_hours: float | None = Field(description="the grid's early warning; null: the default")
    routine: str | None = Field(description=ROUTINE)
    bathroom_dwell_hours: float | None = Field(None, description=DWELL)
    bathroom_door_dwell_hours: float | None = Field(None, description=DOOR_DWELL)


class MicroGridIn(BaseModel):
    grid_id: int = Field(description="the grid it belongs to")
    name: str = Field(min_length=1, max_length=200)


class MicroGridPatch(BaseModel):
    grid_id: int | None = Field(None, description="move it to this grid")
    name: str | None = Field(None, min_length=1, max_length=200)


class MicroGridOut(BaseModel):
    id: int = Field(description=ID)
    grid_id: int = Field(description="the grid it belongs to")
    name: str


class ResidentIn(BaseModel):
    ref: str | None = Field(None, max_length=100, description="a stable id of your own (the CSV import's key)")
    name: str = Field(min_length=1, max_length=200)
    birth_year: int | None = Field(None, ge=1880, le=2100)
    address: str = Field("", max_length=500)
    phone: str | None = Field(None, max_length=40, description="the resident's own phone (the check call)")
    micro_grid_id: int | None = Field(None, description="the micro-grid (building) the resident belongs to")
    consent_at: date | None = Field(None, description="date of the resident's consent to monitoring (PIPL)")
    window_hours: float | None = Field(None, gt=0, le=MAX_WINDOW_HOURS,
                                      description="override of the inactivity window (hours)")
    early_warning_hours: float | None = Field(None, gt=0, le=MAX_WINDOW_HOURS,
                                             description="override of the early warning (hours)")
    routine: str | None = Field(None, max_length=11, description=ROUTINE + " (the resident's own; none: the grid's)")
    bathroom_dwell_hours: float | None = Field(None, gt=0, le=MAX_WINDOW_HOURS,
                                               description=DWELL + " (the resident's own; none: the grid's)")
    bathroom_door_dwell_hours: float | None = Field(None, gt=0, le=MAX_WINDOW_HOURS,
                                                    description=DOOR_DWELL + " (the resident's own; none: the grid's)")
    latitude: float | None = Field(None, ge=-90, le=90, description="the home, in the datum given")
    longitude: float | None = Field(None, ge=-180, le=180, description="the home, in the datum given")
    datum: Datum = DATUM


class ResidentPatch(BaseModel):
    """Only the fields sent change; ``null`` clears an optional one. Coordinates go together."""

    ref: str | None = Field(None, max_length=100, description="your own stable id")
    name: str | None = Field(None, min_length=1, max_length=200)
    birth_year: int | None = Field(None, ge=1880, le=2100)
    address: str | None = Field(None, max_length=500)
    phone: str | None = Field(None, max_length=40, description="the resident's own phone")
    micro_grid_id: int | None = Field(None, description="move the resident to this micro-grid")
    consent_at: date | None = Field(None, description="date of the consent to monitoring (PIPL)")
    window_hours: float | None = Field(None, gt=0, le=MAX_WINDOW_HOURS, description="null: the grid's or default")
    early_warning_hours: float | None = Field(None, gt=0, le=MAX_WINDOW_HOURS, description="null: inherited")
    routine: str | None = Field(None, max_length=11, description=ROUTINE)
    bathroom_dwell_hours: float | None = Field(None, gt=0, le=MAX_WINDOW_HOURS, description=DWELL)
    bathroom_door_dwell_hours: float | None = Field(None, gt=0, le=MAX_WINDOW_HOURS, description=DOOR_DWELL)
    latitude: float | None = Field(None, ge=-90, le=90, description="with longitude, in the datum given")
    longitude: float | None = Field(None, ge=-180, le=180, description="with latitude, in the datum given")
    datum: Datum = DATUM


class ResidentAdminOut(BaseModel):
    id: int = Field(description=ID)
    ref: str | None = Field(description="your own stable id (the community file's or CSV import's `ref`)")
    name: str
    birth_year: int | None
    address: str
    phone: str | None = Field(description="the resident's own phone")
    micro_grid_id: int | None = Field(description="the micro-grid (building) the resident belongs to")
    consent_at: date | None = Field(description="date of the resident's consent to monitoring (PIPL)")
    window_hours: float | None = Field(description="the resident's own window; null: the grid's or the default")
    early_warning_hours: float | None = Field(description="the resident's own early warning; null: inherited")
    routine: str | None = Field(description=ROUTINE)
    bathroom_dwell_hours: float | None = Field(None, description=DWELL)
    bathroom_door_dwell_hours: float | None = Field(None, description=DOOR_DWELL)
    latitude: float | None = Field(description="WGS-84")
    longitude: float | None = Field(description="WGS-84")
    away_until: datetime | None = Field(description=f"away mode ends then ({TIME})")
    away_until_activity: bool = Field(description="away mode ends with the next activity")
    last_activity_at: datetime | None = Field(description=f"the last activity seen in the home ({TIME})")
    watch_from: datetime | None = Field(description=f"the window is counted from then when nothing moved yet "
                                        f"({TIME})")
    due_at: datetime | None = Field(description=f"the inactivity alarm is raised then if nothing moves ({TIME})")
    created_at: datetime = Field(description=TIME)
    amap_link: str | None = Field(None, description="Amap marker (GCJ-02), for phones in China")
    geo_link: str | None = Field(None, description="geo: URI (WGS-84)")


class DeviceIn(BaseModel):
    external_id: str = Field(min_length=1, max_length=200, description="the id the device reports under")
    kind: DeviceKind = Field(DeviceKind.MOTION, description="what the device senses")
    name: str = Field("", max_length=200, description="a label for people (\"bedroom PIR\")")
    room: str | None = Field(None, max_length=20, description=ROOM)
    resident_id: int | None = Field(None, description="the resident whose home it is in; null: not linked yet")
    gateway_id: int | None = Field(None, description="the gateway it reports through (see /api/admin/gateways)")


class DevicePatch(BaseModel):
    external_id: str | None = Field(None, min_length=1, max_length=200, description="the id it reports under")
    kind: DeviceKind | None = Field(None, description="what the device senses")
    name: str | None = Field(None, max_length=200, description="a label for people")
    room: str | None = Field(None, max_length=20, description=ROOM)
    resident_id: int | None = Field(None, description="null unlinks the device")
    gateway_id: int | None = Field(None, description="null: reports through no shared gateway")


class DeviceAdminOut(BaseModel):
    id: int = Field(description=ID)
    external_id: str = Field(description="the id the device reports under")
    kind: str = Field(description="motion, door, bed, toilet, panic, power, ...")
    name: str = Field(description="a label for people")
    room: str | None = Field(None, description=ROOM)
    resident_id: int | None = Field(description="null: not linked to a resident")
    gateway_id: int | None = Field(None, description="the gateway it reports through; null: none shared")
    online: bool = Field(description="Shouwang's judgement: false once silent for rules.device_offline_after or "
                         "self-reported offline past the grace time")
    battery: int | None = Field(description="last reported battery level (%)")
    last_seen_at: datetime | None = Field(description=f"its last message ({TIME})")
    created_at: datetime = Field(description=TIME)


class ContactIn(BaseModel):
    resident_id: int = Field(description="whose contact")
    name: str = Field(min_length=1, max_length=200)
    phone: str = Field(min_length=3, max_length=40, description="called and sent SMS when the chain reaches family")
    relation: str = Field("family", max_length=50, description="family, neighbour, ...")
    priority: int | None = Field(None, ge=1, le=1000, description="1 is called first; after the others by default")


class ContactPatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    phone: str | None = Field(None, min_length=3, max_length=40, description="the contact's phone")
    relation: str | None = Field(None, max_length=50, description="family, neighbour, ...")
    priority: int | None = Field(None, ge=1, le=1000, description="calling order: 1 first")


class ContactOut(BaseModel):
    id: int = Field(description=ID)
    resident_id: int = Field(description="whose contact")
    name: str
    phone: str
    relation: str = Field(description="family, neighbour, ...")
    priority: int = Field(description="calling order: 1 first")


class WorkerIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    phone: str = Field(min_length=3, max_length=40, description="also the sign-in name on the phone page")
    role: WorkerRole = Field(description="grid_worker (a grid), micro_grid_worker (a building) or supervisor")
    grid_id: int | None = Field(None, description="a grid worker's grid")
    micro_grid_id: int | None = Field(None, description="a micro-grid worker's micro-grid")
    community_id: int | None = Field(None, description="a supervisor's community; others follow their grid")
    active: bool = Field(True, description="an inactive worker is not called and cannot sign in")
    pin: str | None = Field(None, pattern=r"^\d{4,12}$", description="4 to 12 digits; stored hashed")


class WorkerPatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    phone: str | None = Field(None, min_length=3, max_length=40, description="also the sign-in name")
    role: WorkerRole | None = Field(None, description="grid_worker, micro_grid_worker or supervisor")
    grid_id: int | None = Field(None, description="a grid worker's grid")
    micro_grid_id: int | None = Field(None, description="a micro-grid worker's micro-grid")
    community_id: int | None = Field(None, description="a supervisor's community")
    active: bool | None = Field(None, description="false: not called, cannot sign in (sessions end)")
    pin: str | None = Field(None, pattern=r"^\d{4,12}$", description="a new PIN, 4 to 12 digits")


class WorkerOut(BaseModel):
    id: int = Field(description=ID)
    name: str
    phone: str = Field(description="also the sign-in name on the phone page")
    role: str = Field(description="grid_worker, micro_grid_worker or supervisor")
    grid_id: int | None = Field(description="a grid worker's grid (a micro-grid worker's too, derived)")
    micro_grid_id: int | None = Field(description="a micro-grid worker's micro-grid")
    community_id: int | None = Field(description="the worker's community")
    active: bool = Field(description="an inactive worker is not called and cannot sign in")
    has_pin: bool = Field(description="a PIN is set: the worker can sign in on the phone page")


class AwayIn(BaseModel):
    until: datetime | None = Field(None, description="end of away mode; without a zone, the configured zone")
    until_activity: bool = Field(False, description="away until the next activity of the home")


class AwayOut(BaseModel):
    resident_id: int = Field(description="whose away mode")
    away: bool = Field(description="away mode holds now")
    away_until: datetime | None = Field(description=TIME)
    away_until_activity: bool = Field(description="away mode ends with the next activity")
    due_at: datetime | None = Field(description="the inactivity deadline now stored")


class AdoptIn(BaseModel):
    resident_id: int = Field(description="the resident whose home the device is in")
    kind: DeviceKind = Field(DeviceKind.MOTION, description="what the device senses")


class AdoptOut(BaseModel):
    device: DeviceAdminOut = Field(description="the device created")
    adopted_messages: int = Field(description="quarantined messages of this device marked adopted")


class ImportOut(BaseModel):
    lines: int = Field(description="data lines read")
    created: int = Field(description="residents created")
    updated: int = Field(description="residents updated (same ref)")
    counts: dict[str, int] = Field(description="what was created: grids, micro_grids, residents, devices, contacts")


class AuditOut(BaseModel):
    id: int
    at: datetime = Field(description=f"service clock ({TIME})")
    actor: str = Field(description="who: an account, a worker, 'cli:FILE', 'system'")
    action: str = Field(description="what: resident.view, worker.update, auth.login, ...")
    target: str = Field(description="on what: resident:12, user:3, ...")
    detail: dict[str, Any] = Field(description="the fields changed (names only for personal data), counts, ...")


class AuditPage(BaseModel):
    entries: list[AuditOut] = Field(description="newest first")
    next_before: int | None = Field(description="pass as ?before= for the next (older) page; null at the end")
