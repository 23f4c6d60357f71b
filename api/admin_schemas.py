"""Request and response bodies of the administration API (``api/routes/admin.py``)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

from alerts.models import DeviceKind, WorkerRole
from alerts.registry.geo import Datum

DATUM = Field(Datum.WGS84, description="the datum of latitude/longitude: wgs84 (GPS), gcj02 (Amap, Tencent, "
              "most Chinese map pickers) or bd09 (Baidu); stored converted to WGS-84")


class CommunityIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    latitude: float | None = None
    longitude: float | None = None
    datum: Datum = DATUM


class CommunityOut(BaseModel):
    id: int
    name: str
    latitude: float | None
    longitude: float | None


ROUTINE = ("time-window rule, HH:MM-HH:MM in local time (e.g. 07:00-10:00): no activity inside it raises a "
           "'routine' alarm at its end; null or empty: none")


class GridIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    community_id: int | None = Field(None, description="needed only when there is more than one community")
    window_hours: float | None = Field(None, gt=0, description="inactivity window for the grid's residents")
    early_warning_hours: float | None = Field(None, gt=0)
    routine: str | None = Field(None, max_length=11, description=ROUTINE)


class GridPatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    community_id: int | None = None
    window_hours: float | None = Field(None, gt=0, description="null removes the override")
    early_warning_hours: float | None = Field(None, gt=0)
    routine: str | None = Field(None, max_length=11, description=ROUTINE)


class GridOut(BaseModel):
    id: int
    community_id: int
    name: str
    window_hours: float | None
    early_warning_hours: float | None
    routine: str | None = Field(description=ROUTINE)


class MicroGridIn(BaseModel):
    grid_id: int
    name: str = Field(min_length=1, max_length=200)


class MicroGridPatch(BaseModel):
    grid_id: int | None = None
    name: str | None = Field(None, min_length=1, max_length=200)


class MicroGridOut(BaseModel):
    id: int
    grid_id: int
    name: str


class ResidentIn(BaseModel):
    ref: str | None = Field(None, max_length=100, description="a stable id of your own (the CSV import's key)")
    name: str = Field(min_length=1, max_length=200)
    birth_year: int | None = Field(None, ge=1880, le=2100)
    address: str = Field("", max_length=500)
    phone: str | None = Field(None, max_length=40)
    micro_grid_id: int | None = None
    consent_at: date | None = Field(None, description="date of the resident's consent to monitoring (PIPL)")
    window_hours: float | None = Field(None, gt=0, description="override of the inactivity window")
    early_warning_hours: float | None = Field(None, gt=0)
    routine: str | None = Field(None, max_length=11, description=ROUTINE + " (the resident's own; none: the grid's)")
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    datum: Datum = DATUM


class ResidentPatch(BaseModel):
    """Only the fields sent change; ``null`` clears an optional one. Coordinates go together."""

    ref: str | None = Field(None, max_length=100)
    name: str | None = Field(None, min_length=1, max_length=200)
    birth_year: int | None = Field(None, ge=1880, le=2100)
    address: str | None = Field(None, max_length=500)
    phone: str | None = Field(None, max_length=40)
    micro_grid_id: int | None = None
    consent_at: date | None = None
    window_hours: float | None = Field(None, gt=0)
    early_warning_hours: float | None = Field(None, gt=0)
    routine: str | None = Field(None, max_length=11, description=ROUTINE)
    latitude: float | None = Field(None, ge=-90, le=90)
    longitude: float | None = Field(None, ge=-180, le=180)
    datum: Datum = DATUM


class ResidentAdminOut(BaseModel):
    id: int
    ref: str | None
    name: str
    birth_year: int | None
    address: str
    phone: str | None
    micro_grid_id: int | None
    consent_at: date | None
    window_hours: float | None
    early_warning_hours: float | None
    routine: str | None = Field(description=ROUTINE)
    latitude: float | None = Field(description="WGS-84")
    longitude: float | None = Field(description="WGS-84")
    away_until: datetime | None
    away_until_activity: bool
    last_activity_at: datetime | None
    watch_from: datetime | None
    due_at: datetime | None
    created_at: datetime
    amap_link: str | None = Field(None, description="Amap marker (GCJ-02), for phones in China")
    geo_link: str | None = Field(None, description="geo: URI (WGS-84)")


class DeviceIn(BaseModel):
    external_id: str = Field(min_length=1, max_length=200, description="the id the device reports under")
    kind: DeviceKind = DeviceKind.MOTION
    name: str = Field("", max_length=200)
    resident_id: int | None = None


class DevicePatch(BaseModel):
    external_id: str | None = Field(None, min_length=1, max_length=200)
    kind: DeviceKind | None = None
    name: str | None = Field(None, max_length=200)
    resident_id: int | None = Field(None, description="null unlinks the device")


class DeviceAdminOut(BaseModel):
    id: int
    external_id: str
    kind: str
    name: str
    resident_id: int | None
    online: bool
    battery: int | None
    last_seen_at: datetime | None
    created_at: datetime


class ContactIn(BaseModel):
    resident_id: int
    name: str = Field(min_length=1, max_length=200)
    phone: str = Field(min_length=3, max_length=40)
    relation: str = Field("family", max_length=50)
    priority: int | None = Field(None, ge=1, description="1 is called first; after the others by default")


class ContactPatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    phone: str | None = Field(None, min_length=3, max_length=40)
    relation: str | None = Field(None, max_length=50)
    priority: int | None = Field(None, ge=1)


class ContactOut(BaseModel):
    id: int
    resident_id: int
    name: str
    phone: str
    relation: str
    priority: int


class WorkerIn(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    phone: str = Field(min_length=3, max_length=40, description="also the sign-in name on the phone page")
    role: WorkerRole
    grid_id: int | None = Field(None, description="a grid worker's grid")
    micro_grid_id: int | None = Field(None, description="a micro-grid worker's micro-grid")
    community_id: int | None = None
    active: bool = True
    pin: str | None = Field(None, pattern=r"^\d{4,12}$", description="4 to 12 digits; stored hashed")


class WorkerPatch(BaseModel):
    name: str | None = Field(None, min_length=1, max_length=200)
    phone: str | None = Field(None, min_length=3, max_length=40)
    role: WorkerRole | None = None
    grid_id: int | None = None
    micro_grid_id: int | None = None
    community_id: int | None = None
    active: bool | None = None
    pin: str | None = Field(None, pattern=r"^\d{4,12}$")


class WorkerOut(BaseModel):
    id: int
    name: str
    phone: str
    role: str
    grid_id: int | None
    micro_grid_id: int | None
    community_id: int | None
    active: bool
    has_pin: bool


class AwayIn(BaseModel):
    until: datetime | None = Field(None, description="end of away mode; without a zone, the configured zone")
    until_activity: bool = Field(False, description="away until the next activity of the home")


class AwayOut(BaseModel):
    resident_id: int
    away: bool
    away_until: datetime | None
    away_until_activity: bool
    due_at: datetime | None = Field(description="the inactivity deadline now stored")


class AdoptIn(BaseModel):
    resident_id: int
    kind: DeviceKind = DeviceKind.MOTION


class AdoptOut(BaseModel):
    device: DeviceAdminOut
    adopted_messages: int = Field(description="quarantined messages of this device marked adopted")


class ImportOut(BaseModel):
    lines: int
    created: int
    updated: int
    counts: dict[str, int] = Field(description="what was created: grids, micro_grids, residents, devices, contacts")


class AuditOut(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    target: str
    detail: dict[str, Any]


class AuditPage(BaseModel):
    entries: list[AuditOut]
    next_before: int | None = Field(description="pass as ?before= for the next (older) page; null at the end")
